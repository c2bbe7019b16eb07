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
	// ParamIANormalizeInput centres each input row (each patch of a convolution) and scales it to unit norm
	// before the primitives (Kunin et al.'s normalize_input; see Learning.NormalizeInput). Default true.
	ParamIANormalizeInput = "ia_normalize_input"
)

// InformationAlignment is rule "ia", Kunin et al. 2020's information alignment (neuroailab/neural-alignment,
// Alignments/alignment.py, class Information, with its default options: primitives on the layer's own
// input, amp on the forward and backward projections, null on the forward reconstruction, decay rather than
// sparse; and its normalize_input option, on by default here): B learns in the training step, by the training
// optimizer, on the local loss
//
//	α·amp + β·null + γ·decay = −(α/n)·Σ (x̂·B)∘(x̂·W) + (β/n)·‖x̂·W·Bᵀ‖² + (γ/2)·‖B‖²
//
// computed from the layer's input rows x̂ (for a convolution, its patches), each centred on its mean and scaled
// to unit norm, and W, both present at the synapse.
//
// Coefficients: the authors' released configurations are not in the repository (config/get_configs.sh
// downloads them), so these are ours, and chosen for a reason: with β = α/2 the amp and null terms are,
// up to a constant, α/2 times the reconstruction loss (1/n)·‖x̂ − x̂·W·Bᵀ‖² (its gradient is 2(B·WᵀΣW − ΣW),
// Σ = x̂ᵀx̂/n, which is amp's −ΣW and null's 2B·WᵀΣW times 2): B learns to reconstruct the layer's input from
// its output, the "information" the name refers to, and converges to ΣW(WᵀΣW)⁻¹ — Wᵀ's pseudo-inverse
// weighted by the input statistics, equal to W for orthogonal W. α = 1 makes the optimizer's learning rate
// B's; γ defaults to the optimizer's weight decay, like KP's, and regularises the inverse where W is
// ill-conditioned.
//
// Why the input is normalised ([ParamIANormalizeInput]): the null term's gradient 2β·B·WᵀΣW is linear in B,
// and SGD with momentum μ is stable on it only while η·2β·λmax(WᵀΣW) < 2(1+μ). On raw inputs λmax(Σ) is the
// input's top principal variance — hundreds for MNIST's correlated pixels or a ReLU layer's uncentred
// activations — and IA diverged at the first step of every network tried at the task's learning rate (MNIST
// MLP, Fashion-MNIST CNN, ResNet-20 at η = 0.05). Unit-norm rows give tr Σ = 1, so λmax(WᵀΣW) ≤ ‖W‖². Kunin et
// al. normalise each example's whole input; nowt normalises each row (each patch of a convolution), which is
// what the synapse sees and keeps the bound independent of the image size.
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
		{Name: ParamIANormalizeInput, Default: true, Doc: "information alignment: centre each input row (patch) and scale it to unit norm before the primitives (false: the raw input, unstable at usual learning rates)"},
	}
}

// Learning implements Rule.
func (InformationAlignment) Learning(ctx *context.Context) *Learning {
	return &Learning{
		Amp:   settingValue[float64](ctx, ParamIAAmp),
		Null:  settingValue[float64](ctx, ParamIANull),
		Decay: settingValue[float64](ctx, ParamIADecay),

		NormalizeInput: settingValue[bool](ctx, ParamIANormalizeInput),
	}
}

func init() { Register(InformationAlignment{}) }
