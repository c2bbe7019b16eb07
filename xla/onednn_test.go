//go:build linux && amd64 && cgo && !noxla

package xla

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"
	xlabackend "github.com/gomlx/gomlx/backends/xla"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/pkg/errors"
	"github.com/stretchr/testify/require"
)

// TestWithOneDNNConv: the option is added for the CPU plugin with one host device only, not twice, and never
// against "noonednn_conv", which is nowt's and is taken out of what GoMLX gets; asked for, it stays.
func TestWithOneDNNConv(t *testing.T) {
	require.True(t, gomlxHasOneDNNConv(), "nowt builds with the GoMLX of third_party/, which has the option")
	for _, tc := range []struct {
		opts           []string
		cpu, oneDevice bool
		want           []string
		wantAdded      bool
	}{
		{nil, true, true, []string{OneDNNConvOption}, true},
		{[]string{"shared_buffers"}, true, true, []string{"shared_buffers", OneDNNConvOption}, true},
		{nil, true, false, nil, false},
		{[]string{OneDNNConvOption}, true, true, []string{OneDNNConvOption}, false},
		{[]string{OneDNNConvOption}, true, false, []string{OneDNNConvOption}, false},
		{[]string{NoOneDNNConvOption, "shared_buffers"}, true, true, []string{"shared_buffers"}, false},
		{[]string{"tf32"}, false, true, []string{"tf32"}, false},
		{[]string{NoOneDNNConvOption}, false, true, []string{}, false},
	} {
		got, added, err := withOneDNNConv(tc.opts, tc.cpu, tc.oneDevice)
		require.NoError(t, err)
		require.Equal(t, tc.want, got, "%v on a CPU plugin: %v, one device: %v", tc.opts, tc.cpu, tc.oneDevice)
		require.Equal(t, tc.wantAdded, added, "%v on a CPU plugin: %v, one device: %v", tc.opts, tc.cpu, tc.oneDevice)
	}
}

