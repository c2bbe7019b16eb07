package layers

import "github.com/gomlx/gomlx/pkg/core/dtypes"

// MasterDType is the dtype in which a layer that computes in dtype keeps its variables (W, B, biases, its rule's
// scales; BatchNorm its parameters and statistics): float32 for bfloat16 and float16 (mixed precision:
// the forward and backward passes run in the low precision on float32 master copies, which the optimizer
// updates, so that small updates are not rounded away and KP's paired update and WM's mirror stay exact), and
// dtype itself otherwise.
func MasterDType(dtype dtypes.DType) dtypes.DType {
	if dtype == dtypes.BFloat16 || dtype == dtypes.Float16 {
		return dtypes.Float32
	}
	return dtype
}
