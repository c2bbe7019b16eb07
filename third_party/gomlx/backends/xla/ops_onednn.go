package xla

import (
	"encoding/json"
	"slices"

	"github.com/gomlx/go-xla/pkg/stablehlo"
	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/shapeinference"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/pkg/errors"
)

// OneDNNConvolutionTarget is the custom call with which XLA's CPU plugin runs oneDNN's forward convolution.
const OneDNNConvolutionTarget = "__onednn$convolution"

// BackwardWeightsTarget is the typed-FFI custom call to which ConvGeneral, with ConvConfig.BackwardWeights, sends
// the convolutions that are 2-D weight gradients (BackwardWeightsForm). The program registers its handler with the
// plugin (pjrt.Plugin.RegisterFFIHandler, platform "Host") before it compiles one: nowt registers oneDNN's
// backward-weights primitive. The handler gets x [n, h, w, c] and δ [n, oh, ow, cout] as they lie and an int64
// operand [6] (strides along h and w, then the paddings top, bottom, left and right), and writes dW
// [kh, kw, c, cout].
const BackwardWeightsTarget = "onednn_conv_backward_weights"

// ConvConfig holds the backend's convolution options.
type ConvConfig struct {
	// UseOneDNN sends float32 convolutions that oneDNN's forward primitive can run (OneDNNConvolutionEligible)
	// to the CPU plugin's oneDNN custom call instead of XLA's own convolution emitter. Set with the plugin option
	// "onednn_conv" (e.g. "xla:cpu,onednn_conv"); it only works with a CPU plugin built with oneDNN, which
	// registers the call's target (compilation fails otherwise).
	UseOneDNN bool

	// BackwardWeights sends, with UseOneDNN, the float32 convolutions of BackwardWeightsForm to the typed-FFI
	// custom call BackwardWeightsTarget. Set with the plugin option "onednn_bwd_weights".
	BackwardWeights bool
}

// BackwardWeightsForm reports whether a convolution of input and kernel is a 2-D weight gradient written as one
// 3-D convolution with the channels as a spatial axis, and if so returns that gradient's geometry: input
// [1, n, h, w, c] (x, one item whose channels are the examples, its spatial axes h, w and c), kernel
// [n, oh, ow, 1, cout] (δ), output [1, kh, kw, c, cout] (dW), the kernel dilated by the strides along h and w, all
// else plain. Such a convolution computes dW[th, tw, ci, co] = Σ x[n, oh·sh+th−pt, ow·sw+tw−pl, ci]·δ[n, oh, ow, co],
// the weight gradient of a convolution of x with strides (sh, sw) and paddings (pt, pb, pl, pr).
func BackwardWeightsForm(input, kernel shapes.Shape, axes backends.ConvolveAxesConfig, strides []int,
	paddings [][2]int, inputDilations, kernelDilations []int, channelGroupCount, batchGroupCount int) (
	n, h, w, c, oh, ow, cout, kh, kw int, params []int64, ok bool) {
	if input.DType != dtypes.Float32 || kernel.DType != dtypes.Float32 || input.Rank() != 5 || kernel.Rank() != 5 ||
		channelGroupCount != 1 || batchGroupCount != 1 || len(paddings) != 3 || len(kernelDilations) != 3 {
		return
	}
	if axes.InputBatch != 0 || axes.InputChannels != 1 || !slices.Equal(axes.InputSpatial, []int{2, 3, 4}) ||
		axes.KernelInputChannels != 0 || axes.KernelOutputChannels != 4 || !slices.Equal(axes.KernelSpatial, []int{1, 2, 3}) ||
		axes.OutputBatch != 0 || axes.OutputChannels != 4 || !slices.Equal(axes.OutputSpatial, []int{1, 2, 3}) {
		return
	}
	if !slices.Equal(strides, []int{1, 1, 1}) || !slices.Equal(inputDilations, []int{1, 1, 1}) ||
		kernelDilations[2] != 1 || paddings[2] != [2]int{0, 0} {
		return
	}
	in, k := input.Dimensions, kernel.Dimensions
	if in[0] != 1 || k[3] != 1 || k[0] != in[1] {
		return
	}
	n, h, w, c = in[1], in[2], in[3], in[4]
	oh, ow, cout = k[1], k[2], k[4]
	sh, sw := kernelDilations[0], kernelDilations[1]
	kh = h + paddings[0][0] + paddings[0][1] - (oh-1)*sh
	kw = w + paddings[1][0] + paddings[1][1] - (ow-1)*sw
	if kh < 1 || kw < 1 || slices.ContainsFunc(paddings, func(p [2]int) bool { return p[0] < 0 || p[1] < 0 }) {
		return
	}
	params = []int64{int64(sh), int64(sw), int64(paddings[0][0]), int64(paddings[0][1]), int64(paddings[1][0]),
		int64(paddings[1][1])}
	return n, h, w, c, oh, ow, cout, kh, kw, params, true
}

