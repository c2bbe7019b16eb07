package feedback

import (
	"math"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/context/initializers"
	"github.com/nowt-ml/nowt/layers"
)

// ssScaleName is the variable holding a layer's sign-symmetry scale.
const ssScaleName = "ss_scale"

// SignSymmetry is rule "ss": B = scale·sign(W), recomputed from the current W at every step, so one bit per
// weight is transported. The scale is fixed per layer: [ParamSSScale] if set, else the RMS of W at the
// layer's first step (the standard deviation of its initialisation), kept in the variable "ss_scale".
type SignSymmetry struct{ RuleBase }

// Name implements Rule.
func (SignSymmetry) Name() string { return "ss" }

// Description implements Rule.
func (SignSymmetry) Description() string {
	return "sign symmetry: B = scale·sign(W), one bit per weight (Liao et al. 2016)"
}

// Settings implements Rule.
func (SignSymmetry) Settings() []Setting {
	return []Setting{{Name: ParamSSScale, Default: 0.0, HasRange: true, Min: 0, Max: math.Inf(1),
		Doc: "sign-symmetry scale (0: the RMS of W at its first step)"}}
}

// Kernel implements Rule.
func (SignSymmetry) Kernel(l *LayerGraph) *Node {
	return Mul(Sign(l.W), fixedScale(l.Ctx, ssScaleName, ParamSSScale, l.W, func() *Node { return l.W }))
}

// Prepare implements Rule: it fixes the layer's scale at its first step.
func (SignSymmetry) Prepare(l *LayerGraph) {
	fixedScale(l.Ctx, ssScaleName, ParamSSScale, l.W, func() *Node { return l.W })
}

// fixedScale returns a layer's fixed scale as a scalar node: the setting param if positive, else the RMS of
// sample() at the layer's first step, kept in the non-trainable variable name (0 until fixed).
func fixedScale(ctx *context.Context, name, param string, w *Node, sample func() *Node) *Node {
	g := w.Graph()
	if s := settingValue[float64](ctx, param); s > 0 {
		return Scalar(g, w.DType(), s)
	}
	master := layers.MasterDType(w.DType())
	scaleVar := ctx.Checked(false).WithInitializer(initializers.Zero).
		VariableWithShape(name, shapes.Make(master)).SetTrainable(false)
	if scaleVar.ChangedInGraph(g) || scaleFixed(scaleVar) {
		// Already fixed in this graph, or by a graph run before this one was built (the trainer's first alignment
		// measurement, or a restored checkpoint): the scale never changes again, so the graph need not compute
		// W's RMS at every step only to discard it.
		return ConvertDType(scaleVar.ValueGraph(g), w.DType())
	}
	current := scaleVar.ValueGraph(g)
	rms := Sqrt(ReduceAllMean(Square(ConvertDType(StopGradient(sample()), master))))
	scale := Where(GreaterThan(current, ZerosLike(current)), current, rms)
	scaleVar.SetValueGraph(scale)
	return ConvertDType(scale, w.DType())
}

// scaleFixed reports whether the scale variable already holds its fixed (positive) value.
func scaleFixed(v *context.Variable) bool {
	if !v.HasValue() {
		return false
	}
	t, err := v.Value()
	if err != nil || t.Shape().Size() != 1 {
		return false
	}
	var fixed bool
	err = t.ConstFlatData(func(flat any) {
		switch values := flat.(type) {
		case []float32:
			fixed = values[0] > 0
		case []float64:
			fixed = values[0] > 0
		}
	})
	return err == nil && fixed
}

func init() { Register(SignSymmetry{}) }
