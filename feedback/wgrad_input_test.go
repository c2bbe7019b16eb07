package feedback

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/nowt-ml/nowt/internal/testutil"
	"github.com/nowt-ml/nowt/xla"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/cpu"
)

// TestWeightGradInputByProducts checks the native weight gradient with its input laid out by identity products
// (channelsFirstByProducts) against the same gradient laid out by the compiler's transpose — equal to the bit,
// the products being exact — and both, and the two folded forms (whose sums go in another order:
// foldedWeightGrad's 2-D fold and channelAxisWeightGrad's 3-D convolution, each for every channel count, whichever
// foldedForm would pick), against the plain-Go reference, for channel counts that make one block (3, 16), several
// of 16 (32, 48), smaller blocks (24: two of 12; 40: four of 10) and blocks of one channel (17), at strides 1 and 2
// with same and valid padding (valid with rows the windows never reach, which the gradient crops), kernels 1, 2
// and 3, in float32 and float64. On XLA's CPU plugin the float32 folded gradients run in oneDNN.
func TestWeightGradInputByProducts(t *testing.T) {
	backend := testutil.Backend(t)
	type geometry struct {
		n, h, c, co, kernel, stride int
		same                        bool
	}
	cases := []geometry{
		{2, 5, 3, 4, 3, 1, true},
		{2, 6, 16, 5, 3, 2, true},
		{1, 5, 17, 3, 3, 1, false},
		{2, 4, 24, 4, 3, 1, true},
		{1, 7, 32, 3, 3, 2, false},
		{2, 3, 40, 2, 1, 1, true},
		{1, 4, 48, 3, 2, 1, true},
		{2, 8, 5, 3, 3, 2, false},
	}
	for _, dtype := range []dtypes.DType{dtypes.Float32, dtypes.Float64} {
		// One graph per dtype, every case side by side (a case's cost on XLA is its compilation); the inputs are
		// float64 and converted in the graph, the gradients converted back.
		var refs [][]float64
		var args []any
		for i, tc := range cases {
			rng := rand.New(rand.NewSource(int64(i + 1)))
			ref := newRefConv(tc.n, tc.h, tc.h, tc.c, tc.kernel, tc.kernel, tc.co, tc.stride, tc.same)
			x := testutil.RandomSlice(rng, tc.n*tc.h*tc.h*tc.c)
			delta := testutil.RandomSlice(rng, tc.n*ref.outH*ref.outW*tc.co)
			refs = append(refs, ref.weightGrad(x, delta))
			args = append(args, tensors.FromFlatDataAndDimensions(x, tc.n, tc.h, tc.h, tc.c),
				tensors.FromFlatDataAndDimensions(delta, tc.n, ref.outH, ref.outW, tc.co))
		}
		outs := MustExecOnceN(backend, func(inputs []*Node) []*Node {
			var results []*Node
			for i, tc := range cases {
				x, delta := ConvertDType(inputs[2*i], dtype), ConvertDType(inputs[2*i+1], dtype)
				geom := newConvGeometry(x.Shape(), tc.kernel, tc.kernel, tc.stride, tc.same)
				for _, layout := range []weightGradLayout{wgradTransposed, wgradProducts, wgradFolded, wgradChannelAxis} {
					op := nativeConvOp{geom: geom, wgradLayout: layout}
					results = append(results, ConvertDType(op.weightGrad(x, delta), dtypes.Float64))
				}
			}
			return results
		}, args...)
		for i, tc := range cases {
			t.Run(fmt.Sprintf("%s/c%d-co%d-k%d-s%d-same=%v", dtype, tc.c, tc.co, tc.kernel, tc.stride, tc.same), func(t *testing.T) {
				results := outs[4*i : 4*i+4]
				byTranspose, byProducts := testutil.Flat64(t, results[0]), testutil.Flat64(t, results[1])
				folded, channelAxis := testutil.Flat64(t, results[2]), testutil.Flat64(t, results[3])
				for _, out := range results {
					require.Equal(t, []int{tc.kernel, tc.kernel, tc.c, tc.co}, out.Shape().Dimensions)
				}
				require.Equal(t, byTranspose, byProducts, "the weight gradient laid out by products differs from the transposed one")
				tolerance := 1e-12
				if dtype == dtypes.Float32 {
					tolerance = 1e-4
				}
				for j, want := range refs[i] {
					require.InDelta(t, want, byProducts[j], tolerance*(1+math.Abs(want)), "element %d against the plain-Go reference", j)
					require.InDelta(t, want, folded[j], tolerance*(1+math.Abs(want)), "2-D fold: element %d against the plain-Go reference", j)
					require.InDelta(t, want, channelAxis[j], tolerance*(1+math.Abs(want)), "channel axis: element %d against the plain-Go reference", j)
				}
			})
		}
	}
}

