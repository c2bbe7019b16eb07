package feedback

import (
	"math"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/nowt-ml/nowt/layers"
)

// The sign-concordant feedbacks of Liao, Leibo & Poggio 2016 ("How important is weight symmetry in
// backpropagation?"), as BioTorch implements them (jsalbert/biotorch, biotorch/layers/fa_constructor/linear.py
// and conv.py, the shared layer of its usf/frsf/brsf layers): B has W's signs and a magnitude that does not
// come from W. BioTorch scales uSF's sign(W) by "the standard deviation of the layer's initialisation" (its
// scaling_factor: √(2/(fan_in+fan_out)) for its Xavier init, 1/√(3·fan_in) for PyTorch's default), citing
// Xiao et al. 2018 for why: unscaled ±1 feedback multiplies the signal's norm by about √fan_in per layer,
// which through a ResNet-20 overflows within a few steps. frSF and brSF take magnitudes |R| from a draw of the
// layer's own initialiser (brSF: uniform, as BioTorch's), so they have that scale already.

// usfScaleName is the variable holding a layer's uSF scale.
const usfScaleName = "usf_scale"

// ParamUSFScale is uSF's fixed scale. Default 0: the standard deviation of the layer's initialiser (BioTorch's
// scaling_factor), measured on one draw of it when the layer's variables are created.
const ParamUSFScale = "usf_scale"

// UniformSignFeedback is rule "usf": B = scale·sign(W), recomputed from W at every step, with a fixed scale
// per layer: [ParamUSFScale], or the standard deviation of the layer's initialiser. It differs from ss only
// in where the scale comes from (ss: the RMS of W itself at the first step).
type UniformSignFeedback struct{ RuleBase }

// Name implements Rule.
func (UniformSignFeedback) Name() string { return "usf" }

// Description implements Rule.
func (UniformSignFeedback) Description() string {
	return "uniform sign-concordant feedback: B = σ_init·sign(W) (Liao et al. 2016; BioTorch's scaling)"
}

// Settings implements Rule.
func (UniformSignFeedback) Settings() []Setting {
	return []Setting{{Name: ParamUSFScale, Default: 0.0, HasRange: true, Min: 0, Max: math.Inf(1),
		Doc: "uSF scale (0: the standard deviation of the layer's initialiser)"}}
}

// Kernel implements Rule.
func (UniformSignFeedback) Kernel(l *LayerGraph) *Node {
	return Mul(Sign(l.W), usfScale(l))
}

// Prepare implements Rule: it creates the scale variable with the layer's other variables.
func (UniformSignFeedback) Prepare(l *LayerGraph) { usfScale(l) }

// usfScale is the layer's uSF scale, a scalar node.
func usfScale(l *LayerGraph) *Node {
	g := l.W.Graph()
	if s := settingValue[float64](l.Ctx, ParamUSFScale); s > 0 {
		return Scalar(g, l.W.DType(), s)
	}
	return initStd(l, usfScaleName)
}

// FixedRandomSignFeedback is rule "frsf": B = |R|∘sign(W) with R drawn once like W (stored as the layer's
// feedback) and fixed: W's signs, fixed random magnitudes (BioTorch's frsf).
type FixedRandomSignFeedback struct{ RuleBase }

// Name implements Rule.
func (FixedRandomSignFeedback) Name() string { return "frsf" }

// Description implements Rule.
func (FixedRandomSignFeedback) Description() string {
	return "fixed random-magnitude sign-concordant feedback: B = |R|∘sign(W), R fixed (Liao et al. 2016)"
}

// Feedback implements Rule: R is stored in W's layout.
func (FixedRandomSignFeedback) Feedback() FeedbackSpec { return FeedbackSpec{Stored: true} }

// Kernel implements Rule.
func (FixedRandomSignFeedback) Kernel(l *LayerGraph) *Node { return Mul(Abs(l.B), Sign(l.W)) }

// brsfScaleName is the variable holding a layer's brSF magnitude scale.
const brsfScaleName = "brsf_scale"

