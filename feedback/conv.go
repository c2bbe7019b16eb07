package feedback

import (
	"fmt"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/nowt-ml/nowt/layers"
	"github.com/nowt-ml/nowt/xla"
	"golang.org/x/sys/cpu"
)

// Conv2DBuilder configures a feedback-aware 2D convolution, channels-last ([batch, height, width, channels]),
// with kernel W of shape [kh, kw, cin, cout]. Create it with [NewConv2D], finish with Done.
type Conv2DBuilder struct {
	ctx         *context.Context
	x           *Node
	outChannels int
	kernelH     int
	kernelW     int
	stride      int
	same        bool
	useBias     bool
	init        context.VariableInitializer
}

// NewConv2D starts a convolution with outChannels filters of size kernelSize×kernelSize, stride 1,
// "same" padding and a bias. Configure it with the builder's methods.
func NewConv2D(ctx *context.Context, x *Node, outChannels, kernelSize int) *Conv2DBuilder {
	return &Conv2DBuilder{ctx: ctx, x: x, outChannels: outChannels, kernelH: kernelSize, kernelW: kernelSize,
		stride: 1, same: true, useBias: true}
}

// Stride sets the stride on both spatial axes (default 1).
func (b *Conv2DBuilder) Stride(stride int) *Conv2DBuilder { b.stride = stride; return b }

// PadSame selects "same" padding (the default): (k−1)/2 before and k/2 after each spatial axis, which for
// odd kernels is PyTorch's padding=k//2; the output has ceil(size/stride) positions.
func (b *Conv2DBuilder) PadSame() *Conv2DBuilder { b.same = true; return b }

// NoPadding selects "valid" padding.
func (b *Conv2DBuilder) NoPadding() *Conv2DBuilder { b.same = false; return b }

// Bias sets whether the layer has a bias (default true).
func (b *Conv2DBuilder) Bias(useBias bool) *Conv2DBuilder { b.useBias = useBias; return b }

// Initializer sets the initializer of W (and, independently drawn, of B). nil means He-normal.
func (b *Conv2DBuilder) Initializer(init context.VariableInitializer) *Conv2DBuilder {
	b.init = init
	return b
}

// Done builds the layer and returns its output [batch, outH, outW, outChannels].
func (b *Conv2DBuilder) Done() *Node {
	x := b.x
	if b.ctx == nil {
		panic("feedback.Conv2D: nil context")
	}
	switch {
	case x == nil:
		panic(fmt.Sprintf("feedback.Conv2D(%s): nil input", b.ctx.Scope()))
	case x.Rank() != 4:
		panic(fmt.Sprintf("feedback.Conv2D(%s): input must be [batch, height, width, channels], got shape %s", b.ctx.Scope(), x.Shape()))
	case !x.DType().IsFloat(): // an integer kernel would be initialised to zeros
		panic(fmt.Sprintf("feedback.Conv2D(%s): input must be of a float type, got %s: convert it first (ConvertDType)",
			b.ctx.Scope(), x.DType()))
	case b.outChannels < 1:
		panic(fmt.Sprintf("feedback.Conv2D(%s): output channels must be ≥ 1, got %d", b.ctx.Scope(), b.outChannels))
	case b.kernelH < 1 || b.kernelW < 1:
		panic(fmt.Sprintf("feedback.Conv2D(%s): kernel size must be ≥ 1, got %dx%d", b.ctx.Scope(), b.kernelH, b.kernelW))
	case b.stride < 1:
		panic(fmt.Sprintf("feedback.Conv2D(%s): stride must be ≥ 1, got %d", b.ctx.Scope(), b.stride))
	}
	geom := newConvGeometry(x.Shape(), b.kernelH, b.kernelW, b.stride, b.same)
	if geom.outH < 1 || geom.outW < 1 {
		panic(&layers.InputTooSmallError{Layer: fmt.Sprintf("feedback.Conv2D(%s)", b.ctx.Scope()), Input: x.Shape(),
			Kind: "kernel", Height: b.kernelH, Width: b.kernelW})
	}
	kernelShape := shapes.Make(x.DType(), b.kernelH, b.kernelW, geom.inC, b.outChannels)
	rule, lg := newLayerWeights(b.ctx, KindConv, kernelShape, b.init, x.Graph())
	var op linearOp
	if useNativeConv(b.ctx, x.Graph(), geom) {
		op = nativeConvOp{geom: geom, wgradLayout: chooseWeightGradLayout(b.ctx, x.Graph(), x.DType(), geom.inC)}
	} else {
		op = newPatchConvOp(geom, b.outChannels)
	}
	y := withFeedback(rule, lg, x, op)
	if b.useBias {
		y = Add(y, ExpandLeftToRank(biasValue(b.ctx, x.Graph(), x.DType(), b.outChannels), 4))
	}
	return y
}