// backwardWeights returns the convolution as the BackwardWeightsTarget call, or nil if it is not of
// BackwardWeightsForm.
func (b *Builder) backwardWeights(input, kernel *Node, axes backends.ConvolveAxesConfig, strides []int,
	paddings [][2]int, inputDilations, kernelDilations []int, channelGroupCount, batchGroupCount int) (*Node, error) {
	n, h, w, c, oh, ow, cout, kh, kw, params, ok := BackwardWeightsForm(input.shape, kernel.shape, axes, strides,
		paddings, inputDilations, kernelDilations, channelGroupCount, batchGroupCount)
	if !ok {
		return nil, nil
	}
	x, err := stablehlo.Reshape(input.value, ShapeToXLA(shapes.Make(dtypes.Float32, n, h, w, c)))
	if err != nil {
		return nil, err
	}
	delta, err := stablehlo.Reshape(kernel.value, ShapeToXLA(shapes.Make(dtypes.Float32, n, oh, ow, cout)))
	if err != nil {
		return nil, err
	}
	geometry, err := b.fn.ConstantFromFlatAndDimensions(params, len(params))
	if err != nil {
		return nil, err
	}
	dw, err := stablehlo.CustomCallFFI(BackwardWeightsTarget, ShapeToXLA(shapes.Make(dtypes.Float32, kh, kw, c, cout)),
		x, delta, geometry)
	if err != nil {
		return nil, err
	}
	output, err := stablehlo.Reshape(dw, ShapeToXLA(shapes.Make(dtypes.Float32, 1, kh, kw, c, cout)))
	if err != nil {
		return nil, err
	}
	return b.newNode(output), nil
}

// OneDNNConvolutionEligible reports whether ConvGeneral, with ConvConfig.UseOneDNN, sends a convolution of input
// and kernel to oneDNN's forward primitive: float32, 2 or 3 spatial axes, no input dilation, no negative padding,
// no grouping. The axes may be in any order: the call hands oneDNN each operand's strides, and oneDNN reorders what
// its kernels do not read as it lies. (A weight gradient written as a convolution whose batch is the input's
// channels and whose window is the image runs slower in oneDNN than in XLA's emitter; one with the examples as the
// channels of a one-item image whose channels are a third spatial axis, or are folded into the width's, runs
// faster than either.)
func OneDNNConvolutionEligible(input, kernel shapes.Shape, axes backends.ConvolveAxesConfig,
	paddings [][2]int, inputDilations []int, channelGroupCount, batchGroupCount int) bool {
	if spatial := len(axes.KernelSpatial); spatial != 2 && spatial != 3 {
		return false
	}
	if input.DType != dtypes.Float32 || kernel.DType != dtypes.Float32 {
		return false
	}
	if channelGroupCount != 1 || batchGroupCount != 1 {
		return false
	}
	if slices.ContainsFunc(inputDilations, func(d int) bool { return d != 1 }) {
		return false
	}
	if slices.ContainsFunc(paddings, func(p [2]int) bool { return p[0] < 0 || p[1] < 0 }) {
		return false
	}
	return true
}

