// Package layers holds the non-weight layers the models are built from — batch norm, max and average pooling,
// the shortcut subsampling — and the window index builder they share with feedback's convolution
// ([WindowIndexTable]). They backpropagate as usual (the learning rules govern only the weight layers), and run,
// with their gradients, on every backend: where the pure-Go backend lacks an op (Pad, SelectAndScatterMax),
// they gather over a constant index table instead.
package layers

import (
	"fmt"
	"math"
	"slices"
	"strings"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/context/initializers"
	"github.com/nowt-ml/nowt/internal/param"
	"github.com/nowt-ml/nowt/xla"
)

// Batch-norm hyperparameters (context parameters).
const (
	// ParamBNMomentum is the weight of the old value in the running averages of batch norm:
	// running ← m·running + (1−m)·batch. Default 0.9, PyTorch's (its momentum=0.1 is 1−m); GoMLX's own
	// batch norm defaults to 0.99.
	ParamBNMomentum = "bn_momentum"
	// ParamBNEpsilon is added to the variance. Default 1e-5 (PyTorch's; GoMLX's batch norm uses 1e-3).
	ParamBNEpsilon = "bn_epsilon"
	// ParamBNSums selects how batch norm sums over the batch and positions, per channel: "auto" (as products with
	// a vector of ones on XLA's CPU backend where a channel has at least 4,096 values, as reductions elsewhere),
	// "dot" or "reduce" (always). Default: "auto".
	ParamBNSums = "bn_sums"
)

// Batch-norm variable names, within the layer's scope (the names GoMLX's layers/batchnorm uses).
const (
	BNScaleName    = "scale"
	BNOffsetName   = "offset"
	BNMeanName     = "mean"
	BNVarianceName = "variance"
)