// useNativeConv decides, in one place, how a convolution of geometry geom runs: the backend's native
// convolution on backends with XLA's full op set (told by the Reverse op, which the pure-Go backend lacks), else
// patches × matmul, which on the pure-Go backend is 7–10× faster than its native convolution (BenchmarkLayer,
// conv3x3 vs conv3x3-native). On XLA's CPU plugin a layer whose input or output is at most tinySide pixels on a
// side takes patches too: the plugin runs a convolution that reads a 2×2 image at a few GFLOP/s (ResNet-18's
// last stage on 64×64 images: 512 channels at 2×2, 46 ms a convolution against 1 as patches; the step 309 ms
// against 74 at 72×72; BenchmarkConvParts' b8- geometries). Both are exact; ParamConvImpl overrides the choice.
func useNativeConv(ctx *context.Context, g *Graph, geom convGeometry) bool {
	switch impl := settingValue[string](ctx, ParamConvImpl); impl {
	case "native":
		return true
	case "patches":
		return false
	case "auto", "":
		if !hasReverse(g) {
			return false
		}
		return !(xla.IsCPU(g.Backend()) && geom.tiny())
	default:
		panic(fmt.Sprintf("feedback: %s=%q is not valid: use auto, native or patches", ParamConvImpl, impl))
	}
}

// hasReverse tells whether g's backend has the Reverse op: XLA's backends do, the pure-Go one does not. It
// decides the native convolution's default, how its kernel is flipped, and how autodiff reaches its gradients.
func hasReverse(g *Graph) bool {
	return g.Backend().Capabilities().Operations[backends.OpTypeReverse]
}

// tinySide is the largest image side, input's or output's, at which "auto" lowers a convolution on XLA's CPU
// plugin to patches × matmul (useNativeConv).
const tinySide = 2

// tiny tells whether the convolution reads or writes an image at most tinySide pixels on a side.
func (g convGeometry) tiny() bool {
	return min(g.h, g.w, g.outH, g.outW) <= tinySide
}

// weightGradLayout is how the native convolution's weight gradient hands the layer's input x [n, h, w, cin] and
// δ [n, oh, ow, cout] to its convolution (ParamConvWeightGradInput).
type weightGradLayout int

const (
	// wgradTransposed: x with cin as the convolution's batch and the examples as its channels, δ as the kernel,
	// both as they lie; the compiler lays them out for its convolution ([cin, h, w, n] on XLA's CPU plugin).
	wgradTransposed weightGradLayout = iota
	// wgradProducts: the same convolution, with x laid out as [cin, h, w, n] by identity products
	// (channelsFirstByProducts).
	wgradProducts
	// wgradFolded: x as it lies, which needs no transpose at all, its width and channels folded into one axis of
	// a 2-D convolution (foldedWeightGrad).
	wgradFolded
	// wgradChannelAxis: x as it lies, its channels a third spatial axis of a 3-D convolution
	// (channelAxisWeightGrad).
	wgradChannelAxis
)

// chooseWeightGradLayout decides, per ParamConvWeightGradInput, how the native weight gradient of a layer with
// inC input channels of type dtype lays out its operands. "folded" takes foldedForm's form for inC. "auto" takes
// backwardWeightsForm's for float32 where the backend runs the channel-axis form as oneDNN's backward-weights
// primitive (xla.OneDNNBackwardWeights; perf-analysis §24), and otherwise folds where the backend runs float32
// convolutions in oneDNN (xla.OneDNNConvolutions): there it needs none of the products' layout passes and takes
// 0.42–0.65 of their time per layer (BenchmarkConvParts' dw parts, perf-analysis §22). Elsewhere on XLA's CPU
// plugin, whose transposes are the slow part of that gradient (§17), it uses products where the channels come in
// blocks of at least minProductBlock (an image's 3 channels make products of 3×3 blocks, which the plugin runs
// slower than the transpose: ResNet-18's stem weight gradient 22 against 13 ms); other engines lay out tensors
// their own way.
func chooseWeightGradLayout(ctx *context.Context, g *Graph, dtype dtypes.DType, inC int) weightGradLayout {
	switch v := settingValue[string](ctx, ParamConvWeightGradInput); v {
	case "folded":
		return foldedForm(inC, cpu.X86.HasAMXTile)
	case "products":
		return wgradProducts
	case "transpose":
		return wgradTransposed
	case "auto":
		switch {
		case dtype == dtypes.Float32 && xla.OneDNNBackwardWeights(g.Backend()):
			return backwardWeightsForm(inC)
		case dtype == dtypes.Float32 && xla.OneDNNConvolutions(g.Backend()):
			return foldedForm(inC, cpu.X86.HasAMXTile)
		case xla.IsCPU(g.Backend()) && layers.IdentityBlock(inC) >= minProductBlock:
			return wgradProducts
		default:
			return wgradTransposed
		}
	default: // settingValue has checked the value against the setting's choices
		panic(fmt.Sprintf("feedback: %s=%q is not handled", ParamConvWeightGradInput, v))
	}
}

// foldedForm is the form the "folded" weight gradient of a layer with inC input channels takes: the 3-D
// convolution (channelAxisWeightGrad) from minChannelAxisChannels channels, or from minChannelAxisChannelsAMX
// on a CPU with AMX tiles (amx), and below that the 2-D fold (foldedWeightGrad). The two forms hand oneDNN the
// same sums in different shapes, and which is faster depends on the CPU (perf-analysis §24).
func foldedForm(inC int, amx bool) weightGradLayout {
	least := minChannelAxisChannels
	if amx {
		least = minChannelAxisChannelsAMX
	}
	if inC >= least {
		return wgradChannelAxis
	}
	return wgradFolded
}

