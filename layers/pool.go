package layers

import (
	"fmt"
	"math"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/nowt-ml/nowt/xla"
)

// MaxPool2D max-pools channels-last images x [N, H, W, C] over window×window windows with the given stride and
// symmetric zero-based padding `padding` on each side (PyTorch's MaxPool2d(window, stride, padding): padded
// positions never win). The output is [N, (H+2p−window)/stride+1, (W+2p−window)/stride+1, C].
//
// The implementation is chosen in one place, [maxPoolImpl]: on XLA's CPU plugin the window's taps as strided
// slices with the backward written as selects and shifted sums (maxPoolTaps: the plugin's own MaxPool gradient is
// 6× slower); elsewhere the backend's MaxPool where the backend can differentiate it (it needs the
// SelectAndScatterMax op, which the pure-Go backend lacks), else a gather of the windows over a constant index
// table followed by a selection of each window's first maximum. All three are exact and route the gradient to
// one element per window, the first maximum. [ParamPoolImpl] overrides the choice.
func MaxPool2D(ctx *context.Context, x *Node, window, stride, padding int) *Node {
	if x.Rank() != 4 {
		panic(fmt.Sprintf("layers.MaxPool2D: input must be [batch, height, width, channels], got %s", x.Shape()))
	}
	if window < 1 || stride < 1 || padding < 0 || padding >= window {
		panic(fmt.Sprintf("layers.MaxPool2D: invalid window %d, stride %d, padding %d", window, stride, padding))
	}
	if master := MasterDType(x.DType()); master != x.DType() {
		// Under mixed precision the maximum is taken in float32 (exact both ways): XLA's CPU compiler rejects
		// the bfloat16 −∞ that GoMLX's native max-pool starts its reduction from.
		return ConvertDType(MaxPool2D(ctx, ConvertDType(x, master), window, stride, padding), x.DType())
	}
	impl := maxPoolImpl(ctx, x.Graph())
	if impl == "native" {
		return MaxPool(x).Window(window).Strides(stride).
			PaddingPerDim([][2]int{{padding, padding}, {padding, padding}}).Done()
	}
	geom := NewWindow(x.Shape().Dim(0), x.Shape().Dim(1), x.Shape().Dim(2), window, window, stride,
		padding, padding, padding, padding)
	c := x.Shape().Dim(3)
	if geom.OutH < 1 || geom.OutW < 1 {
		panic(&InputTooSmallError{Layer: "layers.MaxPool2D", Input: x.Shape(), Kind: "window", Height: window, Width: window})
	}
	if impl == "taps" {
		return maxPoolTaps(x, geom)
	}
	// Windows [n·outH·outW, k·k, C]; padded taps read an extra row filled with the dtype's lowest finite value.
	fill := Scalar(x.Graph(), x.DType(), lowestFinite(x.DType()))
	patches := gatherWindows(x, geom, BroadcastToDims(fill, 1, c))
	patches = Reshape(patches, geom.N*geom.OutH*geom.OutW, window*window, c)
	// Select the first maximum of each window with a constant one-hot mask: the forward value is exactly the
	// maximum, and the gradient goes to that one element (like XLA's select-and-scatter).
	first := ArgMax(StopGradient(patches), 1)                                                // [rows, C]
	mask := StopGradient(TransposeAllDims(OneHot(first, window*window, x.DType()), 0, 2, 1)) // [rows, k·k, C]
	pooled := ReduceSum(Mul(patches, mask), 1)
	return Reshape(pooled, geom.N, geom.OutH, geom.OutW, c)
}

// ParamPoolImpl selects how [MaxPool2D] runs: "auto" (taps on XLA's CPU plugin, else the backend's MaxPool
// where it can be differentiated, else gather), "native", "gather" or "taps". Default: "auto".
const ParamPoolImpl = "pool_impl"

// maxPoolImpl decides, in one place, how max-pooling runs: "native", "gather" or "taps". Where the backend cannot
// differentiate the native MaxPool (the pure-Go backend has no select-and-scatter), "native" runs as "gather",
// which computes the same values: every run's variables are initialised on a pure-Go graph of its training step
// (xla.InitializeOnHost), so a setting aimed at XLA is also built there.
func maxPoolImpl(ctx *context.Context, g *Graph) string {
	impl, err := choice(ctx, ParamPoolImpl)
	if err != nil {
		panic(fmt.Sprintf("layers: %v", err))
	}
	ops := g.Backend().Capabilities().Operations
	native := ops[backends.OpTypeSelectAndScatterMax] && ops[backends.OpTypeReduceWindow]
	switch {
	case impl == "native" && !native:
		return "gather"
	case impl != "auto":
		return impl
	case xla.IsCPU(g.Backend()):
		return "taps"
	case native:
		return "native"
	default:
		return "gather"
	}
}

// GlobalAvgPool averages x [N, H, W, C] over its spatial axes, giving [N, C].
//
// Under mixed precision (bfloat16, float16) the mean is taken in float32 and converted back.
func GlobalAvgPool(x *Node) *Node {
	if x == nil || x.Rank() != 4 {
		panic(fmt.Sprintf("layers.GlobalAvgPool: input must be [batch, height, width, channels], got %s", shapeOf(x)))
	}
	if master := MasterDType(x.DType()); master != x.DType() {
		return ConvertDType(ReduceMean(ConvertDType(x, master), 1, 2), x.DType())
	}
	return ReduceMean(x, 1, 2)
}

// Subsample takes every stride-th pixel of x [N, H, W, C] on both spatial axes, starting at 0 (x[:, ::s, ::s, :]),
// with a Gather so that its gradient (a scatter-add) runs on every backend (a strided Slice's gradient needs Pad).
func Subsample(x *Node, stride int) *Node {
	if x == nil || x.Rank() != 4 {
		panic(fmt.Sprintf("layers.Subsample: input must be [batch, height, width, channels], got %s", shapeOf(x)))
	}
	if stride < 1 {
		panic(fmt.Sprintf("layers.Subsample: stride must be ≥ 1, got %d", stride))
	}
	if stride == 1 {
		return x
	}
	geom := NewWindow(x.Shape().Dim(0), x.Shape().Dim(1), x.Shape().Dim(2), 1, 1, stride, 0, 0, 0, 0)
	return Reshape(gatherWindows(x, geom, nil), geom.N, geom.OutH, geom.OutW, x.Shape().Dim(3))
}

// shapeOf describes x's shape for a message, "nil" for a nil node.
func shapeOf(x *Node) string {
	if x == nil {
		return "nil"
	}
	return x.Shape().String()
}

// gatherWindows gathers the window taps of x as rows [n·outH·outW·k·k, C]. fillRow [1, C] is appended to the
// flattened input as the value of out-of-image taps (nil when there are none).
func gatherWindows(x *Node, geom Window, fillRow *Node) *Node {
	rows := Reshape(x, geom.N*geom.H*geom.W, x.Shape().Dim(3))
	if fillRow != nil {
		rows = Concatenate([]*Node{rows, fillRow}, 0)
	}
	return Gather(rows, ConstTensor(x.Graph(), WindowIndexTable(geom)))
}

// lowestFinite is the most negative finite value of a float dtype.
func lowestFinite(dtype dtypes.DType) float64 {
	switch dtype {
	case dtypes.Float64:
		return -math.MaxFloat64
	case dtypes.Float32:
		return -math.MaxFloat32
	default:
		return -65504 // float16's; bfloat16 also represents it.
	}
}
