package trainer

import (
	"fmt"
	"math"
	"sync"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/context/initializers"
	"github.com/gomlx/gomlx/pkg/ml/train/metrics"
	"github.com/gomlx/gomlx/pkg/ml/train/optimizers"
	"github.com/nowt-ml/nowt/feedback"
)

// SGD is stochastic gradient descent with momentum (optionally Nesterov's) and L2 weight decay, in PyTorch's
// form: g ← ∇ + λ·θ; v ← μ·v + g; θ ← θ − η·v (Nesterov: θ ← θ − η·(g + μ·v)).
//
// It takes its gradients from feedback.Gradients, so KP's B receives W's gradient and goes through the same
// update, momentum and decay: B's update is W's; IA's B likewise takes its local loss's gradient. Under
// momentum KP's B has no velocity array of its own: its velocity differs from W's by a scalar multiple of
// B − W, and B is updated from W's step and that scalar ([SGD.pairedDecay]; the same update, exact in
// arithmetic). The learning rate η is the variable optimizers.LearningRateVar, which nowt's trainer sets before
// each step from its Schedule. Where the variable does not exist when the first step is built (SGD as the
// optimizer of a program's own train.Trainer, which deletes it), it starts, as with GoMLX's SGD, at the context's
// optimizers.ParamLearningRate, by default optimizers.SGDDefaultLearningRate. In nowt's trainer a KP B that no
// step reads (the first layer's) is not written at every step: its update waits until something reads B
// (deferred.go).
//
// Decay applies to tensors of rank ≥ 2 (dense weights, conv kernels and KP's B), not to biases nor batch-norm
// parameters; layers whose B learns use feedback.Decays (KP: kp_decay if set, for both W and B), and
// feedback.DecoupledDecays for a decay applied after the step (KP with kp_decoupled: θ ← θ − η·v − λ·θ).
//
// With ClipNorm c > 0 every gradient the step receives — the trainable variables' and the learning B's — is first
// scaled by min(1, c/‖g‖), ‖g‖ their global L2 norm, as PyTorch's clip_grad_norm_ over all of a model's parameters
// before its optimizer's step: the decay is added after, and KP's B, whose gradient is W's, is scaled with it
// (counted in ‖g‖ like any parameter), so B's update stays W's. WM's mirror steps are not part of the step.
type SGD struct {
	// Momentum μ (0 = plain SGD); Nesterov selects Nesterov's momentum.
	Momentum float64
	Nesterov bool
	// WeightDecay λ.
	WeightDecay float64
	// ClipNorm c bounds the global L2 norm of the step's gradients (0 = no clipping).
	ClipNorm float64

	// norms hands each training graph's gradient norm to its metric ([SGD.GradientNormMetric]); nil until
	// the metric is asked for.
	norms *graphNodes

	// deferUnread defers the update of a paired KP B that the step does not read ([deferUpdate]); whoever sets
	// it brings B up to date before reading it ([settleDeferredGraph]) and keeps the deferral's state out of
	// checkpoints ([deferralState]). nowt's trainer does; SGD in a program's own train.Trainer does not defer.
	deferUnread bool
}

// graphNodes holds one node per graph, from the graph's builder to a later reader of the same graph.
type graphNodes struct {
	mu    sync.Mutex
	nodes map[*Graph]*Node
}

// put records node for its graph.
func (s *graphNodes) put(node *Node) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nodes[node.Graph()] = node
}

// take returns and forgets g's node (nil if none was put).
func (s *graphNodes) take(g *Graph) *Node {
	s.mu.Lock()
	defer s.mu.Unlock()
	node := s.nodes[g]
	delete(s.nodes, g)
	return node
}

// GradientNormMetricName is the name of [SGD.GradientNormMetric]'s metric.
const GradientNormMetricName = "Gradient Norm"

