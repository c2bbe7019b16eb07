package feedback

import (
	"math"

	"github.com/gomlx/gomlx/pkg/ml/context"
)

// Information-alignment coefficients (context parameters), Kunin et al.'s α, β and γ.
const (
	// ParamIAAmp is α, the coefficient of the amp primitive. Default 1.
	ParamIAAmp = "ia_amp"
	// ParamIANull is β, the coefficient of the null primitive. Default 0.5 (= α/2, see [InformationAlignment]).
	ParamIANull = "ia_null"
	// ParamIADecay is γ, B's decay (the decay primitive ½‖B‖², applied as B's weight decay). Default -1: the
	// optimizer's weight decay.
	ParamIADecay = "ia_decay"
)

// InformationAlignment is rule "ia", Kunin et al. 2020's information alignment (neuroailab/neural-alignment,
// Alignments/alignment.py, class Information, with its default options: primitives on the layer's own
// input, amp on the forward and backward projections, null on the forward reconstruction, decay rather than
// sparse): B learns in the training step, by the training optimizer, on the local loss
//
//	α·amp + β·null + γ·decay = −(α/n)·Σ (x·B)∘(x·W) + (β/n)·‖x·W·Bᵀ‖² + (γ/2)·‖B‖²
//
// computed from the layer's input x (for a convolution, its patches) and W, both present at the synapse.
//
// Coefficients: the authors' released configurations are not in the repository (config/get_configs.sh
// downloads them), so these are ours, and chosen for a reason: with β = α/2 the amp and null terms are,
// up to a constant, α/2 times the reconstruction loss (1/n)·‖x − x·W·Bᵀ‖² (its gradient is 2(B·WᵀΣW − ΣW),
// Σ = xᵀx/n, which is amp's −ΣW and null's 2B·WᵀΣW times 2): B learns to reconstruct the layer's input from
// its output, the "information" the name refers to, and converges to ΣW(WᵀΣW)⁻¹ — Wᵀ's pseudo-inverse
// weighted by the input statistics, equal to W for orthogonal W. α = 1 makes the optimizer's learning rate
// B's; γ defaults to the optimizer's weight decay, like KP's, and regularises the inverse where W is
// ill-conditioned.
//
// Caveat: the reconstructing B scales as 1/‖W‖, not as ‖W‖, and on models' small CIFAR ResNet-20 test (SGD
// at 0.05 with momentum, batch norm) the signals it sends grow until the loss turns NaN within 15 steps; at
// 0.01 it does not diverge but does not learn in 60 steps either. Its local loss and gradients are exact
// (TestInformationAlignmentGradient); coefficients that train deep networks remain to be found.
type InformationAlignment struct{ storedKernel }

// Name implements Rule.
func (InformationAlignment) Name() string { return "ia" }

// Description implements Rule.
func (InformationAlignment) Description() string {
	return "information alignment: B learns α·amp + β·null + γ·decay on the layer's input (Kunin et al. 2020)"
}

// Settings implements Rule.
func (InformationAlignment) Settings() []Setting {
	return []Setting{
		{Name: ParamIAAmp, Default: 1.0, HasRange: true, Min: 0, Max: math.Inf(1), Doc: "information alignment: α, amp's coefficient"},
		{Name: ParamIANull, Default: 0.5, HasRange: true, Min: 0, Max: math.Inf(1), Doc: "information alignment: β, null's coefficient (α/2: B reconstructs the input)"},
		{Name: ParamIADecay, Default: -1.0, HasRange: true, Min: 0, Max: math.Inf(1), Special: []float64{-1}, Doc: "information alignment: γ, B's decay (-1: the optimizer's weight decay)"},
	}
}

// Learning implements Rule.
func (InformationAlignment) Learning(ctx *context.Context) *Learning {
	return &Learning{
		Amp:   context.GetParamOr(ctx, ParamIAAmp, 1.0),
		Null:  context.GetParamOr(ctx, ParamIANull, 0.5),
		Decay: context.GetParamOr(ctx, ParamIADecay, -1.0),
	}
}

func init() { Register(InformationAlignment{}) }