// backwardWeightsForm is the weight gradient's form where the backend runs the channel-axis form as oneDNN's
// backward-weights primitive (xla.OneDNNBackwardWeights): that form from minBackwardWeightsChannels input channels,
// and the 2-D fold below (which the backend leaves to oneDNN's forward convolution).
func backwardWeightsForm(inC int) weightGradLayout {
	if inC >= minBackwardWeightsChannels {
		return wgradChannelAxis
	}
	return wgradFolded
}

// minBackwardWeightsChannels is the fewest input channels whose weight gradients go to oneDNN's backward-weights
// primitive (backwardWeightsForm). The handler splits each gradient's examples over XLA's threads (xla/onednnbw);
// on the Intel Xeon of perf-analysis §24 that made ResNet-20's step at batch 64 0.96–0.98 of its time with only
// the 16–63-channel layers there, and ResNet-18's (64–512 channels) level. Below 16 — an image's 3 channels — the
// handler and the 2-D fold were level too (ResNet-18's 7×7 first layer included), and the 2-D fold stays.
const minBackwardWeightsChannels = 16

// convGeometry holds the static shapes of one convolution.
type convGeometry struct {
	n, h, w, inC        int
	kh, kw, stride      int
	padTop, padLeft     int
	padBottom, padRight int
	outH, outW          int
}

func newConvGeometry(xShape shapes.Shape, kh, kw, stride int, same bool) convGeometry {
	g := convGeometry{n: xShape.Dim(0), h: xShape.Dim(1), w: xShape.Dim(2), inC: xShape.Dim(3), kh: kh, kw: kw, stride: stride}
	if same {
		g.padTop, g.padBottom = (kh-1)/2, kh/2
		g.padLeft, g.padRight = (kw-1)/2, kw/2
	}
	g.outH = (g.h+g.padTop+g.padBottom-kh)/stride + 1
	g.outW = (g.w+g.padLeft+g.padRight-kw)/stride + 1
	return g
}

func (g convGeometry) paddings() [][2]int {
	return [][2]int{{g.padTop, g.padBottom}, {g.padLeft, g.padRight}}
}

// channelsLastAxes is the convolution axes configuration for NHWC inputs and HWIO kernels.
var channelsLastAxes = backends.ConvolveAxesConfig{
	InputBatch: 0, InputChannels: 3, InputSpatial: []int{1, 2},
	KernelInputChannels: 2, KernelOutputChannels: 3, KernelSpatial: []int{0, 1},
	OutputBatch: 0, OutputChannels: 3, OutputSpatial: []int{1, 2},
}

// nativeConvOp runs the backend's convolution, and writes both gradients as convolutions too: the input
// gradient is the transposed convolution with the feedback kernel in place of W, the weight gradient the
// correlation of x with δ. GoMLX's own convolution VJP is never executed: on backends with the Reverse op it is
// built and discarded (see forward), and on the pure-Go backend, which lacks Reverse, it is not built at all.
type nativeConvOp struct {
	geom convGeometry
	// wgradLayout is how the weight gradient lays out its convolution's operands (ParamConvWeightGradInput).
	wgradLayout weightGradLayout
}

// inputRows builds x's patch matrix (only learning rules that evaluate primitives on the layer's input use it).
func (op nativeConvOp) inputRows(x *Node) *Node {
	g := op.geom
	return patchMatrix(x, g.kh, g.kw, g.stride, g.padTop, g.padBottom, g.padLeft, g.padRight)
}

func (op nativeConvOp) conv(x, kernel *Node) *Node {
	return ConvGeneral(x, kernel, channelsLastAxes, []int{op.geom.stride, op.geom.stride}, op.geom.paddings(), nil, nil, 1, 1)
}

// forward convolves x with W. Autodiff reaches x's and W's custom gradients (see withFeedback) through the
// convolution itself where the backend has the Reverse op that its stock VJP needs: that VJP is built, its
// value discarded by the custom gradients, and the compiler removes it, so the step does no more than the
// convolution. Elsewhere (the pure-Go backend, with conv_impl=native) it convolves StopGradient(x) with
// StopGradient(W) and adds 0·Σx + 0·ΣW ([layers.GradientPath]), two reductions that give autodiff the path.
// On XLA's CPU plugin those reductions, one element at a time, and the extra pass over y that added their zero
// were 4–5 % of a ResNet-20 step (docs/perf-analysis.md §20).
func (op nativeConvOp) forward(x, w *Node) *Node {
	if hasReverse(x.Graph()) {
		return op.conv(x, w)
	}
	y := op.conv(StopGradient(x), StopGradient(w))
	return Add(y, Add(layers.GradientPath(x), layers.GradientPath(w)))
}