// GradientNormMetric returns a training metric that reports each step's global gradient norm ‖g‖ as the
// optimizer saw it: the L2 norm of every gradient of the step (the trainable variables' and the learning B's,
// the set ClipNorm bounds), before any clipping. It must be asked for before the first training graph is built
// and reads only graphs this optimizer updated (any other gets NaN).
func (o *SGD) GradientNormMetric() metrics.Interface {
	if o.norms == nil {
		o.norms = &graphNodes{nodes: make(map[*Graph]*Node)}
	}
	norms := o.norms
	return metrics.NewBaseMetric(GradientNormMetricName, "|g|", gradientNormMetricType,
		func(_ *context.Context, _, predictions []*Node) *Node {
			g := predictions[0].Graph()
			if norm := norms.take(g); norm != nil {
				return norm
			}
			return Scalar(g, dtypes.Float32, math.NaN())
		}, nil)
}

// gradientNormMetricType is the type of the gradient-norm metric: neither a loss nor an accuracy.
const gradientNormMetricType = "gradient_norm"

// velocityScope holds SGD's velocity variables, mirroring the variables' own scopes.
const velocityScope = "/" + optimizers.Scope + "/sgd_velocity"

var _ optimizers.Interface = (*SGD)(nil)

// UpdateGraph implements optimizers.Interface.
func (o *SGD) UpdateGraph(ctx *context.Context, g *Graph, loss *Node) {
	if !loss.Shape().IsScalar() {
		panic(fmt.Sprintf("SGD: the loss must be a scalar, got %s", loss.Shape()))
	}
	vars, grads := feedback.Gradients(ctx, loss)
	if o.ClipNorm > 0 || o.norms != nil {
		norm := globalNorm(grads)
		if o.norms != nil && norm != nil {
			o.norms.put(ConvertDType(norm, dtypes.Float32))
		}
		if o.ClipNorm > 0 && norm != nil {
			grads = clipByGlobalNorm(grads, norm, o.ClipNorm)
		}
	}
	dtype := loss.DType()
	_ = optimizers.IncrementGlobalStepGraph(ctx, g, dtype)
	// nowt's trainer creates and sets the variable before it builds a step; a program's own train.Trainer deletes
	// it when made, and it then starts, as with GoMLX's SGD, at the context's learning_rate.
	initialLR := context.GetParamOr(ctx, optimizers.ParamLearningRate, optimizers.SGDDefaultLearningRate)
	lr := optimizers.LearningRateVar(ctx, dtype, initialLR).ValueGraph(g)

	decay := feedback.Decays(ctx, o.WeightDecay)
	decoupled := feedback.DecoupledDecays(ctx, o.WeightDecay)
	tied := feedback.TiedFeedback(ctx)
	var unread map[*context.Variable]bool
	if o.deferUnread {
		unread = feedback.UnreadFeedback(ctx, g)
	}
	steps := make(map[*context.Variable]sgdStep, len(vars))
	for i, v := range vars { // W before its B: Gradients lists the feedback variables last.
		value := v.ValueGraph(g)
		lambda, found := decay[v]
		if !found && v.Shape().Rank() >= 2 {
			lambda = o.WeightDecay
		}
		step := sgdStep{value: value, lambda: lambda, decoupled: decoupled[v]}
		if w, isTied := tied[v]; isTied {
			if ws, found := steps[w]; found && o.canPair(ctx, v, ws, step) {
				f := o.pairedDecay(ctx, g, v, lr, step)
				if unread[v] && deferUpdate(ctx, g, v, w, f) {
					continue
				}
				if from, _ := deferralOf(ctx, v); from != nil {
					panic(fmt.Sprintf("SGD: the update of feedback weights %s/%s is deferred (an earlier step read "+
						"them nowhere), but this step reads them: they are not up to date (internal error)", v.Scope(), v.Name()))
				}
				// B ← W_next + f·(B − W)
				v.SetValueGraph(Add(ws.next, Mul(f, Sub(step.value, ws.value))))
				continue
			}
		}
		grad := grads[i]
		if lambda > 0 {
			grad = Add(grad, MulScalar(value, lambda))
		}
		update := grad
		if o.Momentum > 0 {
			velocityVar := optimizerState(ctx, v, v.Name(), v.Shape())
			velocity := Add(MulScalar(velocityVar.ValueGraph(g), o.Momentum), grad)
			velocityVar.SetValueGraph(velocity)
			update = velocity
			if o.Nesterov {
				update = Add(grad, MulScalar(velocity, o.Momentum))
			}
		}
		next := Sub(value, Mul(ConvertDType(lr, value.DType()), update))
		if step.decoupled > 0 { // KP with kp_decoupled: θ ← θ − η·v − λ·θ
			next = Sub(next, MulScalar(value, step.decoupled))
		}
		step.next = next
		steps[v] = step
		v.SetValueGraph(next)
	}
	feedback.ReleaseGraph(ctx, g) // The gradient was the layers' records' last reader.
}