// BatchRandomSignFeedback is rule "brsf": B = |R_t|∘sign(W) with R_t drawn afresh at every step (BioTorch's
// brsf redraws it from the layer's initialiser at every forward pass). BioTorch's initialisers are uniform
// (Xavier's, or PyTorch's Kaiming-uniform default), so |R_t| is uniform on [0, √3·σ): σ is the standard deviation
// of the layer's own initialiser (measured once, like usf's scale) times [ParamInitScale], the magnitudes' RMS.
// The uniform numbers come from a counter hash (fastUniform) seeded by the context's RNG at every step: GoMLX's
// RNG bit generator costs, on XLA's CPU backend, about 20 times a 128×1000×1000 layer's whole step.
type BatchRandomSignFeedback struct{ RuleBase }

// Name implements Rule.
func (BatchRandomSignFeedback) Name() string { return "brsf" }

// Description implements Rule.
func (BatchRandomSignFeedback) Description() string {
	return "batchwise random-magnitude sign-concordant feedback: B = |R_t|∘sign(W), R_t redrawn each step"
}

// Prepare implements Rule: it creates the scale variable with the layer's other variables.
func (BatchRandomSignFeedback) Prepare(l *LayerGraph) { initStd(l, brsfScaleName) }

// Kernel implements Rule.
func (BatchRandomSignFeedback) Kernel(l *LayerGraph) *Node {
	scale := MulScalar(initStd(l, brsfScaleName), math.Sqrt(3)*settingValue[float64](l.Ctx, ParamInitScale))
	// R is drawn in the master dtype (float32 under mixed precision; fastUniform's arithmetic needs its
	// precision) and rounded once to the compute dtype.
	master := shapes.Make(layers.MasterDType(l.W.DType()), l.W.Shape().Dimensions...)
	r := ConvertDType(fastUniform(l.Ctx, l.W.Graph(), master), l.W.DType())
	return Mul(Mul(r, scale), Sign(l.W))
}

// initStd returns the standard deviation of the layer's initialiser, measured on one draw of it (from a stream
// of its own, see ownStream, so that W(0) stays the same as under every other rule) when the layer's variables
// are created and kept in the non-trainable scalar variable name.
func initStd(l *LayerGraph, name string) *Node {
	wShape := l.W.Shape()
	init := ownStream(l.Ctx, l.Init)
	master := shapes.Make(layers.MasterDType(wShape.DType), wShape.Dimensions...)
	v := l.Ctx.Checked(false).WithInitializer(func(g *Graph, s shapes.Shape) *Node {
		return Sqrt(ReduceAllMean(Square(init(g, master))))
	}).VariableWithShape(name, shapes.Make(master.DType)).SetTrainable(false)
	return ConvertDType(v.ValueGraph(l.W.Graph()), wShape.DType)
}

// fastUniform returns numbers uniform on [0, 1) of the given (float) shape: murmur3's 32-bit finaliser applied
// to each element's index plus a seed drawn from the context's RNG at every call. Only element-wise integer
// ops (shifts written as divisions: the pure-Go backend has no logical shift), which every backend fuses.
func fastUniform(ctx *context.Context, g *Graph, shape shapes.Shape) *Node {
	seed := ConvertDType(MulScalar(ctx.RandomUniform(g, shapes.Make(dtypes.Float64)), 1<<32), dtypes.Uint32)
	u32 := func(v uint32) *Node { return Scalar(g, dtypes.Uint32, v) }
	x := Add(Mul(Iota(g, shapes.Make(dtypes.Uint32, shape.Size()), 0), u32(0x9E3779B9)), seed)
	x = BitwiseXor(x, Div(x, u32(1<<16)))
	x = Mul(x, u32(0x85EBCA6B))
	x = BitwiseXor(x, Div(x, u32(1<<13)))
	x = Mul(x, u32(0xC2B2AE35))
	x = BitwiseXor(x, Div(x, u32(1<<16)))
	// The top 24 bits, exactly representable in float32: [0, 1) in steps of 2⁻²⁴.
	u := MulScalar(ConvertDType(Div(x, u32(1<<8)), shape.DType), 1.0/(1<<24))
	return Reshape(u, shape.Dimensions...)
}

func init() {
	Register(UniformSignFeedback{})
	Register(FixedRandomSignFeedback{})
	Register(BatchRandomSignFeedback{})
}
