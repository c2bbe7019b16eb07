package feedback

import (
	"math"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// The sign-concordant feedbacks of Liao, Leibo & Poggio 2016 ("How important is weight symmetry in
// backpropagation?"), as BioTorch implements them (jsalbert/biotorch, biotorch/layers/fa_constructor/linear.py
// and conv.py, the shared layer of its usf/frsf/brsf layers): B has W's signs and a magnitude that does not
// come from W. BioTorch scales uSF's sign(W) by "the standard deviation of the layer's initialisation" (its
// scaling_factor: √(2/(fan_in+fan_out)) for its Xavier init, 1/√(3·fan_in) for PyTorch's default), citing
// Xiao et al. 2018 for why: unscaled ±1 feedback multiplies the signal's norm by about √fan_in per layer,
// which through a ResNet-20 overflows within a few steps. frSF and brSF take magnitudes |R| from a draw of the
// layer's own initialiser, so they have that scale already.

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
	if s := context.GetParamOr(l.Ctx, ParamUSFScale, 0.0); s > 0 {
		return Scalar(g, l.W.DType(), s)
	}
	wShape := l.W.Shape()
	init := l.Init
	v := l.Ctx.Checked(false).WithInitializer(func(g *Graph, s shapes.Shape) *Node {
		return Sqrt(ReduceAllMean(Square(init(g, wShape))))
	}).VariableWithShape(usfScaleName, shapes.Make(wShape.DType)).SetTrainable(false)
	return v.ValueGraph(g)
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

// BatchRandomSignFeedback is rule "brsf": B = |R_t|∘sign(W) with R_t drawn afresh from the layer's
// initialiser (times [ParamInitScale]) at every step (BioTorch's brsf redraws it at every forward pass).
type BatchRandomSignFeedback struct{ RuleBase }

// Name implements Rule.
func (BatchRandomSignFeedback) Name() string { return "brsf" }

// Description implements Rule.
func (BatchRandomSignFeedback) Description() string {
	return "batchwise random-magnitude sign-concordant feedback: B = |R_t|∘sign(W), R_t redrawn each step"
}

// Kernel implements Rule.
func (BatchRandomSignFeedback) Kernel(l *LayerGraph) *Node {
	r := initFeedback(l.Ctx, l.Init)(l.W.Graph(), l.W.Shape())
	return Mul(Abs(r), Sign(l.W))
}

func init() {
	Register(UniformSignFeedback{})
	Register(FixedRandomSignFeedback{})
	Register(BatchRandomSignFeedback{})
}
