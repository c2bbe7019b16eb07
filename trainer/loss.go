package trainer

import (
	"fmt"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/train/losses"
)

// lossFn returns the loss named by the configuration: labels[0] is int32 [batch, 1], predictions[0] the logits
// [batch, classes]; an evaluation batch's labels[1] masks its padding (see [paddedBatches]): the loss is the mean
// over the real examples. With smoothing ε > 0 (softmax only), the loss of a training graph of ctx is the label-smoothed
// cross-entropy (see [smoothedCrossEntropy]); evaluation graphs, the alignment's and the test set's, keep the
// plain cross-entropy, so that a run's test loss is the negative log-likelihood whatever it trained with.
func lossFn(name string, smoothing float64, ctx *context.Context) (func(labels, predictions []*Node) *Node, error) {
	switch name {
	case "softmax":
		return func(labels, predictions []*Node) *Node {
			if smoothing > 0 && ctx.IsTraining(predictions[0].Graph()) {
				return smoothedCrossEntropy(labels[0], predictions[0], smoothing)
			}
			// GoMLX's mean over the batch, over the real examples where labels[1] is a mask.
			return losses.SparseCategoricalCrossEntropyLogits(labels, predictions)
		}, nil
	case "sigmoid":
		if smoothing > 0 {
			return nil, fmt.Errorf("label smoothing %g applies to the softmax loss, not to %q", smoothing, name)
		}
		return sigmoidCrossEntropy, nil
	}
	return nil, fmt.Errorf("unknown loss %q: valid losses are softmax, sigmoid", name)
}

// smoothedCrossEntropy is the cross-entropy against the label-smoothed target t = (1−ε)·onehot(y) + ε/K over K
// classes (Szegedy et al. 2016, "Rethinking the Inception architecture", §7), averaged over the batch. Its
// gradient with respect to the logits is softmax(z) − t, so the logits' margins stop growing once the softmax
// reaches the target (the true class's logit log((1−ε+ε/K)·K/ε) above the others'), where the plain
// cross-entropy keeps pushing them, and with them the classifier's weights, apart.
func smoothedCrossEntropy(labels, logits *Node, smoothing float64) *Node {
	classes := logits.Shape().Dim(-1)
	onehot := OneHot(Reshape(labels, -1), classes, logits.DType())
	targets := AddScalar(MulScalar(onehot, 1-smoothing), smoothing/float64(classes))
	return ReduceAllMean(losses.CategoricalCrossEntropyLogits([]*Node{targets}, []*Node{logits}))
}

// sigmoidCrossEntropy is the per-class sigmoid cross-entropy of the authors' released code: each class is an
// independent binary problem on its logit z, loss = Σ_c softplus(z_c) − y_c·z_c, averaged over the batch.
func sigmoidCrossEntropy(labels, predictions []*Node) *Node {
	logits := predictions[0]
	classes := logits.Shape().Dim(-1)
	targets := OneHot(Reshape(labels[0], -1), classes, logits.DType())
	softplus := Add(Max(logits, ZerosLike(logits)), Log1P(Exp(Neg(Abs(logits)))))
	perExample := ReduceSum(Sub(softplus, Mul(targets, logits)), -1)
	return MaskedReduceAllMean(perExample, exampleMask(labels))
}
