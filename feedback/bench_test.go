package feedback

import (
	"fmt"
	"testing"
	"time"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/nowt-ml/nowt/internal/testutil"
)

// Benchmarks of one layer's forward and forward+backward under each rule, on the pure-Go backend.
// Compare rules by the ratio of their ns/op to bp's, and the layer's GFLOP/s to BenchmarkMatMul's, from the
// same run:
//
//	go test ./feedback -run '^$' -bench . -benchtime 5x

const (
	benchDenseBatch, benchDenseIn, benchDenseOut = 128, 1000, 1000
	benchConvBatch, benchConvSize, benchConvCh   = 32, 16, 64
	benchClasses                                 = 10
)

type benchLayer struct {
	name   string
	input  shapes.Shape
	build  func(ctx *context.Context, x *Node) *Node
	flops  float64 // multiply-adds ×2 of the forward pass
	matmul [3]int  // the equivalent matmul [m,k]·[k,n] of the forward pass
}

var benchLayers = []benchLayer{
	{
		name:   "dense",
		input:  shapes.Make(dtypes.Float32, benchDenseBatch, benchDenseIn),
		build:  func(ctx *context.Context, x *Node) *Node { return Dense(ctx.In("dense"), x, benchDenseOut, true) },
		flops:  2 * benchDenseBatch * benchDenseIn * benchDenseOut,
		matmul: [3]int{benchDenseBatch, benchDenseIn, benchDenseOut},
	},
	{
		name:  "conv3x3",
		input: shapes.Make(dtypes.Float32, benchConvBatch, benchConvSize, benchConvSize, benchConvCh),
		build: func(ctx *context.Context, x *Node) *Node {
			return NewConv2D(ctx.In("conv"), x, benchConvCh, 3).Bias(false).Done()
		},
		flops:  2 * benchConvBatch * benchConvSize * benchConvSize * 9 * benchConvCh * benchConvCh,
		matmul: [3]int{benchConvBatch * benchConvSize * benchConvSize, 9 * benchConvCh, benchConvCh},
	},
	{
		// The same convolution through the backend's native ConvGeneral, as XLA backends run it.
		name:  "conv3x3-native",
		input: shapes.Make(dtypes.Float32, benchConvBatch, benchConvSize, benchConvSize, benchConvCh),
		build: func(ctx *context.Context, x *Node) *Node {
			ctx = ctx.In("conv")
			ctx.SetParam(ParamConvImpl, "native")
			return NewConv2D(ctx, x, benchConvCh, 3).Bias(false).Done()
		},
		flops:  2 * benchConvBatch * benchConvSize * benchConvSize * 9 * benchConvCh * benchConvCh,
		matmul: [3]int{benchConvBatch * benchConvSize * benchConvSize, 9 * benchConvCh, benchConvCh},
	},
}

// layerStepExec compiles one step (forward, and with backward the gradients of every trainable variable) of
// the layer under rule, and returns it with its input.
func layerStepExec(b *testing.B, layer benchLayer, rule string, backward bool) (*context.Exec, *tensors.Tensor) {
	backend := testutil.Backend(b)
	ctx := context.New()
	ctx.SetParam(ParamRule, rule)
	ctx.SetParam(ParamOutputDim, benchClasses)
	step := func(ctx *context.Context, x *Node) *Node {
		y := layer.build(ctx, x)
		if !backward {
			return ReduceAllSum(y)
		}
		// A published output of benchClasses features of y gives rules that project the output error (dfa) an e.
		// (Pooled over positions and mapped by a constant: cheap, and differentiable on the pure-Go backend.)
		pooled := ReduceMean(Reshape(y, y.Shape().Dim(0), -1, y.Shape().Dim(-1)), 1)
		out := OutputError(ctx, Dot(pooled, Ones(x.Graph(), shapes.Make(y.DType(), y.Shape().Dim(-1), benchClasses))))
		loss := Add(ReduceAllSum(Square(y)), ReduceAllSum(Square(out)))
		nodes := []*Node{x}
		for v := range ctx.IterVariables() {
			if v.Trainable {
				nodes = append(nodes, v.ValueGraph(x.Graph()))
			}
		}
		grads := Gradient(loss, nodes...)
		// Sum a scalar of each gradient so that all of them are computed.
		total := loss
		for _, g := range grads {
			total = Add(total, ReduceAllSum(g))
		}
		return total
	}
	x := tensors.FromShape(layer.input)
	context.MustNewExec(backend, ctx, step).MustExec(x) // initialise; fixes what rules fix at their first step
	// The graph timed is built after that first step, as the trainer's training graph is built after its first
	// alignment measurement: a rule's state fixed at the first step (SS's scale) is then a constant of the graph.
	exec := context.MustNewExec(backend, ctx.Reuse(), step)
	exec.MustExec(x) // compile
	return exec, x
}

