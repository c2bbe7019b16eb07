package feedback

import (
	"math"

	"github.com/gomlx/gomlx/pkg/ml/context"
)

// Activation-alignment coefficients (context parameters), Kunin et al.'s β (amp) and α (sparse).
const (
	// ParamAAAmp is the coefficient of the amp primitive. Default 1.
	ParamAAAmp = "aa_amp"
	// ParamAASparse is the coefficient of the sparse primitive. Default 0.5 (half amp's: B → W on the
	// input's span, see [ActivationAlignment]).
	ParamAASparse = "aa_sparse"
	// ParamAADecay is B's decay (½‖B‖², applied as B's weight decay). Default -1: the optimizer's weight decay.
	ParamAADecay = "aa_decay"
	// ParamAANormalizeInput centres each input row (each patch of a convolution) and scales it to unit norm
	// before the primitives, as ia does ([Learning.NormalizeInput]). Default true.
	ParamAANormalizeInput = "aa_normalize_input"
)

// ActivationAlignment is rule "aa", Kunin et al. 2020's activation alignment (neuroailab/neural-alignment,
// Alignments/alignment.py, class Activation): B learns in the training step, by the training optimizer, on the
// local loss
//
//	a·amp + s·sparse + γ·decay = −(a/n)·Σ (x̂·B)∘(x̂·W) + (s/n)·‖x̂·B‖² + (γ/2)·‖B‖²
//
// computed from the layer's input rows x̂ (for a convolution, its patches), each centred on its mean and scaled
// to unit norm, and W. (Kunin et al.'s sparse primitive also holds ‖x·W‖², which does not depend on B.) Its
// gradient, Σ·(2s·B − a·W) + γ·B with Σ = x̂ᵀx̂/n, pulls B towards (a/2s)·W on the span of the layer's inputs:
// B learns to give, on the inputs the layer sees, the output W gives — an estimate of W from activity, not a
// copy of it, which is why Kunin et al. count AA among the "weight estimation" rules. With the default
// s = a/2 the loss is, up to a term free of B, (a/2n)·‖x̂·B − x̂·W‖² and B → W there. On directions no input
// takes, nothing pulls B: without decay it keeps its random start there; γ (by default the optimizer's weight
// decay, as for kp and ia; Kunin et al.'s AA has none) makes that remainder fade.
//
// The input is normalised for ia's reason ([InformationAlignment]): the sparse term's gradient 2s·Σ·B is
// linear in B, and SGD with momentum μ is stable on it only while η·2s·λmax(Σ) < 2(1+μ), which raw MNIST
// pixels or a ReLU layer's uncentred activations break at the task's learning rate; unit-norm rows give
// tr Σ = 1. The price is the same as ia's: along an input direction of variance λ B learns at η·2s·λ a step,
// slowly in a wide layer (λ ~ 1/width). Raising amp and sparse together by a factor c speeds B by c and keeps
// its limit; it stays stable while η·2s·c < 2(1+μ), since λ ≤ 1 (docs/results.md: on the Fashion-MNIST CNN at
// η = 0.005, c = 100 gains 12–26 points in every seed; on CIFAR-10 ResNet-20 at η = 0.01, c = 50 ends at
// 53.0–53.3 % in three seeds, 12–13 points above FA and IA in each, against 39.4 at c = 1 in one; on the ReLU MLP
// at η = 0.05, c = 10 made the run diverge).
//
// At a learning rate where FA's training loss already spikes, AA's weights grow further than FA's and its
// softmax saturates: on the ReLU MLP at η = 0.05 with momentum 0.9 its classifier's ‖W‖ ends 2.7–4.1× BP's and
// its test loss 0.27–0.72 against FA's 0.12–0.16, though its accuracy is higher; at η = 0.025 it is FA's equal,
// calibrated (docs/results.md, five seeds). Watch ‖W‖ (weight_norm in the metrics log, nowt eval's table).
// Label smoothing 0.1 at η = 0.05 keeps ‖W‖ near BP's in four seeds of five but leaves B as far from Wᵀ as FA's
// (69–77° at the classifier, against 49–51° without) and costs 2.1 points on average; clipping the gradients'
// global norm at 2 (-clip-norm 2) instead keeps ‖W‖ at 8.4–8.6, B 56–58° from Wᵀ, the test loss at 0.08 and the
// accuracy level with the unclipped runs'.
type ActivationAlignment struct{ storedKernel }

// Name implements Rule.
func (ActivationAlignment) Name() string { return "aa" }

// Description implements Rule.
func (ActivationAlignment) Description() string {
	return "activation alignment: B learns amp + sparse on the layer's input, B → W there (Kunin et al. 2020)"
}

// Settings implements Rule.
func (ActivationAlignment) Settings() []Setting {
	return []Setting{
		{Name: ParamAAAmp, Default: 1.0, HasRange: true, Min: 0, Max: math.Inf(1), Doc: "activation alignment: amp's coefficient"},
		{Name: ParamAASparse, Default: 0.5, HasRange: true, Min: 0, Max: math.Inf(1), Doc: "activation alignment: sparse's coefficient (half amp's: B → W on the input's span)"},
		{Name: ParamAADecay, Default: -1.0, HasRange: true, Min: 0, Max: math.Inf(1), Special: []float64{-1}, Doc: "activation alignment: B's decay (-1: the optimizer's weight decay)"},
		{Name: ParamAANormalizeInput, Default: true, Doc: "activation alignment: centre each input row (patch) and scale it to unit norm before the primitives (false: the raw input, unstable at usual learning rates)"},
	}
}

// Learning implements Rule.
func (ActivationAlignment) Learning(ctx *context.Context) *Learning {
	return &Learning{
		Amp:    settingValue[float64](ctx, ParamAAAmp),
		Sparse: settingValue[float64](ctx, ParamAASparse),
		Decay:  settingValue[float64](ctx, ParamAADecay),

		NormalizeInput: settingValue[bool](ctx, ParamAANormalizeInput),
	}
}

func init() { Register(ActivationAlignment{}) }