// weightGrad is dW[t, ci, co] = Σ_{n,o} x_padded[n, o·s+t, ci]·δ[n, o, co] per spatial axis: a convolution
// whose "batch" is cin and whose "channels" are the examples, with δ as the kernel, dilated by the stride.
// Rows that the forward's windows never reach (valid padding with a remainder) are cropped first.
func (op nativeConvOp) weightGrad(x, delta *Node) *Node {
	g := op.geom
	if g.kh == 1 && g.kw == 1 && g.padTop+g.padBottom+g.padLeft+g.padRight == 0 {
		return pointwiseWeightGrad(g, x, delta)
	}
	x, padH, padW := g.cropUnreached(x)
	switch op.wgradLayout {
	case wgradFolded:
		return foldedWeightGrad(g, x, delta, padH, padW)
	case wgradChannelAxis:
		return channelAxisWeightGrad(g, x, delta, padH, padW)
	}
	axes := backends.ConvolveAxesConfig{
		InputBatch: 3, InputChannels: 0, InputSpatial: []int{1, 2},
		KernelInputChannels: 0, KernelOutputChannels: 3, KernelSpatial: []int{1, 2},
		OutputBatch: 2, OutputChannels: 3, OutputSpatial: []int{0, 1},
	}
	if op.wgradLayout == wgradProducts {
		x = channelsFirstByProducts(x)
		axes.InputBatch, axes.InputChannels = 0, 3
	}
	return ConvGeneral(x, delta, axes, []int{1, 1}, [][2]int{padH, padW}, nil, []int{g.stride, g.stride}, 1, 1)
}

// cropUnreached returns x without the rows and columns at its end that the forward's windows never reach (valid
// padding with a remainder), and the paddings with which the weight gradient's windows then end exactly at the
// padded image's edge.
func (g convGeometry) cropUnreached(x *Node) (cropped *Node, padH, padW [2]int) {
	axisPadding := func(size, outSize, k, padBefore, padAfter int) (pad [2]int, keep int) {
		extra := size + padBefore + padAfter - k - (outSize-1)*g.stride // unreached rows at the end
		cut := min(extra, padAfter)
		return [2]int{padBefore, padAfter - cut}, size - (extra - cut)
	}
	padH, keepH := axisPadding(g.h, g.outH, g.kh, g.padTop, g.padBottom)
	padW, keepW := axisPadding(g.w, g.outW, g.kw, g.padLeft, g.padRight)
	if keepH < g.h || keepW < g.w {
		x = Slice(x, AxisRange(), AxisRange(0, keepH), AxisRange(0, keepW), AxisRange())
	}
	return x, padH, padW
}

// foldedWeightGrad is weightGrad's convolution with x's width and channels folded into one axis: x [n, h, w, c]
// read as [1, n, h, w·c], whose folded position w·c + ci moves by c when w moves by one, so that
//
//	dW[th, tw, ci, co] = Σ_{n,oh,ow} x[n, oh·s+th, (ow·s+tw)·c + ci]·δ[n, oh, ow, co]
//
// is a convolution of that image (one batch item, the examples as its channels) with δ as the kernel, dilated by
// s along h and by s·c along the folded axis, the width's padding times c: its output, kh × kw·c positions of
// cout channels, is dW [kh, kw, c, cout] as it lies. x (cropped or not, see weightGrad) and δ are read in the
// layouts the forward and input-gradient convolutions use, so no transpose of either is needed. XLA's CPU plugin
// runs it in oneDNN (which reorders x, as its channels-first image, itself) at 0.6–0.8 of the time the channels-
// as-batch convolution takes there, before its layout passes (perf-analysis §22). XLA's own convolution emitter
// runs it slower than that one: chooseWeightGradLayout folds only where oneDNN runs the convolutions. padH and
// padW are the crop's paddings, with which the windows end exactly at the image's (padded) edge.
func foldedWeightGrad(g convGeometry, x, delta *Node, padH, padW [2]int) *Node {
	n, h, w, c := x.Shape().Dim(0), x.Shape().Dim(1), x.Shape().Dim(2), x.Shape().Dim(3)
	axes := backends.ConvolveAxesConfig{
		InputBatch: 0, InputChannels: 1, InputSpatial: []int{2, 3},
		KernelInputChannels: 0, KernelOutputChannels: 3, KernelSpatial: []int{1, 2},
		OutputBatch: 2, OutputChannels: 3, OutputSpatial: []int{0, 1},
	}
	// XLA does not pass the call a view of x: it recomputes x's producer (batch norm and ReLU in the ResNets) into
	// this shape, a loop it does not vectorise; with the unit batch axis first that took 8.8 % of ResNet-20's step,
	// with it last 10.3 % (perf-analysis §22). foldedForm folds this way only below channelAxisWeightGrad's
	// channel counts.
	folded := Reshape(x, 1, n, h, w*c)
	paddings := [][2]int{padH, {padW[0] * c, padW[1] * c}}
	gw := ConvGeneral(folded, delta, axes, []int{1, 1}, paddings, nil, []int{g.stride, g.stride * c}, 1, 1)
	return Reshape(gw, g.kh, g.kw, c, delta.Shape().Dim(3)) // [kh, kw·c, 1, cout] → [kh, kw, c, cout]
}

