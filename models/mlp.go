package models

import (
	"fmt"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/context/initializers"
	"github.com/nowt-ml/nowt/feedback"
)

// newMLP returns the multilayer perceptron: images flattened, hidden feedback dense layers of widths
// [ParamMLPHidden] with activation [ParamMLPActivation], then a dense layer to the classes (logits). All layers
// have biases and Glorot (Xavier) uniform weights, suited to sigmoid units. Scopes: "fc0", "fc1", ..., "out".
func newMLP(classes int) Fn {
	return func(ctx *context.Context, images *Node) *Node {
		widths := mustParam(mlpHidden(ctx))
		activation := mustParam(mlpActivation(ctx))
		x := Reshape(images, images.Shape().Dim(0), -1)
		for i, w := range widths {
			layerCtx := ctx.In(fmt.Sprintf("fc%d", i))
			x = activation(feedback.NewDense(layerCtx, x, w).Initializer(initializers.GlorotUniformFn(layerCtx)).Done())
		}
		outCtx := ctx.In("out")
		return feedback.NewDense(outCtx, x, classes).Initializer(initializers.GlorotUniformFn(outCtx)).Done()
	}
}

// mlpScopes lists newMLP's layer scopes.
func mlpScopes(ctx *context.Context) ([]string, error) {
	widths, err := mlpHidden(ctx)
	if err != nil {
		return nil, err
	}
	scopes := make([]string, 0, len(widths)+1)
	for i := range widths {
		scopes = append(scopes, fmt.Sprintf("fc%d", i))
	}
	return append(scopes, "out"), nil
}