// BatchNorm normalises x [..., C] per channel (the last axis), as PyTorch's BatchNorm: in training graphs
// (ctx.IsTraining(g)) with the batch's mean and biased variance, differentiating through both, and updating the
// running mean and (unbiased) variance with [ParamBNMomentum]; in inference graphs with the running statistics.
// Variables, in ctx's scope: "scale" (γ, trainable; initialised to 1, or 0 when zeroScale), "offset" (β,
// trainable, 0), "mean" and "variance" (running statistics, not trainable).
//
// GoMLX's layers/batchnorm is not used because its training graph (without the backend op
// BatchNormForTraining, which the pure-Go backend lacks) stops the gradient at the batch statistics, so its
// gradient is not the gradient of the function it computes. The backward here is written out (the standard
// ∂L/∂x through the batch statistics, TestBatchNormGradient checks it against autodiff), so that its per-channel
// sums, like the forward's, can be products with ones ([ParamBNSums]).
//
// Under mixed precision (x in bfloat16 or float16) the variables are float32 and the normalisation runs in
// float32 (the batch statistics of low-precision values lose too much in low precision); the output has x's dtype.
func BatchNorm(ctx *context.Context, x *Node, zeroScale bool) *Node {
	if master := MasterDType(x.DType()); master != x.DType() {
		return ConvertDType(BatchNorm(ctx, ConvertDType(x, master), zeroScale), x.DType())
	}
	g := x.Graph()
	dtype := x.DType()
	channels := x.Shape().Dim(-1)
	varShape := shapes.Make(dtype, channels)
	scaleInit := initializers.One
	if zeroScale {
		scaleInit = initializers.Zero
	}
	scale := ctx.WithInitializer(scaleInit).VariableWithShape(BNScaleName, varShape).SetTrainable(true)
	offset := ctx.WithInitializer(initializers.Zero).VariableWithShape(BNOffsetName, varShape).SetTrainable(true)
	runMean := ctx.WithInitializer(initializers.Zero).VariableWithShape(BNMeanName, varShape).SetTrainable(false)
	runVar := ctx.WithInitializer(initializers.One).VariableWithShape(BNVarianceName, varShape).SetTrainable(false)
	eps := mustParam(bnEpsilon(ctx))
	sums := channelSummer(ctx, g)

	training := ctx.IsTraining(g)
	n := x.Shape().Size() / channels // values per channel
	xs := StopGradient(x)            // the backward is written out below
	var mean, variance *Node
	if training {
		mean = DivScalar(sums(xs), float64(n))
		variance = DivScalar(sums(Square(Sub(xs, ExpandLeftToRank(mean, x.Rank())))), float64(n))
		m := mustParam(bnMomentum(ctx))
		unbiased := variance
		if n > 1 {
			unbiased = MulScalar(unbiased, float64(n)/float64(n-1))
		}
		runMean.SetValueGraph(Add(MulScalar(runMean.ValueGraph(g), m), MulScalar(mean, 1-m)))
		runVar.SetValueGraph(Add(MulScalar(runVar.ValueGraph(g), m), MulScalar(unbiased, 1-m)))
	} else {
		mean, variance = runMean.ValueGraph(g), runVar.ValueGraph(g)
	}
	gamma, beta := scale.ValueGraph(g), offset.ValueGraph(g)
	std := Sqrt(AddScalar(variance, eps))
	// Not Rsqrt, whose gradient GoMLX's autodiff lacks (though no gradient reaches it, autodiff visits it).
	invStd := Div(OnesLike(std), std)
	normalized := Mul(Sub(xs, ExpandLeftToRank(mean, x.Rank())), ExpandLeftToRank(invStd, x.Rank())) // x̂
	y := Add(Mul(normalized, ExpandLeftToRank(StopGradient(gamma), x.Rank())), ExpandLeftToRank(StopGradient(beta), x.Rank()))

	// The backward, with δ = ∂L/∂y: ∂L/∂β = Σδ, ∂L/∂γ = Σδ·x̂ and, in training graphs (where μ and σ² are the
	// batch's and depend on x), ∂L/∂x = γ/σ·(δ − Σδ/n − x̂·Σ(δ·x̂)/n); in inference graphs γ/σ·δ.
	var delta, sumDelta, sumDeltaNormalized *Node
	deltaSums := func() {
		if sumDelta == nil {
			sumDelta, sumDeltaNormalized = sums(delta), sums(Mul(delta, normalized))
		}
	}
	xh := IdentityWithCustomGradient(x, func(_, _ *Node) *Node {
		factor := ExpandLeftToRank(Mul(StopGradient(gamma), invStd), x.Rank())
		if !training {
			return Mul(delta, factor)
		}
		deltaSums()
		centred := Sub(delta, ExpandLeftToRank(DivScalar(sumDelta, float64(n)), x.Rank()))
		centred = Sub(centred, Mul(normalized, ExpandLeftToRank(DivScalar(sumDeltaNormalized, float64(n)), x.Rank())))
		return Mul(centred, factor)
	})
	gammaH := IdentityWithCustomGradient(gamma, func(_, _ *Node) *Node { deltaSums(); return sumDeltaNormalized })
	betaH := IdentityWithCustomGradient(beta, func(_, _ *Node) *Node { deltaSums(); return sumDelta })
	// The paths to the custom gradients: 0·x, elementwise (x has y's shape), which XLA fuses into y's own loop
	// where a reduction (GradientPath) would read x once more; γ's and β's are [C].
	y = Add(Add(y, MulScalar(xh, 0)), Add(GradientPath(gammaH), GradientPath(betaH)))
	return IdentityWithCustomGradient(y, func(_, v *Node) *Node {
		delta = v
		return v
	})
}

// CheckParams validates the layers' hyperparameters set in ctx, at its scope and at any scope below it (a setting
// aimed at one layer): pool_impl, bn_sums, bn_momentum and bn_epsilon, so that a caller can report a bad setting
// before building a graph (which panics with the same error).
func CheckParams(ctx *context.Context) error {
	for _, scoped := range param.Scopes(ctx, ParamPoolImpl, ParamBNSums, ParamBNMomentum, ParamBNEpsilon) {
		if err := checkParamsAt(scoped); err != nil {
			if scoped != ctx {
				return fmt.Errorf("%w (at scope %s)", err, scoped.Scope())
			}
			return err
		}
	}
	return nil
}

// checkParamsAt checks the layers' settings as a layer at ctx's scope reads them.
func checkParamsAt(ctx *context.Context) error {
	for _, name := range []string{ParamPoolImpl, ParamBNSums} {
		if _, err := choice(ctx, name); err != nil {
			return err
		}
	}
	if _, err := bnMomentum(ctx); err != nil {
		return err
	}
	_, err := bnEpsilon(ctx)
	return err
}