// minChannelAxisChannels is the least input channel count for which the "folded" weight gradient is
// channelAxisWeightGrad's 3-D convolution rather than foldedWeightGrad's 2-D one (foldedForm).
const minChannelAxisChannels = 16

// minChannelAxisChannelsAMX is minChannelAxisChannels on a CPU with AMX tiles. On the one such CPU measured
// (an Intel Xeon with AMX, 2 cores; perf-analysis §24) oneDNN ran ResNet-20's 16-channel weight gradient at
// batch 64 in 3.7 ms as the 3-D convolution against 2.4 ms as the 2-D one (1.0 against 0.9 ms on the AMD EPYC
// of §23), more than XLA's recompute saves there: the step took 0.91–0.94 of its time with the 2-D fold for
// 16 channels, in alternated runs at batch 64 and 128. From 32 channels the forms were level.
const minChannelAxisChannelsAMX = 32

// channelAxisWeightGrad is foldedWeightGrad's convolution with the channels as a third spatial axis instead of
// folded into the width's: x [n, h, w, c] read as [1, n, h, w, c] (one batch item, the examples as its channels,
// spatial axes h, w and c), δ [n, oh, ow, cout] as the kernel [n, oh, ow, 1, cout], dilated by the stride along h
// and w and of size 1 along c, so that
//
//	dW[th, tw, ci, co] = Σ_{n,oh,ow} x[n, oh·s+th, ow·s+tw, ci]·δ[n, oh, ow, co]
//
// is its output [1, kh, kw, c, cout] as it lies. oneDNN is handed the same sums as by the 2-D fold;
// the difference is XLA's: it recomputes x's producer (batch norm and ReLU) into either shape rather than pass the
// call a view of x, and the 2-D fold's loop, over w·c, reaches the per-channel vectors by dividing its index, which
// LLVM does not vectorise; this loop keeps c innermost, as x's own. ResNet-20 at batch 64 on an AMD EPYC
// (perf-analysis §23): the recompute 11.0 → 1.2 % of the step, oneDNN's weight-gradient calls 0.90 → 1.00,
// 0.65 → 0.66, 0.53 → 0.57 ms per stage (shorter output rows: c against kw·c), the step 0.93–0.98 of the 2-D
// fold's in alternated rounds. With few channels the rows get too short: ResNet-18's stem (c = 3) takes 15.4
// against 6.7 ms, hence minChannelAxisChannels (and on AMX CPUs minChannelAxisChannelsAMX). padH and padW are
// the crop's paddings (weightGrad).
func channelAxisWeightGrad(g convGeometry, x, delta *Node, padH, padW [2]int) *Node {
	n, h, w, c := x.Shape().Dim(0), x.Shape().Dim(1), x.Shape().Dim(2), x.Shape().Dim(3)
	outH, outW, cout := delta.Shape().Dim(1), delta.Shape().Dim(2), delta.Shape().Dim(3)
	axes := backends.ConvolveAxesConfig{
		InputBatch: 0, InputChannels: 1, InputSpatial: []int{2, 3, 4},
		KernelInputChannels: 0, KernelOutputChannels: 4, KernelSpatial: []int{1, 2, 3},
		OutputBatch: 0, OutputChannels: 4, OutputSpatial: []int{1, 2, 3},
	}
	gw := ConvGeneral(Reshape(x, 1, n, h, w, c), Reshape(delta, n, outH, outW, 1, cout), axes, []int{1, 1, 1},
		[][2]int{padH, padW, {0, 0}}, nil, []int{g.stride, g.stride, 1}, 1, 1)
	return Reshape(gw, g.kh, g.kw, c, cout) // [1, kh, kw, c, cout] → [kh, kw, c, cout]
}

// pointwiseWeightGrad is the weight gradient of a 1×1 convolution without padding, dW[0, 0, ci, co] =
// Σ_{n,o} x[n, o·s, ci]·δ[n, o, co]: one matrix product of x (subsampled by the stride) with δ over the examples
// and positions, where a convolution would have to lay x out as [cin, h, w, n] first. On XLA's CPU plugin, a
// ResNet-50's 1×1 weight gradients at 56×56: 2.6 against 5.1 ms (256 → 64 channels), 2.6 against 7.3 ms (the
// strided shortcut, 256 → 512), 1.8 against 3.2 ms (64 → 256), at batch 4; equal at 7×7.
func pointwiseWeightGrad(g convGeometry, x, delta *Node) *Node {
	if g.stride > 1 {
		x = Slice(x, AxisRange(), AxisRange(0, (g.outH-1)*g.stride+1).Stride(g.stride),
			AxisRange(0, (g.outW-1)*g.stride+1).Stride(g.stride), AxisRange())
	}
	rows, cout := g.n*g.outH*g.outW, delta.Shape().Dim(3)
	gw := denseOp{}.weightGrad(Reshape(x, rows, g.inC), Reshape(delta, rows, cout)) // [cin, cout]
	return Reshape(gw, 1, 1, g.inC, cout)
}

// minProductBlock is the least block of channels (layers.IdentityBlock) for which "auto" lays the weight
// gradient's input out by products.
const minProductBlock = 8