func runLayerBench(b *testing.B, layer benchLayer, rule string, backward bool, flopsPerStep float64) {
	exec, x := layerStepExec(b, layer, rule, backward)
	b.ResetTimer()
	for range b.N {
		exec.MustExec(x)
	}
	b.ReportMetric(flopsPerStep*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// BenchmarkLayer: forward ("fwd") and forward+backward ("fwdbwd") per rule. The GFLOP/s of fwdbwd counts 3× the
// forward's flops for every rule — backprop's work, a nominal count that ranks the rules as their ns/op does: dfa,
// whose backward product is by a [in, classes] B, does fewer, and its GFLOP/s reads high.
func BenchmarkLayer(b *testing.B) {
	for _, layer := range benchLayers {
		b.Run(fmt.Sprintf("%s/fwd", layer.name), func(b *testing.B) { runLayerBench(b, layer, "bp", false, layer.flops) })
		for _, rule := range RuleNames() {
			b.Run(fmt.Sprintf("%s/fwdbwd/%s", layer.name, rule), func(b *testing.B) {
				runLayerBench(b, layer, rule, true, 3*layer.flops)
			})
		}
	}
}

// BenchmarkRuleCost reports each rule's cost per forward+backward step relative to bp's on the same layer
// ("x-bp"), measured robustly on a shared machine: the rule's step and bp's alternate, b.N times each, and the
// ratio is of their fastest runs (contention only ever adds time).
//
//	go test ./feedback -run '^$' -bench RuleCost -benchtime 30x
func BenchmarkRuleCost(b *testing.B) {
	for _, layer := range benchLayers {
		for _, rule := range RuleNames() {
			if rule == "bp" {
				continue
			}
			b.Run(fmt.Sprintf("%s/%s", layer.name, rule), func(b *testing.B) {
				// (Each exec has its own input: the pure-Go test backend is a new instance per exec.)
				bpExec, bpX := layerStepExec(b, layer, "bp", true)
				ruleExec, ruleX := layerStepExec(b, layer, rule, true)
				fastest := func(exec *context.Exec, x *tensors.Tensor, best time.Duration) time.Duration {
					start := time.Now()
					exec.MustExec(x)
					if d := time.Since(start); best == 0 || d < best {
						return d
					}
					return best
				}
				var bpBest, ruleBest time.Duration
				b.ResetTimer()
				for range b.N {
					bpBest = fastest(bpExec, bpX, bpBest)
					ruleBest = fastest(ruleExec, ruleX, ruleBest)
				}
				b.ReportMetric(float64(ruleBest)/float64(bpBest), "x-bp")
				b.ReportMetric(float64(bpBest.Microseconds())/1000, "bp-ms")
				b.ReportMetric(float64(ruleBest.Microseconds())/1000, "rule-ms")
			})
		}
	}
}

// BenchmarkMatMul is the backend's plain matmul of each layer's forward size: the speed to compare against.
func BenchmarkMatMul(b *testing.B) {
	backend := testutil.Backend(b)
	for _, layer := range benchLayers {
		m, k, n := layer.matmul[0], layer.matmul[1], layer.matmul[2]
		b.Run(layer.name, func(b *testing.B) {
			exec := MustNewExec(backend, func(x, y *Node) *Node { return ReduceAllSum(Dot(x, y)) })
			x := tensors.FromShape(shapes.Make(dtypes.Float32, m, k))
			y := tensors.FromShape(shapes.Make(dtypes.Float32, k, n))
			exec.MustExec(x, y)
			b.ResetTimer()
			for range b.N {
				exec.MustExec(x, y)
			}
			b.ReportMetric(2*float64(m*k*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkStockDenseGradient is GoMLX's own autodiff of the same dense layer (broadcast-multiply-reduce),
// the baseline that feedback.Dense's matmul backward replaces.
func BenchmarkStockDenseGradient(b *testing.B) {
	backend := testutil.Backend(b)
	exec := MustNewExec(backend, func(x, w *Node) *Node {
		loss := ReduceAllSum(Square(Dot(x, w)))
		grads := Gradient(loss, x, w)
		return Add(ReduceAllSum(grads[0]), ReduceAllSum(grads[1]))
	})
	x := tensors.FromShape(shapes.Make(dtypes.Float32, benchDenseBatch, benchDenseIn))
	w := tensors.FromShape(shapes.Make(dtypes.Float32, benchDenseIn, benchDenseOut))
	exec.MustExec(x, w)
	b.ResetTimer()
	for range b.N {
		exec.MustExec(x, w)
	}
}

// BenchmarkMirrorDesign measures whether WM's mirror step should stay a separate executable (the trainer's
// design: a train step, then a mirror step) or run inside the training step's graph (fused: the same update,
// one call): an MLP 784-500-10 under wm, batch 128, plain SGD. It reports each design's fastest step ("ms")
// from interleaved runs and their ratio ("fused/separate").
//
//	go test ./feedback -run '^$' -bench MirrorDesign -benchtime 30x
func BenchmarkMirrorDesign(b *testing.B) {
	backend := testutil.Backend(b)
	x := tensors.FromShape(shapes.Make(dtypes.Float32, 128, 784))
	target := tensors.FromShape(shapes.Make(dtypes.Float32, 128, 10))
	trainStep := func(ctx *context.Context, x, target *Node) *Node {
		h := Tanh(Dense(ctx.In("fc0"), x, 500, true))
		loss := ReduceAllMean(Square(Sub(Dense(ctx.In("out"), h, 10, true), target)))
		vars, grads := Gradients(ctx, loss)
		for i, v := range vars {
			v.SetValueGraph(Sub(v.ValueGraph(x.Graph()), MulScalar(grads[i], 0.01)))
		}
		return loss
	}
	newCtx := func() *context.Context {
		ctx := context.New()
		ctx.SetParam(ParamRule, "wm")
		return ctx
	}
	// Separate: the training step, then the mirror step.
	sepCtx := newCtx()
	sepTrain := context.MustNewExec(backend, sepCtx, trainStep)
	sepTrain.MustExec(x, target)
	sepMirror := context.MustNewExec(backend, sepCtx, func(ctx *context.Context, g *Graph) *Node {
		MirrorStep(ctx, g)
		return Const(g, int32(0))
	})
	sepMirror.MustExec()
	// Fused: both in one graph (MirrorStep reads W after the update, as the separate design does).
	fusedCtx := newCtx()
	fused := context.MustNewExec(backend, fusedCtx, func(ctx *context.Context, x, target *Node) *Node {
		loss := trainStep(ctx, x, target)
		MirrorStep(ctx, x.Graph())
		return loss
	})
	fused.MustExec(x, target)
	var sepBest, fusedBest time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		sepTrain.MustExec(x, target)
		sepMirror.MustExec()
		if d := time.Since(start); sepBest == 0 || d < sepBest {
			sepBest = d
		}
		start = time.Now()
		fused.MustExec(x, target)
		if d := time.Since(start); fusedBest == 0 || d < fusedBest {
			fusedBest = d
		}
	}
	b.ReportMetric(float64(sepBest.Microseconds())/1000, "separate-ms")
	b.ReportMetric(float64(fusedBest.Microseconds())/1000, "fused-ms")
	b.ReportMetric(float64(fusedBest)/float64(sepBest), "fused/separate")
}

// BenchmarkMirrorNoise times drawing a weight-mirror step's uniform noise for the 784-500-10 MLP (128 rows of
// 784 and of 500 values) as the mirror draws it (uniform01: float64 draws, rounded) against GoMLX's float32
// RandomUniform, in the same run, on the test backend:
//
//	NOWT_TEST_BACKEND=xla:cpu go test ./feedback -run '^$' -bench MirrorNoise -benchtime 200x
func BenchmarkMirrorNoise(b *testing.B) {
	backend := testutil.Backend(b)
	for _, tc := range []struct {
		name string
		draw func(ctx *context.Context, g *Graph, shape shapes.Shape) *Node
	}{
		{"uniform01", uniform01},
		{"float32-RandomUniform", func(ctx *context.Context, g *Graph, shape shapes.Shape) *Node {
			return ctx.RandomUniform(g, shape)
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			exec := context.MustNewExec(backend, context.New(), func(ctx *context.Context, g *Graph) *Node {
				x := tc.draw(ctx, g, shapes.Make(dtypes.Float32, 128, 784))
				y := tc.draw(ctx, g, shapes.Make(dtypes.Float32, 128, 500))
				return Add(ReduceAllSum(x), ReduceAllSum(y))
			})
			exec.MustExec()
			b.ResetTimer()
			for range b.N {
				exec.MustExec()[0].Value()
			}
		})
	}
}
