package trainer

import (
	"fmt"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/ml/train/losses"
)

// lossFn returns the loss named by the configuration: labels[0] is int32 [batch, 1], predictions[0] the logits
// [batch, classes].
func lossFn(name string) (func(labels, predictions []*Node) *Node, error) {
	switch name {
	case "softmax":
		return func(labels, predictions []*Node) *Node {
			return ReduceAllMean(losses.SparseCategoricalCrossEntropyLogits(labels, predictions))
		}, nil
	case "sigmoid":
		return sigmoidCrossEntropy, nil
	}
	return nil, fmt.Errorf("unknown loss %q: valid losses are softmax, sigmoid", name)
}

// sigmoidCrossEntropy is the per-class sigmoid cross-entropy of the authors' released code: each class is an
// independent binary problem on its logit z, loss = Σ_c softplus(z_c) − y_c·z_c, averaged over the batch.
func sigmoidCrossEntropy(labels, predictions []*Node) *Node {
	logits := predictions[0]
	classes := logits.Shape().Dim(-1)
	targets := OneHot(Reshape(labels[0], -1), classes, logits.DType())
	softplus := Add(Max(logits, ZerosLike(logits)), Log1P(Exp(Neg(Abs(logits)))))
	perExample := ReduceSum(Sub(softplus, Mul(targets, logits)), -1)
	return ReduceAllMean(perExample)
}
