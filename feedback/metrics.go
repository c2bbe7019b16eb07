package feedback

import (
	"math"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// Alignment holds one layer's alignment metrics as scalar graph nodes (angles in degrees). An angle with a zero
// vector on either side is undefined and reads NaN: it is not a measurement, and must not be shown as one.
type Alignment struct {
	// Scope is the layer's context scope.
	Scope string
	// WeightAngle is the angle between vec(B) and vec(Wᵀ) (B in W's layout: between B and W); NaN if B or W is
	// zero. It is nil where B does not stand for Wᵀ: dfa's hidden layers, whose B maps the classes (also a hidden
	// layer with as many outputs as classes, whose B then has W's shape by chance).
	WeightAngle *Node
	// NormRatio is ‖B‖/‖W‖ (Frobenius norms). Like WeightAngle, it is nil where B does not have W's shape: dfa's
	// hidden layers' B, [in, classes] against W's [in, out], takes the place of the weights of every layer above,
	// not of W, and a ratio of norms of matrices of different sizes compares nothing.
	NormRatio *Node
	// WeightNorm is ‖W‖ (Frobenius norm, of the master copy under mixed precision): with NormRatio, how large
	// W and B grow (a rule whose B follows W's size lets the error signal grow with W, as backprop's does).
	WeightNorm *Node
	// DeltaAngle is the angle between the signal the rule sends down, B δ, and backprop's, Wᵀ δ, per example and
	// averaged over the examples of the batch where it is defined (both signals non-zero); NaN if it is defined
	// for none (a dead layer: no error reaches it). It is nil unless the gradient of a loss through this layer
	// was built in the same graph (the layer captures δ while the gradient is built).
	DeltaAngle *Node
	// DeltaUndefined counts (Int32) the examples left out of DeltaAngle because B δ or Wᵀ δ is zero; nil when
	// DeltaAngle is.
	DeltaUndefined *Node
}

// AlignmentGraph builds the alignment metrics of every feedback layer of ctx in graph g. To get delta angles,
// build the model's loss and its gradient (for example with [Gradients]) in g first.
func AlignmentGraph(ctx *context.Context, g *Graph) []Alignment {
	deltas := map[string]*capture{}
	for _, c := range graphCaptures(ctx, g) {
		if c.delta != nil {
			deltas[c.scope] = c
		}
	}
	layers := Layers(ctx)
	out := make([]Alignment, 0, len(layers))
	for i, layer := range layers {
		// In the master copy's dtype (float32 under mixed precision): the kernel and the signals are converted.
		w := StopGradient(layer.Weights.ValueGraph(g))
		// Under mixed precision the rule is compared with backprop at the precision the layer computed in: W and
		// the kernel both rounded to it (so that bp reads 0°, not the rounding), the products in float32.
		wRef, mixed := w, false
		var b *Node
		if c, found := deltas[layer.Scope]; found {
			kernel := c.fb() // The kernel this graph's step sends through (brsf draws a new one each step).
			b = ConvertDType(kernel, w.DType())
			if mixed = kernel.DType() != w.DType(); mixed {
				wRef = ConvertDType(StopGradient(c.w), w.DType())
			}
		} else {
			b = StopGradient(layer.FeedbackGraph(ctx, g))
		}
		wNorm := L2Norm(w)
		a := Alignment{Scope: layer.Scope, WeightNorm: wNorm}
		ownKernel := standsForW(layer, i == len(layers)-1, b, w)
		if ownKernel {
			a.WeightAngle = AngleDegrees(b, wRef)
			a.NormRatio = Div(L2Norm(b), MaxScalar(wNorm, 1e-30))
		}
		if c, found := deltas[layer.Scope]; found {
			delta := ConvertDType(StopGradient(c.delta), w.DType())
			sent := ConvertDType(StopGradient(c.sent()), w.DType())
			if mixed && ownKernel { // the signal again, in float32 from the same rounded kernel (B δ: not dfa's B e)
				sent = c.op.inputGrad(delta, b)
			}
			bp := c.op.inputGrad(delta, wRef)
			angles, defined := angleDegrees(sent, bp, 0)
			// The mean over the examples where it is defined: 0/0 = NaN where there are none.
			a.DeltaAngle = Div(ReduceAllSum(Where(defined, angles, ZerosLike(angles))),
				ReduceAllSum(ConvertDType(defined, angles.DType())))
			a.DeltaUndefined = ReduceAllSum(ConvertDType(LogicalNot(defined), dtypes.Int32))
		}
		out = append(out, a)
	}
	return out
}

// forceBackpropKey is the graph parameter (at the root scope) that makes every feedback layer built in a graph
// use backprop whatever its rule: [GradientAngles] builds the model a second time under it.
const forceBackpropKey = "feedback_force_backprop"

// backpropForced reports whether layers built in g must use backprop ([GradientAngles]).
func backpropForced(ctx *context.Context, g *Graph) bool {
	forced, _ := ctx.InAbsPath(context.RootScope).GetGraphParam(g, forceBackpropKey)
	return forced == true
}

// backprop is rule "bp", for layers built under forceBackpropKey.
var backprop Rule = Backprop{}

// GradientAngles builds, in g, each feedback layer's angle (degrees, scalar, float32) between the weight gradient
// its rule gives (ruleGrads, by variable, as [Gradients] returns them) and the true gradient, backprop's: lossFn
// must build the model's loss again in g; it is called with every feedback layer built under backprop (the same
// variables: the forward pass is the same, only what the layers send down differs). Unlike the delta angle,
// which compares one layer's signal given the same δ, it shows how far the update a rule gives W is from
// backprop's once the errors of all the layers above have compounded (0 at the output layer for every rule). The
// angle is NaN where either gradient is zero; a layer absent from ruleGrads gets none. Build the rule's own
// gradient and [AlignmentGraph] first: the layers built by lossFn record themselves in g as the first ones did.
func GradientAngles(ctx *context.Context, g *Graph, ruleGrads map[*context.Variable]*Node, lossFn func() *Node) map[string]*Node {
	root := ctx.InAbsPath(context.RootScope)
	root.SetGraphParam(g, forceBackpropKey, true)
	loss := lossFn()
	root.SetGraphParam(g, forceBackpropKey, false)
	layers := Layers(ctx)
	var weights []*Node
	var scopes []string
	var ruleGrad []*Node
	for _, layer := range layers {
		if grad, found := ruleGrads[layer.Weights]; found {
			weights = append(weights, layer.Weights.ValueGraph(g))
			scopes = append(scopes, layer.Scope)
			ruleGrad = append(ruleGrad, grad)
		}
	}
	out := make(map[string]*Node, len(scopes))
	if len(weights) == 0 {
		return out
	}
	trueGrads := Gradient(loss, weights...)
	for i, scope := range scopes {
		a := StopGradient(ruleGrad[i])
		b := ConvertDType(StopGradient(trueGrads[i]), a.DType())
		out[scope] = AngleDegrees(a, b)
	}
	return out
}

// minNorm is the norm under which a vector counts as zero, and its angle with anything as undefined.
const minNorm = 1e-30

// AngleDegrees returns the angle in degrees between a and b (same shape). With no batchAxes it treats them
// as flat vectors and returns a scalar; with batchAxes it returns one angle per index of those axes, each
// over all the other axes. The angle with a zero vector (norm under 1e-30) is undefined: NaN.
func AngleDegrees(a, b *Node, batchAxes ...int) *Node {
	angles, defined := angleDegrees(a, b, batchAxes...)
	return Where(defined, angles, Scalar(a.Graph(), angles.DType(), math.NaN()))
}

// angleDegrees returns the angle in degrees between a and b over all but batchAxes, and where it is defined
// (neither vector zero); where it is not, the angle is meaningless (not NaN).
func angleDegrees(a, b *Node, batchAxes ...int) (angles, defined *Node) {
	var reduceAxes []int
	isBatch := map[int]bool{}
	for _, axis := range batchAxes {
		isBatch[axis] = true
	}
	for axis := range a.Rank() {
		if !isBatch[axis] {
			reduceAxes = append(reduceAxes, axis)
		}
	}
	// Each vector is first divided by its largest |element|, so that its squares cannot overflow: a W on its way
	// to diverging (elements past 1.8e19 in float32) still has a direction. One that holds an Inf or a NaN has
	// none: its scaled squares sum to NaN, and the angle is undefined.
	unitVector := func(v *Node) (unit, defined *Node) {
		scale := MaxScalar(ReduceAndKeep(Abs(v), ReduceMax, reduceAxes...), minNorm)
		scaled := Div(v, scale)
		scaledNorm := Sqrt(ReduceAndKeep(Square(scaled), ReduceSum, reduceAxes...))
		norm := ReduceSum(Mul(scaledNorm, scale), reduceAxes...)
		defined = LogicalAnd(GreaterThan(norm, Scalar(v.Graph(), v.DType(), minNorm)),
			IsFinite(ReduceSum(scaledNorm, reduceAxes...)))
		return Div(scaled, MaxScalar(scaledNorm, minNorm)), defined
	}
	// Unit vectors; 1 − |cos| is computed from ‖â ∓ b̂‖²/2, which keeps small angles exact in float32 (through
	// the cosine itself, float32 rounding near 1 would read as ~0.02°).
	unitA, definedA := unitVector(a)
	unitB, definedB := unitVector(b)
	defined = LogicalAnd(definedA, definedB)
	cos := ClipScalar(ReduceSum(Mul(unitA, unitB), reduceAxes...), -1, 1)
	oneMinusCos := MulScalar(ReduceSum(Square(Sub(unitA, unitB)), reduceAxes...), 0.5)
	onePlusCos := MulScalar(ReduceSum(Square(Add(unitA, unitB)), reduceAxes...), 0.5)
	oneMinusAbs := Where(GreaterOrEqual(cos, ZerosLike(cos)), oneMinusCos, onePlusCos)
	return radiansToDegrees(acos(cos, ClipScalar(oneMinusAbs, 0, 1))), defined
}

// acosCoefficients are Abramowitz & Stegun 4.4.46: acos(x) = √(1−x)·Σ aᵢxⁱ on [0, 1], |error| ≤ 2e-8.
var acosCoefficients = []float64{1.5707963050, -0.2145988016, 0.0889789874, -0.0501743046,
	0.0308918810, -0.0170881256, 0.0066700901, -0.0012624911}

// acos computes the arc cosine element-wise (radians), for x in [−1, 1], given also 1 − |x| computed
// precisely by the caller: GoMLX has no Acos op.
func acos(x, oneMinusAbs *Node) *Node {
	ax := Abs(x)
	poly := ZerosLike(ax)
	for i := len(acosCoefficients) - 1; i >= 0; i-- {
		poly = AddScalar(Mul(poly, ax), acosCoefficients[i])
	}
	positive := Mul(Sqrt(oneMinusAbs), poly)
	return Where(GreaterOrEqual(x, ZerosLike(x)), positive, AddScalar(Neg(positive), math.Pi))
}

// standsForW reports whether the kernel b of layer stands in for its Wᵀ, so that the angle between them and the
// ratio of their norms measure something: B in W's layout for rules that compute the signal from the layer's own
// δ; for rules that project the model's output error (dfa), only at the classifier, whose δ is that error — the
// last layer created (in every nowt model the classifier is built last). A hidden layer's B towards the classes
// stands for the weights of every layer above, not for W, also where the layer happens to have as many outputs
// as there are classes and B has W's shape.
func standsForW(layer Layer, last bool, b, w *Node) bool {
	if !b.Shape().Equal(w.Shape()) {
		return false
	}
	return layer.Rule == nil || layer.Rule.Feedback().Source != FromOutputError || last
}
