package feedback_test

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/nowt-ml/nowt/feedback"
	"github.com/nowt-ml/nowt/xla"
)

// ExampleMirrorStep runs the weight mirror in a program's own loop. nowt's trainer schedules mirror steps (a
// warm-up, then ParamWMSteps after each training step); a program that trains with its own GoMLX train.Loop
// compiles MirrorStep into an Exec of its own and runs it likewise (e.g. from the loop's OnStep hook): without it,
// a wm layer's B never moves. Here mirror steps alone take a 32→16 dense layer's B from its random start (about
// 90° from Wᵀ) to Wᵀ's direction.
func ExampleMirrorStep() {
	backend, err := xla.TestBackend() // a program would use xla.New("", os.Stderr)
	if err != nil {
		panic(err)
	}
	ctx := context.New()
	for name, value := range feedback.DefaultParams() {
		ctx.SetParam(name, value)
	}
	ctx.SetParam(feedback.ParamRule, "wm")
	if err := ctx.SetRNGStateFromSeed(1); err != nil {
		panic(err)
	}

	// The model's forward pass creates the layer's W and B (a training step would).
	forward := context.MustNewExec(backend, ctx, func(ctx *context.Context, x *Node) *Node {
		return feedback.Dense(ctx.In("fc"), x, 16, false)
	})
	forward.MustExec(tensors.FromShape(shapes.Make(dtypes.Float32, 4, 32)))

	// The angle between B and Wᵀ, in degrees, read from the variables.
	ctx = ctx.Reuse()
	angle := context.MustNewExec(backend, ctx, func(ctx *context.Context, g *Graph) *Node {
		return feedback.AlignmentGraph(ctx, g)[0].WeightAngle
	})
	weightAngle := func() float32 { return tensors.ToScalar[float32](angle.MustExec()[0]) }

	mirror := context.MustNewExec(backend, ctx, func(ctx *context.Context, g *Graph) *Node {
		feedback.MirrorStep(ctx, g) // updates B of every wm layer of ctx
		return Scalar(g, dtypes.Float32, 0)
	})
	before := weightAngle()
	for range 500 {
		mirror.MustExec()
	}
	after := weightAngle()
	fmt.Printf("B against Wᵀ: about 90° before (%v), within 15° after 500 mirror steps (%v)\n",
		before > 80, after < 15)
	// Output: B against Wᵀ: about 90° before (true), within 15° after 500 mirror steps (true)
}
