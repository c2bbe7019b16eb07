package models

import (
	"math/rand"
	"testing"
	"time"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/context/initializers"
	"github.com/gomlx/gomlx/pkg/ml/train/losses"
	"github.com/nowt-ml/nowt/feedback"
	"github.com/nowt-ml/nowt/internal/stats"
	"github.com/nowt-ml/nowt/internal/testutil"
	"github.com/nowt-ml/nowt/layers"
)

// resNetBatch returns the benchmarks' batch: 64 random 32×32×3 images and labels of 10 classes.
func resNetBatch() (x, labels *tensors.Tensor) {
	const batch, classes = 64, 10
	rng := rand.New(rand.NewSource(1))
	x = randomF32(rng, batch, 32, 32, 3)
	labelData := make([]int32, batch)
	for i := range labelData {
		labelData[i] = int32(rng.Intn(classes))
	}
	return x, tensors.FromFlatDataAndDimensions(labelData, batch, 1)
}

// resnet20StepExec compiles the ResNet-20 (width 8) training step under a rule (plain SGD on the pairs
// feedback.Gradients returns), or with mode "forward" the forward pass alone.
func resnet20StepExec(b *testing.B, mode string) *context.Exec {
	return resnet20StepExecWith(b, mode, nil)
}

// resnet20StepExecWith is resnet20StepExec with the context parameters params set (over width 8).
func resnet20StepExecWith(b *testing.B, mode string, params map[string]any) *context.Exec {
	backend := testutil.Backend(b) // NOWT_TEST_BACKEND=go:ops_sequential,dotgeneral_small, xla:cuda, ...
	ctx := context.New()
	rule := mode
	if mode == "forward" {
		rule = "bp"
	}
	ctx.SetParam(feedback.ParamRule, rule)
	ctx.SetParam(ParamResNetWidth, 8)
	for k, v := range params {
		ctx.SetParam(k, v)
	}
	ctx.SetParam(initializers.ParamInitialSeed, int64(5))
	fn, err := New("resnet20", 10)
	if err != nil {
		b.Fatal(err)
	}
	return context.MustNewExec(backend, ctx, func(ctx *context.Context, x, labels *Node) *Node {
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
}

// BenchmarkResNet20RuleCost reports each rule's training step time relative to bp's ("x-bp"): the two steps
// alternate, b.N times each, and the ratio is of their fastest runs (on a shared machine, contention only adds).
//
//	NOWT_TEST_BACKEND=xla:cpu go test ./models -run '^$' -bench ResNet20RuleCost -benchtime 10x
func BenchmarkResNet20RuleCost(b *testing.B) {
	for _, rule := range feedback.RuleNames() {
		if rule == "bp" {
			continue
		}
		b.Run(rule, func(b *testing.B) {
			// (Each exec has its own batch: the pure-Go test backend is a new instance per exec.)
			bpExec, ruleExec := resnet20StepExec(b, "bp"), resnet20StepExec(b, rule)
			bpX, bpLabels := resNetBatch()
			ruleX, ruleLabels := resNetBatch()
			fastest := func(exec *context.Exec, x, labels *tensors.Tensor, best time.Duration) time.Duration {
				start := time.Now()
				exec.MustExec(x, labels)
				if d := time.Since(start); best == 0 || d < best {
					return d
				}
				return best
			}
			bpExec.MustExec(bpX, bpLabels) // compile
			ruleExec.MustExec(ruleX, ruleLabels)
			var bpBest, ruleBest time.Duration
			b.ResetTimer()
			for range b.N {
				bpBest = fastest(bpExec, bpX, bpLabels, bpBest)
				ruleBest = fastest(ruleExec, ruleX, ruleLabels, ruleBest)
			}
			b.ReportMetric(float64(ruleBest)/float64(bpBest), "x-bp")
			b.ReportMetric(float64(bpBest.Microseconds())/1000, "bp-ms")
			b.ReportMetric(float64(ruleBest.Microseconds())/1000, "rule-ms")
		})
	}
}

// BenchmarkResNet20Step times one training step (forward, the rule's backward, plain SGD update) of the CIFAR
// ResNet-20 at width 8 on a batch of 64 32×32 images — the CPU CIFAR run of docs/results.md — and a forward pass
// alone, on the pure-Go backend (or $NOWT_TEST_BACKEND), for every rule (wm without its mirror steps; kp, ia and
// aa with their B-updates). Reports images/s.
func BenchmarkResNet20Step(b *testing.B) {
	const batch = 64
	for _, mode := range append([]string{"forward"}, feedback.RuleNames()...) {
		b.Run(mode, func(b *testing.B) {
			exec := resnet20StepExec(b, mode)
			x, labels := resNetBatch() // Per exec: the pure-Go test backend is a new instance per call.
			exec.MustExec(x, labels)   // compile
			b.ResetTimer()
			for range b.N {
				exec.MustExec(x, labels)
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "images/s")
		})
	}
}

// BenchmarkBatchNormSums reports what summing batch norm's statistics and gradients as products with ones
// (layers.ParamBNSums "dot") saves against reductions ("reduce") in a BP training step of the CIFAR ResNet-20 at
// width 16 (docs/results.md's) on a batch of 64: the two steps alternate, each first in every other pair, and
// "dot÷reduce" is the ratio of their medians.
//
//	NOWT_TEST_BACKEND=xla:cpu go test ./models -run '^$' -bench BatchNormSums -benchtime 20x
func BenchmarkBatchNormSums(b *testing.B) {
	execs, batches := map[string]*context.Exec{}, map[string][2]*tensors.Tensor{}
	for _, sums := range []string{"dot", "reduce"} {
		execs[sums] = resnet20StepExecWith(b, "bp", map[string]any{ParamResNetWidth: 16, layers.ParamBNSums: sums})
		x, labels := resNetBatch() // Per exec: the pure-Go test backend is a new instance per call.
		batches[sums] = [2]*tensors.Tensor{x, labels}
	}
	times := map[string][]time.Duration{}
	timed := func(sums string) {
		start := time.Now()
		execs[sums].MustExec(batches[sums][0], batches[sums][1])
		times[sums] = append(times[sums], time.Since(start))
	}
	for range 2 { // compile and warm up
		timed("dot")
		timed("reduce")
	}
	clear(times)
	b.ResetTimer()
	for i := range b.N {
		if i%2 == 0 {
			timed("dot")
			timed("reduce")
		} else {
			timed("reduce")
			timed("dot")
		}
	}
	med := func(d []time.Duration) float64 { return float64(stats.Median(d).Microseconds()) / 1000 }
	dot, reduce := med(times["dot"]), med(times["reduce"])
	b.ReportMetric(dot/reduce, "dot÷reduce")
	b.ReportMetric(dot, "dot-ms")
	b.ReportMetric(reduce, "reduce-ms")
}
