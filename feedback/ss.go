package feedback

import (
	"cmp"
	"fmt"
	"math"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
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

// FixScales fixes, on the host, every sign-symmetry scale of ctx still waiting for its layer's first step (rule
// ss without [ParamSSScale]: the variable "ss_scale" created and 0): the RMS of the layer's W as it is now, in
// float64, stored in the scale's dtype. A trainer calls it once W holds its starting values (initialised, or
// loaded from a checkpoint: a scale a checkpoint fixed is kept), so that no step's graph computes W's RMS only to
// discard it after the first (a reduction over every weight at every step: XLA's CPU backend reduces one element
// at a time). Without it the first graph run fixes the scale, as before. It returns the number of scales fixed.
func FixScales(ctx *context.Context) (int, error) {
	fixed := 0
	for v := range ctx.IterVariables() {
		if v.Name() != ssScaleName || !v.HasValue() || scaleFixed(v) {
			continue
		}
		w := ctx.InspectVariable(v.Scope(), WeightsName)
		if w == nil || !w.HasValue() {
			return fixed, fmt.Errorf("feedback: fixing the sign-symmetry scale of layer %q: its weights %q have no value "+
				"yet: initialise the model's variables first", v.Scope(), WeightsName)
		}
		rms, err := rootMeanSquare(w)
		if err != nil {
			return fixed, fmt.Errorf("feedback: fixing the sign-symmetry scale of layer %q: %w", v.Scope(), err)
		}
		var value *tensors.Tensor
		switch v.Shape().DType {
		case dtypes.Float64:
			value = tensors.FromScalar(rms)
		default:
			value = tensors.FromScalar(float32(rms))
		}
		if err := v.SetValue(value); err != nil {
			return fixed, fmt.Errorf("feedback: fixing the sign-symmetry scale of layer %q: %w", v.Scope(), err)
		}
		fixed++
	}
	return fixed, nil
}

// rootMeanSquare returns the RMS of a float32 or float64 variable's value, summed in float64.
func rootMeanSquare(v *context.Variable) (float64, error) {
	t, err := v.Value()
	if err != nil {
		return 0, fmt.Errorf("reading %q: %w", v.Name(), err)
	}
	var sum float64
	var dtypeErr error
	err = t.ConstFlatData(func(flat any) {
		switch values := flat.(type) {
		case []float32:
			for _, x := range values {
				sum += float64(x) * float64(x)
			}
		case []float64:
			for _, x := range values {
				sum += x * x
			}
		default:
			dtypeErr = fmt.Errorf("%q of dtype %s, not float32 or float64", v.Name(), t.DType())
		}
	})
	if err = cmp.Or(err, dtypeErr); err != nil {
		return 0, err
	}
	return math.Sqrt(sum / float64(t.Shape().Size())), nil
}

func init() { Register(SignSymmetry{}) }