// channelsFirstByProducts returns x [n, h, w, c] laid out as [c, h, w, n], the layout XLA's CPU backend gives
// the weight gradient's convolution (its batch is c, its features the examples), built from products with an
// identity rather than one transpose. That transpose moves the innermost axis outermost, which XLA's CPU backend
// ran at 0.7–2 GB/s in a profile (fused with x's producers: batch norm and ReLU recomputed in the transposed
// order): 2–6 ms for a [64, 32, 32, 16] activation, a third of a ResNet-20 step in all (perf-analysis §17).
// Here the channels go in blocks of b (layers.IdentityBlock: the largest divisor of c up to 16): x is regrouped as
// [c/b, h·w·n, b], a transpose that keeps b values together, and each block is turned by a b×b identity
// product, which the backend runs as a matrix product reading the regrouped x as it lies: [c/b, b, h·w·n] =
// [c, h, w, n]. (Kept as separate axes, h, w and n would be free axes of the product, which XLA's CPU backend
// first copies into [c/b, b, h·w·n]: the slow transpose again.) The values are x's exactly (1·xᵢ + Σ 0·xⱼ =
// xᵢ) where x is finite; a non-finite value spreads to its block (0·Inf is NaN), whose weight gradient it would
// have made non-finite anyway.
func channelsFirstByProducts(x *Node) *Node {
	n, h, w, c := x.Shape().Dim(0), x.Shape().Dim(1), x.Shape().Dim(2), x.Shape().Dim(3)
	b := layers.IdentityBlock(c)
	blocks := c / b
	identity := ConvertDType(Diagonal(x.Graph(), b), x.DType())
	regrouped := TransposeAllDims(Reshape(x, n, h, w, blocks, b), 3, 1, 2, 0, 4) // [blocks, h, w, n, b]
	regrouped = Reshape(regrouped, blocks, h*w*n, b)
	turned := DotGeneral(BroadcastPrefix(identity, blocks), []int{2}, []int{0}, regrouped, []int{2}, []int{0})
	return Reshape(turned, c, h, w, n) // [blocks, b, h·w·n] → [c, h, w, n]
}

// transposedAxes reads an HWIO kernel with its channel axes swapped: the transposed convolution maps cout
// channels back to cin.
var transposedAxes = func() backends.ConvolveAxesConfig {
	a := channelsLastAxes
	a.KernelInputChannels, a.KernelOutputChannels = channelsLastAxes.KernelOutputChannels, channelsLastAxes.KernelInputChannels
	return a
}()

// inputGrad is dx[i] = Σ_{o,t : o·s+t−pad = i} δ[o]·K[t] per spatial axis: δ dilated by the stride (s−1
// zeros between values), padded by k−1−pad before and whatever makes the output the input's size after,
// correlated at stride 1 with the kernel flipped in space and read with its channel axes swapped.
func (op nativeConvOp) inputGrad(delta, kernel *Node) *Node {
	g := op.geom
	axisPadding := func(size, outSize, k, padBefore int) [2]int {
		dilated := (outSize-1)*g.stride + 1
		before := k - 1 - padBefore
		return [2]int{before, size + k - 1 - dilated - before}
	}
	paddings := [][2]int{axisPadding(g.h, g.outH, g.kh, g.padTop), axisPadding(g.w, g.outW, g.kw, g.padLeft)}
	return ConvGeneral(delta, flippedKernel(kernel), transposedAxes, []int{1, 1}, paddings,
		[]int{g.stride, g.stride}, []int{1, 1}, 1, 1)
}

// patchConvOp lowers the convolution to patches × matmul: the patch matrix [n·outH·outW, kh·kw·cin] is the
// concatenation, along channels, of kh·kw (strided) slices of the zero-padded input, and the kernel is reshaped
// to [kh·kw·cin, cout]. The weight gradient reuses the forward's patch matrix (one matmul). The input gradient
// of a stride-1 convolution is itself such a convolution of δ (padded by kh−1−pad) with the kernel flipped and
// its channel axes swapped; for larger strides it is δ·Bᵀ scattered back with a scatter-add over a constant
// index table. Only copies and matmuls: the pure-Go backend has neither Pad nor Reverse, and its Gather and
// Scatter are 1.3–2.3× slower than these slices (BenchmarkPatches).
type patchConvOp struct {
	geom        convGeometry
	outChannels int
	// forwardPatches is the forward pass's patch matrix, kept for the weight gradient of the same graph.
	forwardPatches *Node
}

func newPatchConvOp(geom convGeometry, outChannels int) *patchConvOp {
	return &patchConvOp{geom: geom, outChannels: outChannels}
}

// inputRows reuses the forward's patch matrix where it was built for x.
func (op *patchConvOp) inputRows(x *Node) *Node {
	if op.forwardPatches != nil {
		return op.forwardPatches
	}
	return op.patches(x)
}

// window is the geometry as the layers package's shared index builder reads it.
func (g convGeometry) window() layers.Window {
	return layers.NewWindow(g.n, g.h, g.w, g.kh, g.kw, g.stride, g.padTop, g.padBottom, g.padLeft, g.padRight)
}