// TestOneDNNConvolutionsMatchXLA: every kind of convolution nowt's layers emit — forward (stride 1 and 2, the
// 3-channel stem, 1×1 shortcuts, a dilated kernel), the input gradient's (kernel axes swapped), the weight
// gradient's (δ as the kernel, a window the size of the image: with the input's channels as the batch, with its
// width and channels folded into one axis, and with its channels as a third spatial axis, feedback's layouts for
// oneDNN), a plain 3-D convolution, and a strided layer's input gradient (input dilation) and a 1-D convolution
// (both left to XLA), in float32 and float64 — gives the same values on the CPU plugin with oneDNN's convolutions
// as with XLA's own, and the backend says which it uses.
func TestOneDNNConvolutionsMatchXLA(t *testing.T) {
	cpuPluginOrSkip(t)
	withOneDNN, err := New("xla:cpu", nil)
	require.NoError(t, err)
	defer withOneDNN.Finalize()
	without, err := New("xla:cpu,"+NoOneDNNConvOption, nil)
	require.NoError(t, err)
	defer without.Finalize()
	require.True(t, OneDNNConvolutions(withOneDNN))
	require.False(t, OneDNNConvolutions(without))
	engineSuffix := ", 1 device, oneDNN convolutions)"
	if OneDNNBackwardWeights(withOneDNN) {
		engineSuffix = ", 1 device, oneDNN convolutions and backward weights)"
	}
	require.True(t, strings.HasSuffix(Engine(withOneDNN), engineSuffix), Engine(withOneDNN))
	require.True(t, strings.HasSuffix(Engine(without), ", 1 device)"), Engine(without))
	twoDevices, err := New("xla:cpu,devices=2", nil)
	require.NoError(t, err)
	require.False(t, OneDNNConvolutions(twoDevices), "several host devices: XLA's partitioner cannot split the call")
	twoDevices.Finalize()

	nhwc := graph.ConvolveAxesConfig{InputBatch: 0, InputChannels: 3, InputSpatial: []int{1, 2},
		KernelInputChannels: 2, KernelOutputChannels: 3, KernelSpatial: []int{0, 1},
		OutputBatch: 0, OutputChannels: 3, OutputSpatial: []int{1, 2}}
	inputGradient := nhwc
	inputGradient.KernelInputChannels, inputGradient.KernelOutputChannels = 3, 2
	weightGradient := graph.ConvolveAxesConfig{InputBatch: 0, InputChannels: 3, InputSpatial: []int{1, 2},
		KernelInputChannels: 0, KernelOutputChannels: 3, KernelSpatial: []int{1, 2},
		OutputBatch: 2, OutputChannels: 3, OutputSpatial: []int{0, 1}}
	foldedWeightGradient := graph.ConvolveAxesConfig{InputBatch: 0, InputChannels: 1, InputSpatial: []int{2, 3},
		KernelInputChannels: 0, KernelOutputChannels: 3, KernelSpatial: []int{1, 2},
		OutputBatch: 2, OutputChannels: 3, OutputSpatial: []int{0, 1}}
	type oneDNNCase struct {
		name              string
		dtype             dtypes.DType
		x, kernel         []int
		axes              graph.ConvolveAxesConfig
		stride, dilation  int
		inputDilation     int
		padLow, padHigh   int
		wantOneDNN        bool
		relativeTolerance float64
		// spatialDilations and paddings are per spatial axis; the table above sets them from dilation and the pads.
		spatialDilations []int
		paddings         [][2]int
	}
	var cases []oneDNNCase
	for _, tc := range []oneDNNCase{
		{"forward 3x3", dtypes.Float32, []int{4, 8, 8, 16}, []int{3, 3, 16, 16}, nhwc, 1, 1, 1, 1, 1, true, 1e-5, nil, nil},
		{"forward stride 2", dtypes.Float32, []int{4, 8, 8, 16}, []int{3, 3, 16, 32}, nhwc, 2, 1, 1, 1, 1, true, 1e-5, nil, nil},
		{"stem 7x7 stride 2", dtypes.Float32, []int{2, 20, 20, 3}, []int{7, 7, 3, 8}, nhwc, 2, 1, 1, 3, 3, true, 1e-5, nil, nil},
		{"shortcut 1x1 stride 2", dtypes.Float32, []int{4, 8, 8, 16}, []int{1, 1, 16, 32}, nhwc, 2, 1, 1, 0, 0, true, 1e-5, nil, nil},
		{"dilated kernel", dtypes.Float32, []int{2, 9, 9, 4}, []int{3, 3, 4, 4}, nhwc, 1, 2, 1, 2, 2, true, 1e-5, nil, nil},
		{"uneven padding", dtypes.Float32, []int{2, 7, 6, 4}, []int{3, 3, 4, 5}, nhwc, 2, 1, 1, 0, 1, true, 1e-5, nil, nil},
		{"input gradient", dtypes.Float32, []int{4, 8, 8, 16}, []int{3, 3, 16, 16}, inputGradient, 1, 1, 1, 1, 1, true, 1e-5, nil, nil},
		{"weight gradient, batch = channels", dtypes.Float32, []int{16, 8, 8, 4}, []int{4, 8, 8, 16}, weightGradient, 1, 1, 1, 1, 1, true, 1e-5, nil, nil},
		{"strided input gradient (XLA's)", dtypes.Float32, []int{4, 4, 4, 32}, []int{3, 3, 16, 32}, inputGradient, 1, 1, 2, 1, 2, false, 1e-5, nil, nil},
		{"float64 (XLA's)", dtypes.Float64, []int{2, 6, 6, 4}, []int{3, 3, 4, 4}, nhwc, 1, 1, 1, 1, 1, false, 1e-12, nil, nil},
	} {
		tc.spatialDilations = []int{tc.dilation, tc.dilation}
		tc.paddings = [][2]int{{tc.padLow, tc.padHigh}, {tc.padLow, tc.padHigh}}
		cases = append(cases, tc)
	}
	// The weight gradient written as one convolution of x as it lies (feedback's "folded" layout), δ [n, oh, ow,
	// cout] as the kernel, at stride 1 and 2 as feedback's 3×3 "same" layers write it:
	//   - folded (below 16 channels): x [1, n, h, w·c] with the examples as channels, δ dilated by the stride and by
	//     stride·c along the folded axis, whose padding is c times the width's; the output [kh, kw·c, 1, cout] is
	//     the kernel's gradient [kh, kw, c, cout];
	//   - channel axis (from 16): x [1, n, h, w, c], h, w and c its spatial axes, δ read as [n, oh, ow, 1, cout]
	//     and dilated by the stride along h and w; the output [1, kh, kw, c, cout] is the kernel's gradient.
	channelAxisWeightGradient := graph.ConvolveAxesConfig{InputBatch: 0, InputChannels: 1, InputSpatial: []int{2, 3, 4},
		KernelInputChannels: 0, KernelOutputChannels: 4, KernelSpatial: []int{1, 2, 3},
		OutputBatch: 0, OutputChannels: 4, OutputSpatial: []int{1, 2, 3}}
	for _, f := range []struct {
		name          string
		n, h, c, cout int
		stride        int
		pad           [2]int
		channelAxis   bool
	}{
		{"folded weight gradient", 4, 8, 4, 16, 1, [2]int{1, 1}, false},
		{"folded weight gradient, stride 2", 4, 8, 3, 8, 2, [2]int{0, 1}, false},
		{"channel-axis weight gradient", 4, 8, 16, 8, 1, [2]int{1, 1}, true},
		{"channel-axis weight gradient, stride 2", 4, 8, 16, 8, 2, [2]int{0, 1}, true},
	} {
		outSide := (f.h+f.pad[0]+f.pad[1]-3)/f.stride + 1
		tc := oneDNNCase{name: f.name, dtype: dtypes.Float32, stride: 1, inputDilation: 1, wantOneDNN: true,
			relativeTolerance: 1e-5}
		if f.channelAxis {
			tc.x, tc.kernel, tc.axes = []int{1, f.n, f.h, f.h, f.c}, []int{f.n, outSide, outSide, 1, f.cout}, channelAxisWeightGradient
			tc.spatialDilations, tc.paddings = []int{f.stride, f.stride, 1}, [][2]int{f.pad, f.pad, {0, 0}}
		} else {
			tc.x, tc.kernel, tc.axes = []int{1, f.n, f.h, f.h * f.c}, []int{f.n, outSide, outSide, f.cout}, foldedWeightGradient
			tc.spatialDilations, tc.paddings = []int{f.stride, f.stride * f.c}, [][2]int{f.pad, {f.pad[0] * f.c, f.pad[1] * f.c}}
		}
		cases = append(cases, tc)
	}
	// A plain 3-D convolution (channels last), which oneDNN takes too, and a 1-D one, which stays XLA's.
	ndhwc := graph.ConvolveAxesConfig{InputBatch: 0, InputChannels: 4, InputSpatial: []int{1, 2, 3},
		KernelInputChannels: 3, KernelOutputChannels: 4, KernelSpatial: []int{0, 1, 2},
		OutputBatch: 0, OutputChannels: 4, OutputSpatial: []int{1, 2, 3}}
	cases = append(cases, oneDNNCase{name: "forward 3-D", dtype: dtypes.Float32, x: []int{2, 5, 6, 7, 4},
		kernel: []int{3, 3, 3, 4, 8}, axes: ndhwc, stride: 1, inputDilation: 1, spatialDilations: []int{1, 1, 1},
		paddings: [][2]int{{1, 1}, {0, 1}, {1, 0}}, wantOneDNN: true, relativeTolerance: 1e-5})
	nwc := graph.ConvolveAxesConfig{InputBatch: 0, InputChannels: 2, InputSpatial: []int{1},
		KernelInputChannels: 1, KernelOutputChannels: 2, KernelSpatial: []int{0},
		OutputBatch: 0, OutputChannels: 2, OutputSpatial: []int{1}}
	cases = append(cases, oneDNNCase{name: "1-D (XLA's)", dtype: dtypes.Float32, x: []int{2, 9, 4},
		kernel: []int{3, 4, 4}, axes: nwc, stride: 1, inputDilation: 1, spatialDilations: []int{1},
		paddings: [][2]int{{1, 1}}, wantOneDNN: false, relativeTolerance: 1e-5})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(5, uint64(len(tc.name))))
			random := func(dims []int) *tensors.Tensor {
				t := tensors.FromShape(shapes.Make(tc.dtype, dims...))
				t.MustMutableFlatData(func(flat any) {
					switch f := flat.(type) {
					case []float32:
						for i := range f {
							f[i] = float32(rng.NormFloat64())
						}
					case []float64:
						for i := range f {
							f[i] = rng.NormFloat64()
						}
					}
				})
				return t
			}
			x, kernel := random(tc.x), random(tc.kernel)
			spatial := len(tc.axes.KernelSpatial)
			paddings, dilations := tc.paddings, tc.spatialDilations
			strides, inputDilations := make([]int, spatial), make([]int, spatial)
			for i := range spatial {
				strides[i], inputDilations[i] = tc.stride, tc.inputDilation
			}
			run := func(b backends.Backend) []float64 {
				exec, err := graph.NewExec(b, func(x, kernel *graph.Node) *graph.Node {
					return graph.ConvGeneral(x, kernel, tc.axes, strides, paddings, inputDilations, dilations, 1, 1)
				})
				require.NoError(t, err)
				defer exec.Finalize()
				xCopy, err := x.LocalClone()
				require.NoError(t, err)
				kernelCopy, err := kernel.LocalClone()
				require.NoError(t, err)
				outs, err := exec.Exec(xCopy, kernelCopy)
				require.NoError(t, err)
				var values []float64
				outs[0].MustConstFlatData(func(flat any) {
					switch f := flat.(type) {
					case []float32:
						for _, v := range f {
							values = append(values, float64(v))
						}
					case []float64:
						values = f
					}
				})
				return values
			}
			got, want := run(withOneDNN), run(without)
			require.Len(t, got, len(want))
			require.Equal(t, tc.wantOneDNN, xlabackend.OneDNNConvolutionEligible(x.Shape(), kernel.Shape(),
				tc.axes, paddings, inputDilations, 1, 1), "sent to oneDNN")
			scale := 0.0
			for _, v := range want {
				scale = math.Max(scale, math.Abs(v))
			}
			for i := range want {
				require.InDelta(t, want[i], got[i], tc.relativeTolerance*scale, "element %d", i)
			}
		})
	}
}

