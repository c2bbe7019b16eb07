// Package layers holds the non-weight layers the models are built from — batch norm, max and average pooling,
// the shortcut subsampling — and the window index builder they share with feedback's convolution
// ([WindowIndexTable]). They backpropagate as usual (the learning rules govern only the weight layers), and run,
// with their gradients, on every backend: where the pure-Go backend lacks an op (Pad, SelectAndScatterMax),
// they gather over a constant index table instead.
package layers

import (
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/context/initializers"
)

// Batch-norm hyperparameters (context parameters).
const (
	// ParamBNMomentum is the weight of the old value in the running averages of batch norm:
	// running ← m·running + (1−m)·batch. Default 0.9, PyTorch's (its momentum=0.1 is 1−m); GoMLX's own
	// batch norm defaults to 0.99.
	ParamBNMomentum = "bn_momentum"
	// ParamBNEpsilon is added to the variance. Default 1e-5 (PyTorch's; GoMLX's batch norm uses 1e-3).
	ParamBNEpsilon = "bn_epsilon"
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
// gradient is not the gradient of the function it computes.
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
	eps := context.GetParamOr(ctx, ParamBNEpsilon, 1e-5)

	axes := make([]int, x.Rank()-1)
	for i := range axes {
		axes[i] = i
	}
	var mean, variance *Node
	if ctx.IsTraining(g) {
		mean = ReduceMean(x, axes...)
		variance = ReduceMean(Square(Sub(x, ExpandLeftToRank(mean, x.Rank()))), axes...)
		m := context.GetParamOr(ctx, ParamBNMomentum, 0.9)
		n := x.Shape().Size() / channels
		unbiased := StopGradient(variance)
		if n > 1 {
			unbiased = MulScalar(unbiased, float64(n)/float64(n-1))
		}
		runMean.SetValueGraph(Add(MulScalar(runMean.ValueGraph(g), m), MulScalar(StopGradient(mean), 1-m)))
		runVar.SetValueGraph(Add(MulScalar(runVar.ValueGraph(g), m), MulScalar(unbiased, 1-m)))
	} else {
		mean, variance = runMean.ValueGraph(g), runVar.ValueGraph(g)
	}
	factor := Div(scale.ValueGraph(g), Sqrt(AddScalar(variance, eps)))
	shift := Sub(offset.ValueGraph(g), Mul(mean, factor))
	return Add(Mul(x, ExpandLeftToRank(factor, x.Rank())), ExpandLeftToRank(shift, x.Rank()))
}

// DefaultParams returns every hyperparameter of the package's layers with its default, so a program can pre-set
// them in a context (GoMLX's -set flag only accepts known parameters) and list them.
func DefaultParams() map[string]any {
	return map[string]any{
		ParamBNMomentum: 0.9,
		ParamBNEpsilon:  1e-5,
		ParamPoolImpl:   "auto",
	}
}