// patchIndexTable returns, for every output position and kernel tap, the row of the flattened input
// [n·h·w (+1 zero row), cin] that it reads; out-of-image taps read the zero row n·h·w. It is
// layers.WindowIndexTable, shared with pooling and subsampling (one builder, one cache).
func patchIndexTable(geom convGeometry) *tensors.Tensor {
	return layers.WindowIndexTable(geom.window())
}

// patchMatrix builds the patch matrix [n·outH·outW, kh·kw·c] of x [n, h, w, c] for the given kernel size,
// stride and paddings, columns ordered (ky, kx, c) like a reshaped HWIO kernel. It carries no gradient: the
// gradient of a Slice needs the Pad op, which the pure-Go backend lacks, so the slices read a StopGradient of
// the padded input (which autodiff then never reaches).
func patchMatrix(x *Node, kh, kw, stride, padTop, padBottom, padLeft, padRight int) *Node {
	n, h, w, c := x.Shape().Dim(0), x.Shape().Dim(1), x.Shape().Dim(2), x.Shape().Dim(3)
	outH := (h+padTop+padBottom-kh)/stride + 1
	outW := (w+padLeft+padRight-kw)/stride + 1
	zero := ScalarZero(x.Graph(), x.DType())
	padded := StopGradient(layers.PadAlong(layers.PadAlong(x, zero, 1, padTop, padBottom), zero, 2, padLeft, padRight))
	taps := make([]*Node, 0, kh*kw)
	for ky := range kh {
		for kx := range kw {
			taps = append(taps, Slice(padded, AxisRange(),
				AxisRange(ky, ky+(outH-1)*stride+1).Stride(stride),
				AxisRange(kx, kx+(outW-1)*stride+1).Stride(stride), AxisRange()))
		}
	}
	p := taps[0]
	if len(taps) > 1 {
		p = Concatenate(taps, -1)
	}
	return Reshape(p, n*outH*outW, kh*kw*c)
}

// patches builds the patch matrix [n·outH·outW, kh·kw·cin] of x.
func (op *patchConvOp) patches(x *Node) *Node {
	g := op.geom
	return patchMatrix(x, g.kh, g.kw, g.stride, g.padTop, g.padBottom, g.padLeft, g.padRight)
}

// scatterPatches is the transpose of patches: it adds each patch gradient back to the input positions it
// was read from.
func (op *patchConvOp) scatterPatches(dPatches *Node) *Node {
	geom := op.geom
	indices := ConstTensor(dPatches.Graph(), patchIndexTable(geom))
	updates := Reshape(dPatches, geom.n*geom.outH*geom.outW*geom.kh*geom.kw, geom.inC)
	rows := Zeros(dPatches.Graph(), shapes.Make(dPatches.DType(), geom.n*geom.h*geom.w+1, geom.inC))
	rows = ScatterSum(rows, indices, updates, false, false)
	rows = Slice(rows, AxisRange(0, geom.n*geom.h*geom.w))
	return Reshape(rows, geom.n, geom.h, geom.w, geom.inC)
}

func (op *patchConvOp) kernelMatrix(kernel *Node) *Node {
	return Reshape(kernel, op.geom.kh*op.geom.kw*op.geom.inC, op.outChannels)
}

func (op *patchConvOp) deltaMatrix(delta *Node) *Node {
	return Reshape(delta, op.geom.n*op.geom.outH*op.geom.outW, op.outChannels)
}

// forward computes y from the patches of x, which carry no gradient (see patchMatrix; the input gradient is
// inputGrad's anyway), and adds 0·Σx, which costs one reduction and gives autodiff the path to x's custom
// gradient (see withFeedback).
func (op *patchConvOp) forward(x, w *Node) *Node {
	op.forwardPatches = op.patches(x)
	y := Dot(op.forwardPatches, op.kernelMatrix(w))
	y = Reshape(y, op.geom.n, op.geom.outH, op.geom.outW, op.outChannels)
	return Add(y, layers.GradientPath(x))
}

func (op *patchConvOp) inputGrad(delta, kernel *Node) *Node {
	geom := op.geom
	if geom.stride != 1 {
		dPatches := denseOp{}.inputGrad(op.deltaMatrix(delta), op.kernelMatrix(kernel))
		return op.scatterPatches(dPatches)
	}
	// Stride 1: dx = δ (padded by k−1−pad) correlated with the flipped kernel, channel axes swapped.
	p := patchMatrix(delta, geom.kh, geom.kw, 1, geom.kh-1-geom.padTop, geom.kh-1-geom.padBottom,
		geom.kw-1-geom.padLeft, geom.kw-1-geom.padRight)
	dx := Dot(p, flippedKernelMatrix(kernel))
	return Reshape(dx, geom.n, geom.h, geom.w, geom.inC)
}