// TestOneDNNProbeFailure: where the probe fails (a CPU plugin built without oneDNN's call, or reading its
// configuration otherwise), a backend nowt chose oneDNN for falls back to XLA's convolutions, and one asked for
// with the option explicitly is refused with an error naming the option.
func TestOneDNNProbeFailure(t *testing.T) {
	cpuPluginOrSkip(t)
	saved := oneDNNProbe
	defer func() { oneDNNProbe = saved }()
	oneDNNProbe = func(backends.Backend) error { return errors.New("custom call target not found") }

	b, err := New("xla:cpu", nil)
	require.NoError(t, err)
	defer b.Finalize()
	require.False(t, OneDNNConvolutions(b))
	require.NotContains(t, Engine(b), "oneDNN")

	_, err = New("xla:cpu,"+OneDNNConvOption, nil)
	require.ErrorContains(t, err, `option "onednn_conv": the plugin`)
	require.ErrorContains(t, err, "custom call target not found")
}

// TestOneDNNProbeComputes: the probe itself passes on the installed CPU plugin, and its reference convolution
// is the plain one (checked against a hand-computed element).
func TestOneDNNProbeComputes(t *testing.T) {
	cpuPluginOrSkip(t)
	b, err := New("xla:cpu,"+NoOneDNNConvOption, nil)
	require.NoError(t, err)
	defer b.Finalize()
	require.NoError(t, probeOneDNNConvolution(b), "the probe's reference disagrees with XLA's own convolution")

	// x 1×2×2×1 = [1 2; 3 4], kernel 3×3×1×1 all ones, pad 1: every output is the sum of the image, 10.
	out := convolveNHWC([]float32{1, 2, 3, 4}, 1, 2, 2, 1, []float32{1, 1, 1, 1, 1, 1, 1, 1, 1}, 3, 1, 1, 1, 1, 2, 2)
	require.Equal(t, []float64{10, 10, 10, 10}, out)
}
