package models

import (
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/nowt-ml/nowt/feedback"
	"github.com/nowt-ml/nowt/layers"
)

// newCNN returns a small LeNet-style network: conv 5×5 (6, "same" padding) – ReLU – max-pool 2×2 – conv 5×5
// (16, valid) – ReLU – max-pool 2×2 – dense 120 – ReLU – dense 84 – ReLU – dense classes. On 28×28×1 images
// the flattened features are 16·5·5 = 400 (LeNet-5's), on 32×32×3 16·6·6 = 576. Convolutions have biases and
// Kaiming fan_out init, dense layers PyTorch's default Linear init. Scopes: conv1, conv2, fc1, fc2, out.
func newCNN(classes int) Fn {
	return func(ctx *context.Context, images *Node) *Node {
		convLayer := func(scope string, x *Node, out int, same bool) *Node {
			c := ctx.In(scope)
			b := feedback.NewConv2D(c, x, out, 5).Bias(true).Initializer(kaimingConvInit(c))
			if !same {
				b = b.NoPadding()
			}
			return relu(b.Done())
		}
		dense := func(scope string, x *Node, out int) *Node {
			c := ctx.In(scope)
			return feedback.NewDense(c, x, out).Bias(true).Initializer(torchLinearInit(c)).Done()
		}
		x := layers.MaxPool2D(ctx, convLayer("conv1", images, 6, true), 2, 2, 0)
		x = layers.MaxPool2D(ctx, convLayer("conv2", x, 16, false), 2, 2, 0)
		x = Reshape(x, x.Shape().Dim(0), -1)
		x = relu(dense("fc1", x, 120))
		x = relu(dense("fc2", x, 84))
		return classifier(ctx.In("out"), x, classes)
	}
}

// cnnScopes lists newCNN's layer scopes.
func cnnScopes(*context.Context) ([]string, error) {
	return []string{"conv1", "conv2", "fc1", "fc2", "out"}, nil
}