// flippedKernel reverses the HWIO kernel [kh, kw, cin, cout] along both spatial axes: with the Reverse op where
// the backend has it (XLA, whose GPU compiler recognizes a convolution of the dilated δ with a reversed kernel
// as cuDNN's backward-data convolution), else with a Gather over its kh·kw taps (the pure-Go backend has no
// Reverse; the kernel is small). Both are the same permutation.
func flippedKernel(kernel *Node) *Node {
	if hasReverse(kernel.Graph()) {
		return Reverse(kernel, 0, 1)
	}
	kh, kw, cin, cout := kernel.Shape().Dim(0), kernel.Shape().Dim(1), kernel.Shape().Dim(2), kernel.Shape().Dim(3)
	taps := kh * kw
	reversed := make([][]int32, taps)
	for i := range reversed {
		reversed[i] = []int32{int32(taps - 1 - i)}
	}
	flipped := Gather(Reshape(kernel, taps, cin*cout), Const(kernel.Graph(), reversed)) // [taps, cin·cout]
	return Reshape(flipped, kh, kw, cin, cout)
}

// flippedKernelMatrix turns the HWIO kernel [kh, kw, cin, cout] into the [kh·kw·cout, cin] matrix of the
// transposed convolution: taps in reverse order, input and output channels swapped.
func flippedKernelMatrix(kernel *Node) *Node {
	kh, kw, cin, cout := kernel.Shape().Dim(0), kernel.Shape().Dim(1), kernel.Shape().Dim(2), kernel.Shape().Dim(3)
	return Reshape(TransposeAllDims(flippedKernel(kernel), 0, 1, 3, 2), kh*kw*cout, cin)
}

// weightGrad reuses the forward's patch matrix of x (the backward runs after the forward, in the same graph).
func (op *patchConvOp) weightGrad(_, delta *Node) *Node {
	gw := denseOp{}.weightGrad(op.forwardPatches, op.deltaMatrix(delta))
	return Reshape(gw, op.geom.kh, op.geom.kw, op.geom.inC, op.outChannels)
}

// spreadError is the input gradient of the convolution when every output position receives the same δ, the
// output error e [n, classes] (DFA's signal, see [DirectFeedbackAlignment]), sent through kernel
// [kh, kw, cin, classes] (the convolutions' sendOutputError); it equals inputGrad of e broadcast over
// [n, outH, outW, classes] without building that broadcast. Input row i receives tap a's share K[a, ·]·e once for every output row whose window puts tap a
// on row i, which (dilation 1) is at most once: rowTaps[i, a] ∈ {0, 1}, and likewise for columns. So
//
//	dx[n, i, j, c] = Σ_{a,b} rowTaps[i, a]·colTaps[j, b]·E[n, a, b, c],   E = e·Kᵀ reshaped [n, kh, kw, cin],
//
// which costs n·classes·kh·kw·cin + n·kw·cin·h·kh + n·h·w·kw·cin multiply-adds instead of the transposed
// convolution's n·outH·outW·kh·kw·cin·classes (on an ImageNet ResNet with 1000 classes, the difference
// between DFA costing twice BP's step and costing about what BP does).
func (g convGeometry) spreadError(e, kernel *Node) *Node {
	n, classes := e.Shape().Dim(0), e.Shape().Dim(-1)
	if n != g.n {
		panic(fmt.Sprintf("feedback: a convolution over %d examples cannot receive the output error of %d examples", g.n, n))
	}
	kmat := Reshape(kernel, g.kh*g.kw*g.inC, classes)
	perTap := Reshape(DotGeneral(e, []int{1}, nil, kmat, []int{1}, nil), n, g.kh, g.kw, g.inC)
	rows := ConvertDType(ConstTensor(e.Graph(), tapTable(g.h, g.kh, g.padTop, g.stride, g.outH)), e.DType())  // [h, kh]
	cols := ConvertDType(ConstTensor(e.Graph(), tapTable(g.w, g.kw, g.padLeft, g.stride, g.outW)), e.DType()) // [w, kw]
	byRow := DotGeneral(rows, []int{1}, nil, perTap, []int{1}, nil)                                           // [h, n, kw, cin]
	byRowCol := DotGeneral(cols, []int{1}, nil, byRow, []int{2}, nil)                                         // [w, h, n, cin]
	return TransposeAllAxes(byRowCol, 2, 1, 0, 3)                                                             // [n, h, w, cin]
}

// tapTable is the 0/1 table [size, k] whose entry (i, a) is 1 when some output position o of a convolution
// axis (input size, kernel k, padding padBefore, stride, outSize outputs) reads input position i with tap a:
// o·stride + a − padBefore = i for an o in [0, outSize).
func tapTable(size, k, padBefore, stride, outSize int) *tensors.Tensor {
	table := make([]float32, size*k)
	for i := range size {
		for a := range k {
			if start := i + padBefore - a; start >= 0 && start%stride == 0 && start/stride < outSize { // start = o·stride
				table[i*k+a] = 1
			}
		}
	}
	return tensors.FromFlatDataAndDimensions(table, size, k)
}

func (op nativeConvOp) sendOutputError(e, kernel, _ *Node) *Node {
	return op.geom.spreadError(e, kernel)
}

func (op *patchConvOp) sendOutputError(e, kernel, _ *Node) *Node {
	return op.geom.spreadError(e, kernel)
}