// TestWeightGradInputChoice: "auto" takes the channel-axis form where the backend runs it as oneDNN's backward
// weights, else folds the weight gradient's operands where the backend runs float32 convolutions in oneDNN
// (float32 only), and otherwise lays its input out by products on XLA's CPU plugin only,
// and only where its channels come in blocks of 8 or more (not an image's 3, nor a prime 17); "transpose",
// "products" and "folded" say which, and any other value panics with an error naming the setting and its choices.
func TestWeightGradInputChoice(t *testing.T) {
	backend := testutil.Backend(t)
	oneDNN := xla.OneDNNConvolutions(backend)
	productsOnCPU := func(blocks bool) weightGradLayout {
		if xla.IsCPU(backend) && blocks {
			return wgradProducts
		}
		return wgradTransposed
	}
	amx := cpu.X86.HasAMXTile
	backwardWeights := xla.OneDNNBackwardWeights(backend)
	autoFloat32 := func(channels int, blocks bool) weightGradLayout {
		if backwardWeights {
			return backwardWeightsForm(channels)
		}
		if oneDNN {
			return foldedForm(channels, amx)
		}
		return productsOnCPU(blocks)
	}
	for _, tc := range []struct {
		value    string
		dtype    dtypes.DType
		channels int
		want     weightGradLayout
	}{
		{"auto", dtypes.Float32, 16, autoFloat32(16, true)},
		{"auto", dtypes.Float32, 64, autoFloat32(64, true)},
		{"auto", dtypes.Float32, 24, autoFloat32(24, true)},
		{"auto", dtypes.Float32, 3, autoFloat32(3, false)},
		{"auto", dtypes.Float32, 17, autoFloat32(17, false)},
		{"auto", dtypes.Float64, 16, productsOnCPU(true)},
		{"auto", dtypes.Float64, 3, productsOnCPU(false)},
		{"transpose", dtypes.Float32, 16, wgradTransposed},
		{"products", dtypes.Float32, 16, wgradProducts},
		{"products", dtypes.Float32, 3, wgradProducts},
		{"folded", dtypes.Float64, 16, foldedForm(16, amx)},
		{"folded", dtypes.Float32, 3, wgradFolded},
		{"folded", dtypes.Float32, 64, wgradChannelAxis},
	} {
		ctx := context.New()
		ctx.SetParam(ParamConvWeightGradInput, tc.value)
		g := NewGraph(backend, "choice")
		require.Equal(t, tc.want, chooseWeightGradLayout(ctx, g, tc.dtype, tc.channels), "%s=%q, %s, %d channels",
			ParamConvWeightGradInput, tc.value, tc.dtype, tc.channels)
		g.Finalize()
	}
	ctx := context.New()
	ctx.SetParam(ParamConvWeightGradInput, "Products")
	g := NewGraph(backend, "choice")
	defer g.Finalize()
	require.PanicsWithError(t, `feedback_conv_wgrad_input="Products" is not valid: must be one of auto, transpose, products, folded`,
		func() { chooseWeightGradLayout(ctx, g, dtypes.Float32, 16) })
}

// TestBackwardWeightsForm: with oneDNN's backward weights, the channel-axis form (the primitive) from 16
// channels up, the 2-D fold (oneDNN's forward convolution) below.
func TestBackwardWeightsForm(t *testing.T) {
	for channels, want := range map[int]weightGradLayout{3: wgradFolded, 15: wgradFolded, 16: wgradChannelAxis,
		32: wgradChannelAxis, 63: wgradChannelAxis, 64: wgradChannelAxis, 512: wgradChannelAxis} {
		require.Equal(t, want, backwardWeightsForm(channels), "%d channels", channels)
	}
}

// TestFoldedForm: the folded weight gradient is the 2-D fold below 16 channels and the 3-D convolution from 16,
// or from 32 on a CPU with AMX tiles.
func TestFoldedForm(t *testing.T) {
	for _, tc := range []struct {
		channels int
		amx      bool
		want     weightGradLayout
	}{
		{3, false, wgradFolded},
		{15, false, wgradFolded},
		{16, false, wgradChannelAxis},
		{64, false, wgradChannelAxis},
		{3, true, wgradFolded},
		{16, true, wgradFolded},
		{31, true, wgradFolded},
		{32, true, wgradChannelAxis},
		{512, true, wgradChannelAxis},
	} {
		require.Equal(t, tc.want, foldedForm(tc.channels, tc.amx), "%d channels, AMX %v", tc.channels, tc.amx)
	}
}