// globalNorm returns the L2 norm of all of grads together, summed in float32 at least (a bfloat16 gradient's
// squares would lose their sum), or nil for no gradients.
func globalNorm(grads []*Node) *Node {
	if len(grads) == 0 {
		return nil
	}
	sumDType := grads[0].DType()
	if sumDType.Size() < 4 {
		sumDType = dtypes.Float32
	}
	var squares *Node
	for _, grad := range grads {
		sq := sumOfSquares(ConvertDType(grad, sumDType))
		if squares == nil {
			squares = sq
		} else {
			squares = Add(squares, sq)
		}
	}
	return Sqrt(squares)
}

// sumOfSquares returns Σ x²: for a matrix or higher rank, as the matrix-vector product of its squares, reshaped
// to [rows, last axis], with ones, summed over the rows. XLA's CPU backend sums a whole tensor to a scalar (or
// along either axis of a matrix) one element after another, about 1.5 ns each: the steps of the 784-500-10 MLP
// took 1.21–1.34 times as long with their gradients' norm so computed, and 0.99–1.04 times with the product
// (BenchmarkGradientNorm on an idle machine, beside its control of two identical set-ups at 0.99–1.00;
// perf-analysis §11). Tensors under minDotSquares values are reduced as usual. Under TF32 matrix products (an
// NVIDIA GPU's default for float32) the norm carries their rounding, about 1e-3 relative: enough for a log and a
// clipping bound.
func sumOfSquares(x *Node) *Node {
	sq := Square(x)
	if x.Rank() >= 2 && x.Shape().Size() >= minDotSquares {
		last := x.Shape().Dim(-1)
		sq = Dot(Reshape(sq, -1, last), Ones(x.Graph(), shapes.Make(x.DType(), last)))
	}
	return ReduceAllSum(sq)
}

// minDotSquares is the fewest values sumOfSquares sums as a product: below it a reduction costs little (about
// 0.1 ms for 65,536 values) and compiles faster.
const minDotSquares = 1 << 16

// clipByGlobalNorm scales grads together by min(1, c/‖g‖), norm their global L2 norm ‖g‖ ([globalNorm]); a zero
// norm leaves them as they are.
func clipByGlobalNorm(grads []*Node, norm *Node, c float64) []*Node {
	g, sumDType := norm.Graph(), norm.DType()
	// min(1, c/‖g‖) as c/max(c, ‖g‖): 1 up to the bound, and no division by a zero norm.
	factor := Div(Scalar(g, sumDType, c), Max(norm, Scalar(g, sumDType, c)))
	clipped := make([]*Node, len(grads))
	for i, grad := range grads {
		clipped[i] = Mul(grad, ConvertDType(factor, grad.DType()))
	}
	return clipped
}

// sgdStep is one variable's update in a graph: its value before and after, and its decays.
type sgdStep struct {
	value, next       *Node
	lambda, decoupled float64 // L2 decay through the gradient; decay after the step
}

// optimizerState returns the optimizer's state variable called name for variable v, created at zero, in the
// velocities' scope that mirrors v's: v's velocity is called v.Name(), KP's ratio r v.Name()+pairedRatioSuffix.
func optimizerState(ctx *context.Context, v *context.Variable, name string, shape shapes.Shape) *context.Variable {
	return optimizerStateFrom(ctx, v, name, shape, initializers.Zero)
}

// optimizerStateFrom is optimizerState, created by init instead of at zero (a deferred B's factor F starts at one).
func optimizerStateFrom(ctx *context.Context, v *context.Variable, name string, shape shapes.Shape,
	init context.VariableInitializer) *context.Variable {
	return ctx.InAbsPath(velocityScope+v.Scope()).Checked(false).
		WithInitializer(init).
		VariableWithShape(name, shape).SetTrainable(false)
}

