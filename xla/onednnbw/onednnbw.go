//go:build onednn && cgo

package onednnbw

/*
#cgo LDFLAGS: -ldnnl -lgomp
typedef struct XLA_FFI_Error XLA_FFI_Error;
typedef struct XLA_FFI_CallFrame XLA_FFI_CallFrame;
XLA_FFI_Error* nowt_onednn_backward_weights(XLA_FFI_CallFrame* frame);
*/
import "C"

import "unsafe"

// Handler returns the XLA FFI handler that runs oneDNN's backward-weights convolution.
func Handler() unsafe.Pointer { return unsafe.Pointer(C.nowt_onednn_backward_weights) }
