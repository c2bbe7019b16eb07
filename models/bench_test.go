package models

import (
	"math/rand"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/context/initializers"
	"github.com/gomlx/gomlx/pkg/ml/train/losses"
	"github.com/nowt-ml/nowt/feedback"
)

// BenchmarkResNet20Step times one training step (forward, the rule's backward, plain SGD update) of the CIFAR
// ResNet-20 at width 8 on a batch of 64 32×32 images — the CPU CIFAR run of docs/results.md — and a forward pass
// alone, on the pure-Go backend (or $NOWT_TEST_BACKEND). Reports images/s.
func BenchmarkResNet20Step(b *testing.B) {
	backend := testBackend(b) // NOWT_TEST_BACKEND=go:ops_sequential,dotgeneral_small, xla:cuda, ...
	const batch, classes = 64, 10
	rng := rand.New(rand.NewSource(1))
	x := randomF32(rng, batch, 32, 32, 3)
	labelData := make([]int32, batch)
	for i := range labelData {
		labelData[i] = int32(rng.Intn(classes))
	}
	labels := tensors.FromFlatDataAndDimensions(labelData, batch, 1)
	for _, mode := range []string{"forward", "bp", "kp"} {
		b.Run(mode, func(b *testing.B) {
			ctx := context.New()
			rule := mode
			if mode == "forward" {
				rule = "bp"
			}
			ctx.SetParam(feedback.ParamRule, rule)
			ctx.SetParam(ParamResNetWidth, 8)
			ctx.SetParam(initializers.ParamInitialSeed, int64(5))
			fn, err := New("resnet20", classes)
			if err != nil {
				b.Fatal(err)
			}
			exec := context.MustNewExec(backend, ctx, func(ctx *context.Context, x, labels *Node) *Node {
				g := x.Graph()
				ctx.SetTraining(g, mode != "forward")
				loss := losses.SparseCategoricalCrossEntropyLogits([]*Node{labels}, []*Node{fn(ctx, x)})
				if mode == "forward" {
					return loss
				}
				vars, grads := feedback.Gradients(ctx, loss)
				for i, v := range vars {
					v.SetValueGraph(Sub(v.ValueGraph(g), MulScalar(grads[i], 0.01)))
				}
				return loss
			})
			exec.MustExec(x, labels) // compile
			b.ResetTimer()
			for range b.N {
				exec.MustExec(x, labels)
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "images/s")
		})
	}
}
