package feedback

import (
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/context/initializers"
)

// ssScaleName is the variable holding a layer's sign-symmetry scale.
const ssScaleName = "ss_scale"

// SignSymmetry is rule "ss": B = scale·sign(W), recomputed from the current W at every step, so one bit per
// weight is transported. The scale is fixed per layer: [ParamSSScale] if set, else the RMS of W at the
// layer's first step (the standard deviation of its initialisation), kept in the variable "ss_scale".
type SignSymmetry struct{}

// Name implements Rule.
func (SignSymmetry) Name() string { return "ss" }

// Description implements Rule.
func (SignSymmetry) Description() string {
	return "sign symmetry: B = scale·sign(W), one bit per weight (Liao et al. 2016)"
}

// StoresFeedback implements Rule.
func (SignSymmetry) StoresFeedback() bool { return false }

// Feedback implements Rule.
func (SignSymmetry) Feedback(ctx *context.Context, w *Node) *Node {
	return Mul(Sign(w), signSymmetryScale(ctx, w))
}

// Prepare implements PreparedFeedback: it fixes the layer's scale at its first step.
func (SignSymmetry) Prepare(ctx *context.Context, w *Node) { signSymmetryScale(ctx, w) }

// signSymmetryScale returns the layer's fixed sign-symmetry scale as a scalar node.
func signSymmetryScale(ctx *context.Context, w *Node) *Node {
	g := w.Graph()
	if s := context.GetParamOr(ctx, ParamSSScale, 0.0); s > 0 {
		return Scalar(g, w.DType(), s)
	}
	scaleVar := ctx.Checked(false).WithInitializer(initializers.Zero).
		VariableWithShape(ssScaleName, shapes.Make(w.DType())).SetTrainable(false)
	if scaleVar.ChangedInGraph(g) {
		return scaleVar.ValueGraph(g) // Already fixed in this graph.
	}
	current := scaleVar.ValueGraph(g)
	rms := Sqrt(ReduceAllMean(Square(StopGradient(w))))
	scale := Where(GreaterThan(current, ZerosLike(current)), current, rms)
	scaleVar.SetValueGraph(scale)
	return scale
}

func init() { Register(SignSymmetry{}) }
