package trainer

import (
	"fmt"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/context/initializers"
	"github.com/gomlx/gomlx/pkg/ml/train/optimizers"
	"github.com/nowt-ml/nowt/feedback"
)

// SGD is stochastic gradient descent with momentum (optionally Nesterov's) and L2 weight decay, in PyTorch's
// form: g ← ∇ + λ·θ; v ← μ·v + g; θ ← θ − η·v (Nesterov: θ ← θ − η·(g + μ·v)).
//
// It takes its gradients from feedback.Gradients, so KP's B receives W's gradient and goes through the same
// update, with its own velocity and the same decay: B's update is W's; IA's B likewise takes its local loss's
// gradient. The learning rate η is the variable
// optimizers.LearningRateVar, which the trainer sets before each step from its Schedule.
//
// Decay applies to tensors of rank ≥ 2 (dense weights, conv kernels and KP's B), not to biases nor batch-norm
// parameters; layers whose B learns use feedback.Decays (KP: kp_decay if set, for both W and B), and
// feedback.DecoupledDecays for a decay applied after the step (KP with kp_decoupled: θ ← θ − η·v − λ·θ).
type SGD struct {
	// Momentum μ (0 = plain SGD); Nesterov selects Nesterov's momentum.
	Momentum float64
	Nesterov bool
	// WeightDecay λ.
	WeightDecay float64
}

// velocityScope holds SGD's velocity variables, mirroring the variables' own scopes.
const velocityScope = "/" + optimizers.Scope + "/sgd_velocity"

var _ optimizers.Interface = (*SGD)(nil)

// UpdateGraph implements optimizers.Interface.
func (o *SGD) UpdateGraph(ctx *context.Context, g *Graph, loss *Node) {
	if !loss.Shape().IsScalar() {
		panic(fmt.Sprintf("SGD: the loss must be a scalar, got %s", loss.Shape()))
	}
	vars, grads := feedback.Gradients(ctx, loss)
	dtype := loss.DType()
	_ = optimizers.IncrementGlobalStepGraph(ctx, g, dtype)
	lr := optimizers.LearningRateVar(ctx, dtype, 0).ValueGraph(g)

	decay := feedback.Decays(ctx, o.WeightDecay)
	decoupled := feedback.DecoupledDecays(ctx, o.WeightDecay)
	for i, v := range vars {
		value := v.ValueGraph(g)
		grad := grads[i]
		lambda, found := decay[v]
		if !found && v.Shape().Rank() >= 2 {
			lambda = o.WeightDecay
		}
		if lambda > 0 {
			grad = Add(grad, MulScalar(value, lambda))
		}
		update := grad
		if o.Momentum > 0 {
			velocityVar := ctx.InAbsPath(velocityScope+v.Scope()).Checked(false).
				WithInitializer(initializers.Zero).
				VariableWithShape(v.Name(), v.Shape()).SetTrainable(false)
			velocity := Add(MulScalar(velocityVar.ValueGraph(g), o.Momentum), grad)
			velocityVar.SetValueGraph(velocity)
			update = velocity
			if o.Nesterov {
				update = Add(grad, MulScalar(velocity, o.Momentum))
			}
		}
		next := Sub(value, Mul(ConvertDType(lr, value.DType()), update))
		if lambda := decoupled[v]; lambda > 0 { // KP with kp_decoupled: θ ← θ − η·v − λ·θ
			next = Sub(next, MulScalar(value, lambda))
		}
		v.SetValueGraph(next)
	}
	feedback.ReleaseGraph(ctx, g) // The gradient was the layers' records' last reader.
}

// Clear implements optimizers.Interface: it deletes the velocity variables.
func (o *SGD) Clear(ctx *context.Context) error {
	return ctx.InAbsPath(velocityScope).DeleteVariablesInScope()
}
