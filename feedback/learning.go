package feedback

import (
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// Learning is how a rule's stored B learns, composed from the local primitives of Kunin et al. 2020 ("Two
// routes to scalable credit assignment without weight symmetry"; neuroailab/neural-alignment,
// Alignments/primitives.py). For a layer with input x [n, in] (for a convolution: its patch matrix), forward
// output y = x·W and B in W's layout [in, out], the primitives are
//
//	amp   −(1/n)·Σ (x·B)∘(x·W)     ∂/∂B = −(1/n)·xᵀy
//	null   (1/n)·‖y·Bᵀ‖²            ∂/∂B =  (2/n)·(y·Bᵀ)ᵀ·y
//	sparse (1/n)·‖x·B‖²             ∂/∂B =  (2/n)·xᵀ(x·B) (Kunin's also holds ‖x·W‖², free of B)
//	self  −Σ B∘W                    ∂/∂B = −W (weight transport: Kunin's "symmetric alignment")
//	decay  ½‖B‖²                    ∂/∂B =  B (Kunin's ‖W‖²+‖B‖² has twice this gradient; ½ makes its
//	                                          coefficient a weight decay)
//
// and B's gradient is Amp·∂amp + Null·∂null + Sparse·∂sparse + Self·∂self, plus W's own task gradient if Tied,
// plus Decay·B.
// In training ([Gradients], Mirror nil) that gradient goes through the training optimizer with W's (its
// learning rate, momentum; Decay as B's weight decay, [Decays]); in mirror mode ([MirrorStep]) the
// primitives are evaluated on noise and B takes a plain gradient step of rate Mirror.LearningRate.
type Learning struct {
	// Tied adds W's task gradient to B's: B receives W's update (Kolen-Pollack).
	Tied bool
	// Amp, Null, Sparse and Self are the coefficients of the primitives evaluated on the layer's input (in
	// training) or on noise (in mirror mode).
	Amp, Null, Sparse, Self float64
	// NormalizeInput centres each input row (for a convolution: each patch) on its own mean and scales it to
	// unit L2 norm before the primitives see it: Kunin et al.'s normalize_input option
	// (AlignmentBase._normalize), which they apply to each example's whole input. It bounds the primitives'
	// input covariance Σ = xᵀx/n to trace 1, so that the null term's curvature, 2·λmax(WᵀΣW) ≤ 2‖W‖², no longer
	// grows with the input's scale and width.
	NormalizeInput bool
	// Decay is the coefficient λ of the decay primitive ½‖B‖². In training it is applied by the optimizer
	// as B's weight decay.
	Decay float64
	// DecayWeights applies the same weight decay to W (Kolen-Pollack: W − B then shrinks geometrically).
	DecayWeights bool
	// DecoupledDecay applies Decay (to B, and with DecayWeights to W) after the optimizer's step, θ ← θ − λθ,
	// instead of as an L2 term of the gradient ([DecoupledDecays]).
	DecoupledDecay bool
	// Mirror, if set, makes B learn in separate mirror steps from noise instead of in the training step.
	Mirror *MirrorMode
}

// MirrorMode configures mirror steps ([MirrorStep]).
type MirrorMode struct {
	// LearningRate is the step size of B's plain gradient step.
	LearningRate float64
	// Rescale replaces the decay by rescaling: after each step B is scaled so that sending the noise's output
	// back through B gives a signal of the noise's own norm.
	Rescale bool
}

// primitiveGrad builds B's gradient from the amp, null, sparse and self primitives for input rows x [n, in]
// and outputs y = x·W [n, out], with B and W in W's layout [in, out].
func (l *Learning) primitiveGrad(b, w, x, y *Node) *Node {
	var grad *Node
	add := func(term *Node) {
		if grad == nil {
			grad = term
		} else {
			grad = Add(grad, term)
		}
	}
	n := float64(x.Shape().Dim(0))
	if l.Amp != 0 {
		add(MulScalar(denseOp{}.weightGrad(x, y), -l.Amp/n)) // xᵀy
	}
	if l.Null != 0 {
		back := denseOp{}.inputGrad(y, b) // y·Bᵀ: [n, in]
		add(MulScalar(denseOp{}.weightGrad(back, y), 2*l.Null/n))
	}
	if l.Sparse != 0 {
		add(MulScalar(denseOp{}.weightGrad(x, Dot(x, b)), 2*l.Sparse/n)) // xᵀ(x·B)
	}
	if l.Self != 0 {
		add(MulScalar(w, -l.Self))
	}
	return grad
}

// hasPrimitives reports whether any of amp, null, sparse or self is used.
func (l *Learning) hasPrimitives() bool {
	return l.Amp != 0 || l.Null != 0 || l.Sparse != 0 || l.Self != 0
}

// Gradients builds the gradients of loss with respect to every trainable variable used by loss's graph and,
// for every layer whose rule's B learns in training ([Learning] with no Mirror), the gradient of its feedback
// variable: W's task gradient if Tied, plus the primitives' on the layer's input in this graph. An optimizer
// that applies its usual update to each returned (variable, gradient) pair, with the decays of [Decays],
// therefore gives KP's B exactly W's update (momentum, Adam state and decay included), and IA's B a step on
// its local loss.
//
// Variables and gradients are returned in the same order: first the trainable variables in the context's
// order, then the feedback variables.
func Gradients(ctx *context.Context, loss *Node) ([]*context.Variable, []*Node) {
	g := loss.Graph()
	var vars []*context.Variable
	var nodes []*Node
	for v := range ctx.IterVariables() {
		if v.Trainable && v.InUseByGraph(g) {
			vars = append(vars, v)
			nodes = append(nodes, v.ValueGraph(g))
		}
	}
	grads := Gradient(loss, nodes...)
	gradOf := make(map[*context.Variable]*Node, len(vars))
	for i, v := range vars {
		gradOf[v] = grads[i]
	}
	inputs := map[string]*capture{}
	for _, c := range graphCaptures(ctx, g) {
		if c.x != nil {
			inputs[c.scope] = c
		}
	}
	for _, layer := range Layers(ctx) {
		learning := layer.Rule.Learning(ctx.InAbsPath(layer.Scope))
		if learning == nil || learning.Mirror != nil || layer.Feedback == nil {
			continue
		}
		var grad *Node
		if learning.Tied {
			grad = gradOf[layer.Weights]
		}
		if c, found := inputs[layer.Scope]; found && learning.hasPrimitives() {
			// In the master copies' dtype (float32 under mixed precision): the layer's input is converted.
			b := layer.Feedback.ValueGraph(g)
			w := StopGradient(layer.Weights.ValueGraph(g))
			x := ConvertDType(StopGradient(c.op.inputRows(c.x)), b.DType())
			if learning.NormalizeInput {
				x = normalizeRows(x)
			}
			y := Dot(x, kernelMatrix(w))
			term := learning.primitiveGrad(kernelMatrix(b), kernelMatrix(w), x, y)
			term = Reshape(term, b.Shape().Dimensions...)
			if grad == nil {
				grad = term
			} else {
				grad = Add(grad, term)
			}
		}
		if grad == nil {
			continue
		}
		vars = append(vars, layer.Feedback)
		grads = append(grads, grad)
	}
	return vars, grads
}

// TiedFeedback returns the B of every layer whose B learns by W's task gradient alone ([Learning.Tied] with no
// primitives and no mirror: Kolen-Pollack), mapped to that layer's W. [Gradients] gives such a B exactly W's
// gradient, so an optimizer may update it from W's own state ([Decays] and [DecoupledDecays] give their decays).
func TiedFeedback(ctx *context.Context) map[*context.Variable]*context.Variable {
	tied := map[*context.Variable]*context.Variable{}
	for _, layer := range Layers(ctx) {
		learning := layer.Rule.Learning(ctx.InAbsPath(layer.Scope))
		if learning == nil || !learning.Tied || learning.Mirror != nil || learning.hasPrimitives() ||
			layer.Feedback == nil {
			continue
		}
		tied[layer.Feedback] = layer.Weights
	}
	return tied
}

// normalizeRows centres each row of x [n, k] on its mean and divides it by its L2 norm. As in TensorFlow's
// l2_normalize, the squared norm is floored at 1e-12, so that a constant row (a patch of padding) stays zero.
func normalizeRows(x *Node) *Node {
	x = Sub(x, ReduceAndKeep(x, ReduceMean, -1))
	sq := ReduceAndKeep(Square(x), ReduceSum, -1)
	return Mul(x, Rsqrt(Max(sq, Scalar(x.Graph(), x.DType(), 1e-12))))
}

// kernelMatrix flattens a kernel in W's layout to the matrix [in, out] that multiplies input rows (a dense W
// is one already; an HWIO kernel becomes [kh·kw·cin, cout]).
func kernelMatrix(k *Node) *Node {
	if k.Rank() == 2 {
		return k
	}
	return Reshape(k, -1, k.Shape().Dim(-1))
}

// Decays returns the weight decay the optimizer must apply to the variables of layers whose rule learns B in
// training: B's Decay (a negative Decay means weightDecay, the optimizer's own), and the same for W where
// DecayWeights is set. Other variables keep the optimizer's default.
func Decays(ctx *context.Context, weightDecay float64) map[*context.Variable]float64 {
	decays := map[*context.Variable]float64{}
	for _, layer := range Layers(ctx) {
		learning := layer.Rule.Learning(ctx.InAbsPath(layer.Scope))
		if learning == nil || learning.Mirror != nil {
			continue
		}
		d := learning.Decay
		if d < 0 {
			d = weightDecay
		}
		if learning.DecoupledDecay {
			d = 0 // applied after the step instead: DecoupledDecays
		}
		if layer.Feedback != nil {
			decays[layer.Feedback] = d
		}
		if learning.DecayWeights {
			decays[layer.Weights] = d
		}
	}
	return decays
}

// DecoupledDecays returns the decay λ of the variables whose rule applies it after the optimizer's step
// ([Learning.DecoupledDecay]): an optimizer sets θ ← θ − λ·θ (θ's value before the step) on top of its update,
// and leaves them out of its L2 term ([Decays] gives them 0). With weightDecay for a rule's default decay.
func DecoupledDecays(ctx *context.Context, weightDecay float64) map[*context.Variable]float64 {
	decays := map[*context.Variable]float64{}
	for _, layer := range Layers(ctx) {
		learning := layer.Rule.Learning(ctx.InAbsPath(layer.Scope))
		if learning == nil || learning.Mirror != nil || !learning.DecoupledDecay {
			continue
		}
		d := learning.Decay
		if d < 0 {
			d = weightDecay
		}
		if layer.Feedback != nil {
			decays[layer.Feedback] = d
		}
		if learning.DecayWeights {
			decays[layer.Weights] = d
		}
	}
	return decays
}
