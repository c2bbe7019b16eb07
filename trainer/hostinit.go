package trainer

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/nowt-ml/nowt/feedback"
	"github.com/nowt-ml/nowt/layers"
	"github.com/nowt-ml/nowt/models"
	"github.com/nowt-ml/nowt/xla"
)

// initializeOnHost gives the run's network its initial values on the host (xla.InitializeOnHost), whatever the
// engine: a seed names one initial network on pure Go, XLA on CPU, CUDA and TPU alike, and XLA compiles no
// initialisation graph. What it builds (never compiled) is everything that creates a random variable: the model
// in training mode, the loss, and the rule's backward pass (feedback.Gradients: some rules create their
// variables as their feedback is first built, like brsf's scale). Under mixed precision it builds in the master
// dtype: the layers keep their variables in it whatever they compute in. Variables loaded from a checkpoint keep
// their values; the optimizer's and the metrics' (all zeros) are made as their graphs are, by the run's engine.
//
// Its errors name cfg's model and rule: a model that does not fit the data fails here, before anything compiles.
func initializeOnHost(cfg Config, ctx *context.Context, modelFn models.Fn, loss func(labels, predictions []*Node) *Node,
	dtype dtypes.DType, imageShape, labelShape shapes.Shape) error {
	master := layers.MasterDType(dtype)
	err := xla.InitializeOnHost(ctx, func(ctx *context.Context, g *Graph) {
		ctx.SetTraining(g, true)
		images := Parameter(g, "images", shapes.Make(master, imageShape.Dimensions...))
		labels := Parameter(g, "labels", labelShape)
		logits := ConvertDType(modelFn(ctx.In(modelScope), images), dtypes.Float32)
		feedback.Gradients(ctx, loss([]*Node{labels}, []*Node{logits}))
		feedback.ReleaseGraph(ctx, g)
	})
	if err != nil {
		return fmt.Errorf("setting up %s under rule %s: %w", cfg.Model, cfg.Rule, err)
	}
	return nil
}