// pairedRatioSuffix names the scalar r of a KP B updated from its W's state (see [SGD.pairedDecay]).
const pairedRatioSuffix = "_paired_velocity_ratio"

// canPair reports whether KP's B (step b) can be updated from its W's step w: with momentum (without it B's
// own update is already one pass), the same decays, and no velocity of B's own in ctx (a checkpoint written
// before B was paired carries one: that run goes on with it, so that it resumes exactly).
func (o *SGD) canPair(ctx *context.Context, b *context.Variable, w, bStep sgdStep) bool {
	if o.Momentum <= 0 || w.lambda != bStep.lambda || w.decoupled != bStep.decoupled ||
		w.value.DType() != bStep.value.DType() {
		return false
	}
	return ctx.InAbsPath(velocityScope+b.Scope()).GetVariable(b.Name()) == nil
}

// pairedDecay returns the factor f by which a step shrinks D = B − W for a B that receives its W's gradient
// (Kolen-Pollack): B's next value is W_next + f·(B − W), computed from W's step instead of through a velocity of
// B's own. It is the same update, exact in arithmetic: W and B get the same gradient g, so with L2 decay λ,
// momentum μ and decoupled decay λd the offset D = B − W and the velocities' difference u = v_B − v_W follow,
// element by element,
//
//	u ← μ·u + λ·D;   D ← D − η·u − λd·D        (Nesterov: D ← D − η·(λ·D + μ·u) − λd·D)
//
// Both start proportional (u = 0 while the velocities are zero), so u = r·D for one scalar r per layer, kept
// in a variable beside the velocities: with s = μ·r + λ, D shrinks by f = 1 − η·s − λd (Nesterov:
// 1 − η·(λ + μ·s) − λd), B ← W_next + f·D and r ← s/f. Instead of B's velocity (an array the size of W) and
// its two passes of updates, one elementwise pass reads W, W_next and B: on the MLPs, where these passes are a
// good part of the step, KP's step fell from about 1.14× and 1.21× BP's to 1.08× and 1.10× (docs/perf-analysis.md §9).
// Where the step reads B nowhere (the first layer's), even that pass waits ([deferUpdate]).
//
// In floating point the velocity's difference is read back as r·(B − W), so B's rounding is scaled by r. Where
// D decays without overshooting zero (η·λ < (1 − √μ)², as in nowt's defaults and the demo's 0.002 < 0.0026), f
// stays near 1 and r near its fixed point; where it overshoots, a step with f near zero makes r large and the
// next step's velocity carries B's rounding times 1/|f| (f is a multiple of 2⁻²⁴ in float32, so bounded): a
// perturbation of B that the decay then removes like any other part of D.
func (o *SGD) pairedDecay(ctx *context.Context, g *Graph, b *context.Variable, lr *Node, bStep sgdStep) *Node {
	dtype := bStep.value.DType()
	ratioVar := optimizerState(ctx, b, b.Name()+pairedRatioSuffix, shapes.Make(dtype))
	eta := ConvertDType(lr, dtype)
	r := ratioVar.ValueGraph(g)
	s := AddScalar(MulScalar(r, o.Momentum), bStep.lambda)
	q := s // the difference of the two updates, per unit of D
	if o.Nesterov {
		q = AddScalar(MulScalar(s, o.Momentum), bStep.lambda)
	}
	f := Sub(Scalar(g, dtype, 1-bStep.decoupled), Mul(eta, q))
	zero := ScalarZero(g, dtype)
	// f = 0 leaves D = 0, and u = s·D = 0 with it: any r will do.
	fIsZero := Equal(f, zero)
	ratioVar.SetValueGraph(Where(fIsZero, zero, Div(s, Where(fIsZero, OnesLike(f), f))))
	return f
}

// Clear implements optimizers.Interface: it deletes the velocity variables.
func (o *SGD) Clear(ctx *context.Context) error {
	return ctx.InAbsPath(velocityScope).DeleteVariablesInScope()
}
