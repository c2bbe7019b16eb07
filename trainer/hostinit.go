package trainer

import (
	"errors"
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
// Then it fixes sign symmetry's scales (feedback.FixScales) from W's starting values.
//
// Its errors name cfg's model and rule: a model that does not fit the data fails here, before anything compiles,
// and one whose values would not fit in the host's memory before they are allocated (a *ConfigError).
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
	var tooLarge *xla.HostMemoryError
	if errors.As(err, &tooLarge) {
		return invalid("-model", "%s under rule %s: %v (-hidden for the MLP, -width for the CIFAR ResNets, or the "+
			"model's -set parameters; nowt models -v lists them)", cfg.Model, cfg.Rule, tooLarge)
	}
	var tooSmall *layers.InputTooSmallError
	if errors.As(err, &tooSmall) {
		sizeFlag, how := "-image-size", "-image-size"
		if cfg.Dataset == "synthetic" {
			sizeFlag, how = "-data", "size= in -data"
		}
		return invalid(sizeFlag, "%s under rule %s: %v: its %dx%d images are too small for it; give larger ones (%s)",
			cfg.Model, cfg.Rule, tooSmall, imageShape.Dim(1), imageShape.Dim(2), how)
	}
	if err != nil {
		return fmt.Errorf("setting up %s under rule %s: %w", cfg.Model, cfg.Rule, err)
	}
	// Sign symmetry's scales, the RMS of each W at its first step, fixed from W's starting values here rather than
	// in a graph that would compute the RMS at every step (a step's graph built before the first alignment
	// measurement fixed them: nowt bench's, or a run that measures no alignment).
	if _, err := feedback.FixScales(ctx); err != nil {
		return fmt.Errorf("setting up %s under rule %s: %w", cfg.Model, cfg.Rule, err)
	}
	return nil
}
