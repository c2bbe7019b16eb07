package feedback

import (
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// ParamKPDecay is the weight decay that Kolen-Pollack applies to both W and B of its layers. Default -1 means
// the optimizer's weight decay. Decay is what makes KP work: W(t) − B(t) = (1 − η·λ)^t (W(0) − B(0)) under
// plain SGD, so a decay of zero leaves B's initial misalignment forever (as in the authors' released code).
const ParamKPDecay = "kp_decay"

// KolenPollack is rule "kp": B starts random and receives W's own update, with the same optimizer (momentum
// included) and the same weight decay. The update uses only x and δ, present at both ends of the synapse.
// With B stored in W's layout, "ΔB = ΔWᵀ" becomes "B follows W's gradient"; see [Gradients].
type KolenPollack struct{ storedFeedback }

// Name implements Rule.
func (KolenPollack) Name() string { return "kp" }

// Description implements Rule.
func (KolenPollack) Description() string {
	return "Kolen-Pollack: B gets W's update and decay, so B → W^T (Akrout et al. 2019)"
}

// FollowsWeightUpdates implements OptimizedFeedback.
func (KolenPollack) FollowsWeightUpdates() {}

func init() { Register(KolenPollack{}) }

// KPDecay returns the weight decay for the W and B of a KP layer in ctx's scope: [ParamKPDecay] if set
// (≥ 0), else weightDecay.
func KPDecay(ctx *context.Context, weightDecay float64) float64 {
	if d := context.GetParamOr(ctx, ParamKPDecay, -1.0); d >= 0 {
		return d
	}
	return weightDecay
}

// Gradients builds the gradients of loss with respect to every trainable variable used by loss's graph and,
// for every layer under a rule with [OptimizedFeedback] (KP), its feedback variable paired with the layer's
// weight gradient. An optimizer that applies its usual update to each returned (variable, gradient) pair
// therefore gives B exactly W's update (momentum, Adam state and decay included), which is KP.
//
// Variables and gradients are returned in the same order: first the trainable variables in the context's
// order, then the KP feedback variables.
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
	for _, layer := range Layers(ctx) {
		if _, ok := layer.Rule.(OptimizedFeedback); !ok || layer.Feedback == nil {
			continue
		}
		gw, found := gradOf[layer.Weights]
		if !found {
			continue
		}
		vars = append(vars, layer.Feedback)
		grads = append(grads, gw)
	}
	return vars, grads
}
