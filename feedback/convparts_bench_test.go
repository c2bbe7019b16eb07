package feedback

import (
	"fmt"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/nowt-ml/nowt/internal/testutil"
)

// BenchmarkConvParts times the three convolutions of one feedback convolution layer apart — the forward pass
// (fwd), the input gradient through the kernel (dx) and the weight gradient (dw) — in both implementations
// (native: the backend's ConvGeneral; patches: patch matrix × matmul; for the weight gradient also
// native-products, its input laid out by identity products, and two convolutions of the input as it lies:
// native-folded, its width and channels folded into one axis, and native-channel-axis, its channels a third
// spatial axis; ParamConvWeightGradInput), on the 3×3 geometries of a CIFAR
// ResNet-20 at batch 64 (its three stages, and the strided convolution that opens stage 2), and on ResNet-18's last
// stage at batch 8 on 64×64 images (512 channels at 2×2, and the strided convolution from 4×4 that opens it),
// where XLA's CPU plugin is slow and "auto" takes patches (useNativeConv). GFLOP/s counts
// the forward's multiply-adds ×2 for each part, so the parts of one geometry compare directly:
//
//	NOWT_TEST_BACKEND=xla:cpu go test ./feedback -run '^$' -bench ConvParts -benchtime 20x
func BenchmarkConvParts(b *testing.B) {
	backend := testutil.Backend(b)
	for _, c := range []struct{ batch, size, in, out, stride int }{
		{64, 32, 16, 16, 1}, {64, 16, 32, 32, 1}, {64, 8, 64, 64, 1}, {64, 32, 16, 32, 2},
		{8, 2, 512, 512, 1}, {8, 4, 256, 512, 2},
	} {
		batch := c.batch
		xShape := shapes.Make(dtypes.Float32, batch, c.size, c.size, c.in)
		geom := newConvGeometry(xShape, 3, 3, c.stride, true)
		native := nativeConvOp{geom: geom}
		nativeByProducts := nativeConvOp{geom: geom, wgradLayout: wgradProducts}
		nativeFolded := nativeConvOp{geom: geom, wgradLayout: wgradFolded}
		nativeChannelAxis := nativeConvOp{geom: geom, wgradLayout: wgradChannelAxis}
		patches := func(x *Node) *patchConvOp {
			op := newPatchConvOp(geom, c.out)
			op.forwardPatches = op.patches(x)
			return op
		}
		parts := []struct {
			name  string
			build func(x, w, delta *Node) *Node
		}{
			{"fwd/native", func(x, w, _ *Node) *Node { return native.conv(x, w) }},
			{"fwd/patches", func(x, w, _ *Node) *Node { return newPatchConvOp(geom, c.out).forward(x, w) }},
			{"dx/native", func(_, w, delta *Node) *Node { return native.inputGrad(delta, w) }},
			{"dx/patches", func(_, w, delta *Node) *Node { return newPatchConvOp(geom, c.out).inputGrad(delta, w) }},
			{"dw/native", func(x, _, delta *Node) *Node { return native.weightGrad(x, delta) }},
			{"dw/native-products", func(x, _, delta *Node) *Node { return nativeByProducts.weightGrad(x, delta) }},
			{"dw/native-folded", func(x, _, delta *Node) *Node { return nativeFolded.weightGrad(x, delta) }},
			{"dw/native-channel-axis", func(x, _, delta *Node) *Node { return nativeChannelAxis.weightGrad(x, delta) }},
			{"dw/patches", func(x, _, delta *Node) *Node { return patches(x).weightGrad(x, delta) }},
		}
		inputs := []*tensors.Tensor{
			tensors.FromShape(xShape),
			tensors.FromShape(shapes.Make(dtypes.Float32, 3, 3, c.in, c.out)),
			tensors.FromShape(shapes.Make(dtypes.Float32, batch, geom.outH, geom.outW, c.out)),
		}
		flops := 2 * float64(batch*geom.outH*geom.outW*9*c.in*c.out)
		for _, part := range parts {
			name := fmt.Sprintf("%dx%dx%d-to-%d/s%d/%s", c.size, c.size, c.in, c.out, c.stride, part.name)
			if batch != 64 {
				name = fmt.Sprintf("b%d-%s", batch, name)
			}
			b.Run(name, func(b *testing.B) {
				exec := MustNewExec(backend, func(x, w, delta *Node) *Node { return ReduceAllSum(part.build(x, w, delta)) })
				exec.MustExec(inputs[0], inputs[1], inputs[2]) // compile
				b.ResetTimer()
				for range b.N {
					exec.MustExec(inputs[0], inputs[1], inputs[2])
				}
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
