package feedback

import (
	"fmt"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/nowt-ml/nowt/internal/testutil"
	"github.com/stretchr/testify/require"
)

// gatherPatches is the patch matrix built the other way, with one Gather over the constant index table: the
// reference for patchMatrix, and its speed baseline.
func gatherPatches(x *Node, geom convGeometry) *Node {
	rows := Reshape(x, geom.n*geom.h*geom.w, geom.inC)
	rows = Concatenate([]*Node{rows, Zeros(x.Graph(), shapes.Make(x.DType(), 1, geom.inC))}, 0)
	p := Gather(rows, ConstTensor(x.Graph(), patchIndexTable(geom)))
	return Reshape(p, geom.n*geom.outH*geom.outW, geom.kh*geom.kw*geom.inC)
}

// TestPatchMatrix: the slice-built patch matrix equals the gather-built one, for odd and even kernels, strides
// 1 to 3, same and valid padding.
func TestPatchMatrix(t *testing.T) {
	backend := testutil.Backend(t)
	for _, tc := range []struct{ k, stride int }{{3, 1}, {3, 2}, {1, 1}, {1, 2}, {2, 1}, {4, 3}, {7, 2}} {
		for _, same := range []bool{true, false} {
			t.Run(fmt.Sprintf("k%d/s%d/same=%v", tc.k, tc.stride, same), func(t *testing.T) {
				s := shapes.Make(dtypes.Float32, 2, 9, 8, 3)
				geom := newConvGeometry(s, tc.k, tc.k, tc.stride, same)
				data := make([]float32, s.Size())
				for i := range data {
					data[i] = float32(i + 1)
				}
				out := MustExecOnceN(backend, func(x *Node) []*Node {
					return []*Node{patchMatrix(x, geom.kh, geom.kw, geom.stride, geom.padTop, geom.padBottom,
						geom.padLeft, geom.padRight), gatherPatches(x, geom)}
				}, tensors.FromFlatDataAndDimensions(data, 2, 9, 8, 3))
				require.Equal(t, out[1].Shape(), out[0].Shape())
				require.Equal(t, tensors.MustCopyFlatData[float32](out[1]), tensors.MustCopyFlatData[float32](out[0]))
			})
		}
	}
}

// BenchmarkPatches: building the patch matrix of a 3×3 same convolution, batch 64, for ResNet-20 (width 8)
// stage shapes, with slices (patchMatrix) and with the Gather it replaced.
func BenchmarkPatches(b *testing.B) {
	backend := testutil.Backend(b)
	for _, c := range []int{8, 16, 32} {
		hw := 32 * 8 / c
		s := shapes.Make(dtypes.Float32, 64, hw, hw, c)
		geom := newConvGeometry(s, 3, 3, 1, true)
		x := tensors.FromShape(s)
		for _, mode := range []string{"slices", "gather"} {
			b.Run(fmt.Sprintf("%dx%dx%d/%s", hw, hw, c, mode), func(b *testing.B) {
				exec := MustNewExec(backend, func(x *Node) *Node {
					if mode == "gather" {
						return gatherPatches(x, geom)
					}
					return patchMatrix(x, 3, 3, 1, geom.padTop, geom.padBottom, geom.padLeft, geom.padRight)
				})
				exec.MustExec(x)
				b.ResetTimer()
				for range b.N {
					exec.MustExec(x)
				}
			})
		}
	}
}
