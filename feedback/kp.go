package feedback

import (
	"math"

	"github.com/gomlx/gomlx/pkg/ml/context"
)

// ParamKPDecay is the weight decay that Kolen-Pollack applies to both W and B of its layers. Default -1 means
// the optimizer's weight decay. Decay is what makes KP work: W(t) − B(t) = (1 − η·λ)^t (W(0) − B(0)) under
// plain SGD, so a decay of zero leaves B's initial misalignment forever (as in the authors' released code).
const ParamKPDecay = "kp_decay"

// ParamKPDecoupled applies Kolen-Pollack's decay decoupled from the optimizer, as the paper writes the update
// (ΔW = −η δxᵀ − λW, ΔB = −η xδᵀ − λB): after the optimizer's step, W ← W − λW and B ← B − λB, so that
// W − Bᵀ shrinks by (1 − λ) a step whatever the learning rate and momentum. By default (false) the decay is an
// L2 term in the gradient, as PyTorch's and TensorFlow's weight decay: it goes through the learning rate and the
// momentum, W − Bᵀ shrinks by about η·λ/(1 − μ) a step, and its alignment slows as a schedule lowers η.
const ParamKPDecoupled = "kp_decoupled"

// KolenPollack is rule "kp": B starts random and receives W's own update, with the same optimizer (momentum
// included) and the same weight decay. The update uses only x and δ, present at both ends of the synapse.
// With B stored in W's layout, "ΔB = ΔWᵀ" becomes "B follows W's gradient" ([TiedFeedback] lists such B for
// an optimizer that updates them from W's own state, as nowt's SGD does under momentum). As a composition of
// Kunin et al.'s primitives it is decay alone, with B's task gradient tied to W's:
// Learning{Tied, Decay, DecayWeights}.
type KolenPollack struct{ storedKernel }

// Name implements Rule.
func (KolenPollack) Name() string { return "kp" }

// Description implements Rule.
func (KolenPollack) Description() string {
	return "Kolen-Pollack: B gets W's update and decay, so B → W^T (Akrout et al. 2019)"
}

// Settings implements Rule.
func (KolenPollack) Settings() []Setting {
	return []Setting{{Name: ParamKPDecay, Default: -1.0, HasRange: true, Min: 0, Max: math.Inf(1), Special: []float64{-1},
		Doc: "Kolen-Pollack decay of W and B (-1: the optimizer's weight decay)"},
		{Name: ParamKPDecoupled, Default: false,
			Doc: "Kolen-Pollack: apply kp_decay after the optimizer's step, W ← W − λW, as the paper writes it (W − Bᵀ shrinks by (1−λ) a step whatever the schedule); false: as an L2 term through the learning rate and momentum"}}
}

// Learning implements Rule: tied to W's gradient, with decay on both.
func (KolenPollack) Learning(ctx *context.Context) *Learning {
	return &Learning{Tied: true, Decay: KPDecay(ctx, -1), DecayWeights: true,
		DecoupledDecay: settingValue[bool](ctx, ParamKPDecoupled)}
}

func init() { Register(KolenPollack{}) }

// KPDecay returns the weight decay for the W and B of a KP layer in ctx's scope: [ParamKPDecay] if set
// (≥ 0), else weightDecay.
func KPDecay(ctx *context.Context, weightDecay float64) float64 {
	if d := settingValue[float64](ctx, ParamKPDecay); d >= 0 {
		return d
	}
	return weightDecay
}