// bnMomentum returns [ParamBNMomentum], a number in [0, 1].
func bnMomentum(ctx *context.Context) (float64, error) {
	m, err := param.Get(ctx, ParamBNMomentum, defaultBNMomentum)
	if err != nil {
		return 0, fmt.Errorf("-set %w", err)
	}
	if !(m >= 0 && m <= 1) {
		return 0, fmt.Errorf("-set %s=%v is not valid: want a number in [0, 1], the old running average's weight "+
			"(PyTorch's momentum m is 1−m here)", ParamBNMomentum, m)
	}
	return m, nil
}

// bnEpsilon returns [ParamBNEpsilon], a finite number > 0.
func bnEpsilon(ctx *context.Context) (float64, error) {
	eps, err := param.Get(ctx, ParamBNEpsilon, defaultBNEpsilon)
	if err != nil {
		return 0, fmt.Errorf("-set %w", err)
	}
	if !(eps > 0 && !math.IsInf(eps, 1)) {
		return 0, fmt.Errorf("-set %s=%v is not valid: want a finite number > 0, added to the variance", ParamBNEpsilon, eps)
	}
	return eps, nil
}

// mustParam panics, as graph building does, with "layers: " and err if it is not nil, and returns v.
func mustParam[T any](v T, err error) T {
	if err != nil {
		panic(fmt.Sprintf("layers: %v", err))
	}
	return v
}

// choices are the values each of the layers' implementation parameters takes, "auto" (its default) first.
var choices = map[string][]string{
	ParamPoolImpl: {"auto", "native", "gather", "taps"},
	ParamBNSums:   {"auto", "dot", "reduce"},
}

// choice returns the value of the implementation parameter name in ctx ("auto" if unset or empty), or an error
// naming it and its valid values.
func choice(ctx *context.Context, name string) (string, error) {
	v, err := param.Get(ctx, name, "auto")
	if err != nil {
		return "", fmt.Errorf("-set %w (use %s)", err, strings.Join(choices[name], ", "))
	}
	if v == "" {
		v = "auto"
	}
	if !slices.Contains(choices[name], v) {
		return "", fmt.Errorf("-set %s=%q is not valid: use %s", name, v, strings.Join(choices[name], ", "))
	}
	return v, nil
}

// minDotSumRows is the fewest rows (values per channel) that "auto" sums as a product with ones: below it the
// product's fixed cost outweighs the reduction's (the small ResNets of the tests trained 1.6 times slower with
// every sum a product, compilation included).
const minDotSumRows = 4096

// channelSummer returns the function that sums x [..., C] over all its axes but the last, per ParamBNSums: as
// onesᵀ·X, X being x as a [rows, C] matrix (a matrix-vector product, which XLA's CPU backend hands to Eigen's
// vectorised kernel), or as a reduction (which it runs one element after another: about 1.6 ms against 0.5 for a
// ResNet-20 activation at batch 64, [64, 32, 32, 16], timed apart on a busy machine; perf-analysis §11).
func channelSummer(ctx *context.Context, g *Graph) func(x *Node) *Node {
	impl, err := choice(ctx, ParamBNSums)
	if err != nil {
		panic(fmt.Sprintf("layers: %v", err))
	}
	minDotRows := math.MaxInt // fewest rows summed as a product
	switch {
	case impl == "dot":
		minDotRows = 0
	case impl == "auto" && xla.IsCPU(g.Backend()):
		minDotRows = minDotSumRows
	}
	return func(x *Node) *Node {
		channels := x.Shape().Dim(-1)
		rows := x.Shape().Size() / channels
		if rows < minDotRows {
			return ReduceSum(Reshape(x, rows, channels), 0)
		}
		ones := Ones(x.Graph(), shapes.Make(x.DType(), rows))
		return DotGeneral(ones, []int{0}, nil, Reshape(x, rows, channels), []int{0}, nil)
	}
}

// GradientPath returns 0·Σx, a zero of x's dtype that depends on x: added to a layer's output, it gives autodiff
// the path to the custom gradient of x (an IdentityWithCustomGradient whose function ignores the gradient it is
// given) for the cost of one reduction. The sum is taken in float32 at least: in float16 (largest finite 65504)
// Σx of a large activation can overflow to Inf, and 0·Inf is NaN. (0·x₀, a slice of one element, costs no
// reduction, but its gradient, a Pad built though discarded, made XLA compile a ResNet-20 step in 12 s instead
// of 4.5.)
func GradientPath(x *Node) *Node {
	sum := ReduceAllSum(ConvertDType(x, MasterDType(x.DType())))
	return ConvertDType(MulScalar(sum, 0), x.DType())
}
