// Package onednnbw is oneDNN's backward-weights convolution as an XLA FFI handler, for XLA's CPU PJRT plugin:
// the primitive PyTorch runs for a convolution's weight gradient, which the plugin never calls by itself (its
// oneDNN custom call is forward only). nowt's xla package registers Handler with the plugin as the target of
// GoMLX's BackwardWeightsTarget (the patched GoMLX in third_party/) and the weight gradients of the feedback
// convolutions of 16 or more input channels go to it (feedback's backwardWeightsForm; docs/perf-analysis.md §24).
//
// The handler is built with the onednn build tag, where oneDNN 2.x's headers and library are installed (Debian:
// libdnnl-dev; make adds the tag when /usr/include/oneapi/dnnl/dnnl.hpp exists), and linked with -ldnnl; without
// the tag Handler returns nil and the weight gradients stay oneDNN's forward convolution. It takes x f32[n, h, w,
// c] and δ f32[n, oh, ow, cout] as they lie (NHWC) and an s64[6] operand (strides along h and w, paddings top,
// bottom, left, right) and writes dW f32[kh, kw, c, cout]; the primitive for each geometry is made once and kept.
// Each call splits the examples into one part per thread of XLA's intra-op pool (SetChunks overrides it), offers
// the parts to that pool through the FFI API and runs on the calling thread whatever the pool has not started,
// then sums the parts' gradients; every part runs oneDNN on one OpenMP thread (handler.cc says why).
// xla_ffi_c_api.h is XLA's FFI C API header (Apache License 2.0, from jaxlib's include/xla/ffi/api/c_api.h).
package onednnbw
