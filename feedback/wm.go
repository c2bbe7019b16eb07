package feedback

import (
	"fmt"
	"math"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// Weight-mirror hyperparameters (context parameters).
const (
	// ParamWMNoise is the noise distribution, "uniform" (on [−scale, scale), the released code's) or
	// "gaussian" (σ = scale). Default "uniform".
	ParamWMNoise = "wm_noise"
	// ParamWMNoiseScale is the noise amplitude. Default 0.05.
	ParamWMNoiseScale = "wm_noise_scale"
	// ParamWMLearningRate is η_B. Default 0.01.
	ParamWMLearningRate = "wm_learning_rate"
	// ParamWMDecay is λ_B, B's decay per mirror step. Default 0.01 (= η_B: B becomes an exponential moving
	// average of the mirror's estimate of Wᵀ, with ‖B‖ → ‖W‖).
	//
	// That average lags W by about 1/η_B mirror steps. Where W moves faster (no batch norm, a high learning
	// rate: docs/results.md's Fashion-MNIST CNN), B goes stale and training can diverge; then raise η_B = λ_B
	// (or ParamWMSteps) and ParamWMBatch together, so that B keeps up without getting noisier.
	ParamWMDecay = "wm_decay"
	// ParamWMRescale replaces the decay by rescaling: after each update B is scaled so that sending the noise's
	// output y back through B gives a signal of the noise's own norm. Default false.
	ParamWMRescale = "wm_rescale"
	// ParamWMBatch is the number of noise samples per layer and mirror step (for a convolution, patches:
	// noise images of (kh+7)×(kw+7) pixels, 64 patches each). Default 128.
	ParamWMBatch = "wm_batch"
	// ParamWMSteps is the number of mirror steps the trainer runs after each training step. Default 1.
	ParamWMSteps = "wm_steps"
	// ParamWMWarmupSteps is the number of mirror steps the trainer runs before training. Default -1: as many
	// as one epoch has training steps (the released code's full mirror pass).
	ParamWMWarmupSteps = "wm_warmup_steps"
)

// conv mirror noise images measure (kh+convMirrorMargin)×(kw+convMirrorMargin), giving 8×8 valid positions.
const convMirrorMargin = 7

// convMirrorPositions is the number of patches (valid positions) in one conv mirror noise image.
const convMirrorPositions = (convMirrorMargin + 1) * (convMirrorMargin + 1)

// convMirrorImages is how many noise images a conv mirror step draws for batch noise samples (ParamWMBatch):
// enough for batch patches, at least one.
func convMirrorImages(batch int) int {
	return max(1, (batch+convMirrorPositions-1)/convMirrorPositions)
}

// WeightMirror is rule "wm": B starts random and learns Wᵀ in a mirror mode that needs no access to W. For each
// layer, noise x (zero mean, variance σ²) drives the layer's linear part, y = W x, and
//
//	B ← B + η_B · x yᵀ/(n σ²) − λ_B · B
//
// so that E[ΔB] = η_B Wᵀ − λ_B B and B converges to (η_B/λ_B) Wᵀ. The update is divided by σ² (the released
// code did not), so η_B is the rate at which B moves and the noise amplitude only sets the operating point;
// with the released defaults (σ² = 0.05²/3) an undivided η_B = 0.01 would need about 10⁵ steps to align.
// nowt's trainer interleaves [MirrorStep] with training steps (ParamWMSteps) and runs a warm-up before; a program
// with its own training loop runs MirrorStep itself (see the example of MirrorStep): no training step moves B.
//
// As a composition of Kunin et al.'s primitives it is amp on noise plus decay: one plain gradient step of
// rate η_B on (1/σ²)·amp + (λ_B/η_B)·decay, i.e. Learning{Amp: 1/σ², Decay: λ_B/η_B, Mirror: {η_B}}.
type WeightMirror struct{ storedKernel }

// Name implements Rule.
func (WeightMirror) Name() string { return "wm" }

// Description implements Rule.
func (WeightMirror) Description() string {
	return "weight mirror: B learns W^T from noise in a mirror mode (Akrout et al. 2019)"
}

// Settings implements Rule.
func (WeightMirror) Settings() []Setting {
	return []Setting{
		{Name: ParamWMNoise, Default: "uniform", Choices: []string{"uniform", "gaussian", "normal"}, Doc: "weight-mirror noise: uniform or gaussian"},
		{Name: ParamWMNoiseScale, Default: 0.05, HasRange: true, Min: 0, MinExclusive: true, Max: math.Inf(1), Doc: "weight-mirror noise amplitude (uniform half-width or gaussian σ)"},
		{Name: ParamWMLearningRate, Flag: "wm-lr", Default: 0.01, HasRange: true, Min: 0, MinExclusive: true, Max: math.Inf(1), Doc: "weight-mirror learning rate η_B"},
		{Name: ParamWMDecay, Default: 0.01, HasRange: true, Min: 0, Max: 1, Doc: "weight-mirror decay λ_B per mirror step"},
		{Name: ParamWMRescale, Default: false, Doc: "weight mirror: rescale B instead of decaying it"},
		{Name: ParamWMBatch, Default: 128, HasRange: true, Min: 1, Max: math.Inf(1), Doc: "noise samples per layer and mirror step"},
		{Name: ParamWMSteps, Default: 1, HasRange: true, Min: 0, Max: math.Inf(1), Global: true, Doc: "mirror steps after each training step"},
		{Name: ParamWMWarmupSteps, Flag: "wm-warmup", Default: -1, HasRange: true, Min: 0, Max: math.Inf(1), Special: []float64{-1}, Global: true, Doc: "mirror steps before training (-1: one epoch's worth)"},
	}
}

// Learning implements Rule: amp on noise plus decay, in mirror steps.
func (WeightMirror) Learning(ctx *context.Context) *Learning {
	eta := settingValue[float64](ctx, ParamWMLearningRate)
	l := &Learning{Amp: 1 / mirrorNoiseVariance(ctx), Mirror: &MirrorMode{LearningRate: eta,
		Rescale: settingValue[bool](ctx, ParamWMRescale)}}
	if !l.Mirror.Rescale && eta > 0 {
		l.Decay = settingValue[float64](ctx, ParamWMDecay) / eta
	}
	return l
}

func init() { Register(WeightMirror{}) }

// mirrorStep is one step of B on noise rows x [n, in] with outputs y = x·W [n, out], B and W as matrices
// [in, out]: B − η·(primitives' gradient + Decay·B), or with Rescale B + (−η·gradient) rescaled.
func (l *Learning) mirrorStep(b, w, x, y *Node) *Node {
	eta := l.Mirror.LearningRate
	grad := l.primitiveGrad(b, w, x, y)
	if l.Mirror.Rescale {
		updated := Sub(b, MulScalar(grad, eta))
		back := denseOp{}.inputGrad(y, updated) // y sent back through B: [n, in].
		scale := Div(Sqrt(ReduceAllSum(Square(x))), MaxScalar(Sqrt(ReduceAllSum(Square(back))), 1e-12))
		return Mul(updated, scale)
	}
	if l.Decay != 0 {
		grad = Add(grad, MulScalar(b, l.Decay))
	}
	return Sub(b, MulScalar(grad, eta))
}

// MirrorNoiseFloor returns the angle ∠(B, Wᵀ), in degrees, at which the weight mirror's B settles around a
// fixed W in layer, under the settings of ctx (the model's context): the noise of its estimate, which no number
// of mirror steps removes. Each mirror step estimates Wᵀ from n noise samples (ParamWMBatch; a convolution's
// patches, 64 to a noise image) with a relative error of (d + κ − 2)/n in square norm, d the layer's inputs and
// κ the noise's kurtosis (1.8 uniform, 3 gaussian); B, an exponential average of the estimates with decay
// λ_B (ParamWMDecay), keeps λ_B/(2−λ_B) of it, whatever η_B:
//
//	∠ = arctan √(λ_B/(2−λ_B) · (d + κ − 2)/n)
//
// (TestWeightMirrorNoiseFloor). A W that moves adds a lag (see ParamWMDecay), so in training this is the least
// angle to expect. ok is false for layers that do not learn in mirror mode, or that rescale B instead of
// decaying it.
func MirrorNoiseFloor(ctx *context.Context, layer Layer) (degrees float64, ok bool) {
	layerCtx := ctx.InAbsPath(layer.Scope)
	learning := layer.Rule.Learning(layerCtx)
	if learning == nil || learning.Mirror == nil || learning.Mirror.Rescale || learning.Decay <= 0 ||
		learning.Null != 0 || learning.Sparse != 0 || learning.Self != 0 || layer.Feedback == nil {
		return 0, false
	}
	lambda := learning.Decay * learning.Mirror.LearningRate
	if lambda >= 1 {
		return 0, false
	}
	dims := layer.Weights.Shape().Dimensions
	inputs, samples := dims[0], max(1, settingValue[int](layerCtx, ParamWMBatch))
	if layer.Kind == KindConv {
		inputs = dims[0] * dims[1] * dims[2]
		samples = convMirrorImages(samples) * convMirrorPositions
	}
	kurtosis := 3.0
	if settingValue[string](layerCtx, ParamWMNoise) == "uniform" {
		kurtosis = 1.8
	}
	ratio := lambda / (2 - lambda) * (float64(inputs) + kurtosis - 2) / float64(samples)
	return math.Atan(math.Sqrt(ratio)) * 180 / math.Pi, true
}

// mirrorNoiseVariance is the variance of the noise mirrorNoise draws.
func mirrorNoiseVariance(ctx *context.Context) float64 {
	scale := settingValue[float64](ctx, ParamWMNoiseScale)
	if settingValue[string](ctx, ParamWMNoise) == "uniform" {
		return scale * scale / 3
	}
	return scale * scale
}

// mirrorNoise draws noise of the given shape (variance mirrorNoiseVariance).
func mirrorNoise(ctx *context.Context, g *Graph, shape shapes.Shape) *Node {
	scale := settingValue[float64](ctx, ParamWMNoiseScale)
	switch dist := settingValue[string](ctx, ParamWMNoise); dist {
	case "uniform":
		return MulScalar(AddScalar(uniform01(ctx, g, shape), -0.5), 2*scale)
	case "gaussian", "normal":
		return MulScalar(ctx.RandomNormal(g, shape), scale)
	default:
		panic(fmt.Sprintf("feedback: %s=%q is not valid: use uniform or gaussian", ParamWMNoise, dist))
	}
}

// uniform01 draws values uniform on [0, 1) of the given shape. Float32 ones are drawn as float64 and rounded: XLA on
// CPU draws a float64 in about a fifth of the time it takes for a float32 (its Philox expansion for 32-bit words
// is slow), and the float32 draws had been two thirds of a weight-mirror training step of the 784-500-10 MLP
// (BenchmarkMirrorNoise, that MLP's noise: 0.9–1.1 against 4.5–5.4 ms). The pure-Go backend draws float64s about
// 1.7× slower (2 ms more, under 2 % of its weight-mirror step on that MLP).
func uniform01(ctx *context.Context, g *Graph, shape shapes.Shape) *Node {
	if shape.DType != dtypes.Float32 {
		return ctx.RandomUniform(g, shape)
	}
	wide := shape.Clone()
	wide.DType = dtypes.Float64
	u := ConvertDType(ctx.RandomUniform(g, wide), dtypes.Float32)
	return MinScalar(u, float64(math.Nextafter32(1, 0))) // a float64 just below 1 rounds to 1 in float32
}

// MirrorStep builds one mirror step for every layer of ctx whose rule learns in mirror mode (wm): it draws
// noise, computes the layer's linear output and updates B by its rule's [Learning] (with SetValueGraph, so a
// context.Exec running this graph stores the new B). It returns the number of layers updated. W is only read
// by the forward computation y = W x, never copied into B.
func MirrorStep(ctx *context.Context, g *Graph) int {
	count := 0
	for _, layer := range Layers(ctx) {
		layerCtx := ctx.InAbsPath(layer.Scope)
		learning := layer.Rule.Learning(layerCtx)
		if learning == nil || learning.Mirror == nil || layer.Feedback == nil {
			continue
		}
		w := StopGradient(layer.Weights.ValueGraph(g))
		b := layer.Feedback.ValueGraph(g)
		batch := max(1, settingValue[int](layerCtx, ParamWMBatch))
		var newB *Node
		switch layer.Kind {
		case KindDense:
			x := mirrorNoise(layerCtx, g, shapes.Make(w.DType(), batch, w.Shape().Dim(0)))
			newB = learning.mirrorStep(b, w, x, Dot(x, w))
		case KindConv:
			kh, kw, inC, outC := w.Shape().Dim(0), w.Shape().Dim(1), w.Shape().Dim(2), w.Shape().Dim(3)
			images := convMirrorImages(batch)
			imgShape := shapes.Make(w.DType(), images, kh+convMirrorMargin, kw+convMirrorMargin, inC)
			x := mirrorNoise(layerCtx, g, imgShape)
			op := newPatchConvOp(newConvGeometry(imgShape, kh, kw, 1, false), outC)
			patches := op.patches(x)
			y := Dot(patches, op.kernelMatrix(w))
			newB = Reshape(learning.mirrorStep(op.kernelMatrix(b), op.kernelMatrix(w), patches, y), kh, kw, inC, outC)
		default:
			panic(fmt.Sprintf("feedback: layer %q has unknown kind %q", layer.Scope, layer.Kind))
		}
		layer.Feedback.SetValueGraph(newB)
		count++
	}
	return count
}

// HasMirrorLayers reports whether any layer of ctx learns in mirror mode, i.e. whether the trainer needs to
// run [MirrorStep].
func HasMirrorLayers(ctx *context.Context) bool {
	for _, layer := range Layers(ctx) {
		if l := layer.Rule.Learning(ctx.InAbsPath(layer.Scope)); l != nil && l.Mirror != nil && layer.Feedback != nil {
			return true
		}
	}
	return false
}

// radiansToDegrees converts an angle node.
func radiansToDegrees(x *Node) *Node { return MulScalar(x, 180/math.Pi) }
