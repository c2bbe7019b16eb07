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

// ConvConfig holds the backend's convolution options.
type ConvConfig struct {
	// UseOneDNN sends float32 convolutions that oneDNN's forward primitive can run (OneDNNConvolutionEligible)
	// to the CPU plugin's oneDNN custom call instead of XLA's own convolution emitter. Set with the plugin option
	// "onednn_conv" (e.g. "xla:cpu,onednn_conv"); it only works with a CPU plugin built with oneDNN, which
	// registers the call's target (compilation fails otherwise).
	UseOneDNN bool
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
