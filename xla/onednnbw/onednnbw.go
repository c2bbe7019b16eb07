//go:build onednn && cgo

package onednnbw

/*
#cgo LDFLAGS: -ldnnl -lgomp
#include <stdint.h>
typedef struct XLA_FFI_Error XLA_FFI_Error;
typedef struct XLA_FFI_CallFrame XLA_FFI_CallFrame;
XLA_FFI_Error* nowt_onednn_backward_weights(XLA_FFI_CallFrame* frame);
int64_t nowt_onednn_backward_weights_set_max_chunks(int64_t n);
*/
import "C"

import "unsafe"

// Handler returns the XLA FFI handler that runs oneDNN's backward-weights convolution.
func Handler() unsafe.Pointer { return unsafe.Pointer(C.nowt_onednn_backward_weights) }

// SetChunks sets how many parts the handler splits each weight gradient's examples into (at most one part per
// example), for every execution that starts after it; 0, the default, takes one part per thread of XLA's pool for
// that execution. It returns the previous setting. Tests use it to check splits the machine's thread count would
// not make.
func SetChunks(n int) int { return int(C.nowt_onednn_backward_weights_set_max_chunks(C.int64_t(n))) }