// oneDNNConvolutionConfig is the backend configuration of the CPU plugin's oneDNN convolution call: the
// onednn_conv_config of XLA's CPU BackendConfig (xla/service/cpu/onednn_config.proto), as JSON, with the axes
// and window values as they are (the reading of the plugins built from XLA of 2025).
func oneDNNConvolutionConfig(kernelDims []int, axes backends.ConvolveAxesConfig, strides []int, paddings [][2]int,
	kernelDilations []int) (string, error) {
	rank := len(kernelDims)
	spatial := len(axes.KernelSpatial)
	if len(paddings) == 0 {
		paddings = make([][2]int, spatial)
	}
	type data struct {
		BatchDim    int   `json:"batch_dim"`
		FeatureDim  int   `json:"feature_dim"`
		SpatialDims []int `json:"spatial_dims"`
	}
	type filter struct {
		InputFeatureDim  int   `json:"input_feature_dim"`
		OutputFeatureDim int   `json:"output_feature_dim"`
		SpatialDims      []int `json:"spatial_dims"`
		Shape            []int `json:"shape"`
	}
	type layout struct {
		Dims   int     `json:"dims"`
		Data   *data   `json:"data,omitempty"`
		Filter *filter `json:"filter,omitempty"`
	}
	type window struct {
		Size            []int `json:"size"`
		PadLeft         []int `json:"pad_left"`
		PadRight        []int `json:"pad_right"`
		Strides         []int `json:"strides"`
		WindowDilations []int `json:"window_dilations"`
	}
	type convConfig struct {
		Dims          int    `json:"dims"`
		Input         layout `json:"input"`
		Kernel        layout `json:"kernel"`
		Output        layout `json:"output"`
		Window        window `json:"window"`
		FeatureGroups int    `json:"feature_groups"`
	}
	w := window{Strides: strides, WindowDilations: kernelDilations}
	for i, axis := range axes.KernelSpatial {
		w.Size = append(w.Size, kernelDims[axis])
		w.PadLeft = append(w.PadLeft, paddings[i][0])
		w.PadRight = append(w.PadRight, paddings[i][1])
	}
	config := map[string]convConfig{"onednn_conv_config": {
		Dims:   rank,
		Input:  layout{Dims: rank, Data: &data{axes.InputBatch, axes.InputChannels, axes.InputSpatial}},
		Kernel: layout{Dims: rank, Filter: &filter{axes.KernelInputChannels, axes.KernelOutputChannels, axes.KernelSpatial, kernelDims}},
		Output: layout{Dims: rank, Data: &data{axes.OutputBatch, axes.OutputChannels, axes.OutputSpatial}},
		Window: w, FeatureGroups: 1,
	}}
	encoded, err := json.Marshal(config)
	if err != nil {
		return "", errors.Wrap(err, "encoding the oneDNN convolution's configuration")
	}
	return string(encoded), nil
}

// oneDNNConvGeneral returns the convolution as the CPU plugin's oneDNN call, or nil if it is not eligible.
func (b *Builder) oneDNNConvGeneral(input, kernel *Node, axes backends.ConvolveAxesConfig, strides []int,
	paddings [][2]int, inputDilations, kernelDilations []int, channelGroupCount, batchGroupCount int) (*Node, error) {
	ones := slices.Repeat([]int{1}, len(axes.KernelSpatial))
	for _, values := range []*[]int{&strides, &inputDilations, &kernelDilations} {
		if len(*values) == 0 {
			*values = ones
		}
	}
	if !OneDNNConvolutionEligible(input.shape, kernel.shape, axes, paddings, inputDilations,
		channelGroupCount, batchGroupCount) {
		return nil, nil
	}
	if b.backend.ConvConfig.BackwardWeights {
		if node, err := b.backwardWeights(input, kernel, axes, strides, paddings, inputDilations, kernelDilations,
			channelGroupCount, batchGroupCount); node != nil || err != nil {
			return node, err
		}
	}
	outputShape, err := shapeinference.ConvGeneralOp(input.shape, kernel.shape, axes, strides, paddings,
		inputDilations, kernelDilations, channelGroupCount, batchGroupCount)
	if err != nil {
		return nil, err
	}
	config, err := oneDNNConvolutionConfig(kernel.shape.Dimensions, axes, strides, paddings, kernelDilations)
	if err != nil {
		return nil, err
	}
	output, err := stablehlo.CustomCall(OneDNNConvolutionTarget, config, ShapeToXLA(outputShape), input.value,
		kernel.value)
	if err != nil {
		return nil, err
	}
	return b.newNode(output), nil
}
