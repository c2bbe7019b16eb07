package trainer

import (
	"math"
	"math/rand"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/train/optimizers"
	"github.com/nowt-ml/nowt/feedback"
	"github.com/stretchr/testify/require"
)

// TestKolenPollackMomentumRecursion: KP composed from the primitives (decay, B's gradient tied to W's) through
// SGD with momentum μ, rate η and decay λ gives W and B the same gradient but for the decay term, so
// D = W − B follows, element by element and whatever the data,
//
//	v_D ← μ·v_D + λ·D;   D ← D − η·v_D        (v_D(0) = 0)
//
// the recursion the rule had before the redesign (TestKolenPollackDecay checks the plain-SGD case).
func TestKolenPollackMomentumRecursion(t *testing.T) {
	backend, err := backends.NewWithConfig("go:ops_sequential")
	require.NoError(t, err)
	defer backend.Finalize()
	const lr, momentum, decay, steps = 0.05, 0.9, 0.3, 25
	rng := rand.New(rand.NewSource(2))
	data := func(n int) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = rng.NormFloat64()
		}
		return v
	}
	x := tensors.FromFlatDataAndDimensions(data(8*5), 8, 5)
	target := tensors.FromFlatDataAndDimensions(data(8*3), 8, 3)
	ctx := context.New()
	ctx.SetParam(feedback.ParamRule, "kp")
	require.NoError(t, ctx.SetRNGStateFromSeed(3))
	opt := &SGD{Momentum: momentum, WeightDecay: decay}
	model := func(ctx *context.Context, x, target *Node) *Node {
		h := Tanh(feedback.Dense(ctx.In("d1"), x, 4, true))
		return ReduceAllMean(Square(Sub(feedback.Dense(ctx.In("d2"), h, 3, true), target)))
	}
	context.MustExecOnce(backend, ctx, model, x, target) // Creates W(0) and B(0).
	ctx = ctx.Checked(false)
	exec := context.MustNewExec(backend, ctx, func(ctx *context.Context, x, target *Node) *Node {
		optimizers.LearningRateVar(ctx, dtypes.Float64, lr)
		loss := model(ctx, x, target)
		opt.UpdateGraph(ctx, x.Graph(), loss)
		return loss
	})
	layers := feedback.Layers(ctx)
	require.Len(t, layers, 2)
	diff := func(l feedback.Layer) []float64 {
		w := tensors.MustCopyFlatData[float64](l.Weights.MustValue())
		b := tensors.MustCopyFlatData[float64](l.Feedback.MustValue())
		for i := range w {
			w[i] -= b[i]
		}
		return w
	}
	want := make([][]float64, len(layers))
	velocity := make([][]float64, len(layers))
	for i, l := range layers {
		want[i] = diff(l)
		velocity[i] = make([]float64, len(want[i]))
	}
	for step := 1; step <= steps; step++ {
		exec.MustExec(x, target)
		for i, l := range layers {
			for j := range want[i] {
				velocity[i][j] = momentum*velocity[i][j] + decay*want[i][j]
				want[i][j] -= lr * velocity[i][j]
			}
			got := diff(l)
			for j := range got {
				require.InDelta(t, want[i][j], got[j], 1e-12*math.Max(1, math.Abs(want[i][j])), "layer %s step %d [%d]", l.Scope, step, j)
			}
		}
	}
}

// TestKolenPollackDecoupledDecay: with kp_decoupled, KP's decay is applied after the step, as the paper writes the
// update (ΔW = −η δxᵀ − λW, ΔB = −η xδᵀ − λB): W and B get the same gradient and the same velocity, so
// D = W − B shrinks by exactly (1 − λ) a step, whatever the learning rate and momentum, and the optimizer's own
// weight decay does not reach KP's layers.
func TestKolenPollackDecoupledDecay(t *testing.T) {
	backend, err := backends.NewWithConfig("go:ops_sequential")
	require.NoError(t, err)
	defer backend.Finalize()
	const momentum, decay, steps = 0.9, 0.05, 20
	for _, lr := range []float64{0.01, 0.2} {
		rng := rand.New(rand.NewSource(2))
		data := func(n int) []float64 {
			v := make([]float64, n)
			for i := range v {
				v[i] = rng.NormFloat64()
			}
			return v
		}
		x := tensors.FromFlatDataAndDimensions(data(8*5), 8, 5)
		target := tensors.FromFlatDataAndDimensions(data(8*3), 8, 3)
		ctx := context.New()
		ctx.SetParam(feedback.ParamRule, "kp")
		ctx.SetParam(feedback.ParamKPDecay, decay)
		ctx.SetParam(feedback.ParamKPDecoupled, true)
		require.NoError(t, ctx.SetRNGStateFromSeed(3))
		opt := &SGD{Momentum: momentum, WeightDecay: 0.3} // not KP's: its layers take kp_decay only
		model := func(ctx *context.Context, x, target *Node) *Node {
			h := Tanh(feedback.Dense(ctx.In("d1"), x, 4, true))
			return ReduceAllMean(Square(Sub(feedback.Dense(ctx.In("d2"), h, 3, true), target)))
		}
		context.MustExecOnce(backend, ctx, model, x, target)
		ctx = ctx.Checked(false)
		exec := context.MustNewExec(backend, ctx, func(ctx *context.Context, x, target *Node) *Node {
			optimizers.LearningRateVar(ctx, dtypes.Float64, lr)
			loss := model(ctx, x, target)
			opt.UpdateGraph(ctx, x.Graph(), loss)
			return loss
		})
		layers := feedback.Layers(ctx)
		require.Len(t, layers, 2)
		diff := func(l feedback.Layer) []float64 {
			w := tensors.MustCopyFlatData[float64](l.Weights.MustValue())
			b := tensors.MustCopyFlatData[float64](l.Feedback.MustValue())
			for i := range w {
				w[i] -= b[i]
			}
			return w
		}
		initial := [][]float64{diff(layers[0]), diff(layers[1])}
		for range steps {
			exec.MustExec(x, target)
		}
		shrink := math.Pow(1-decay, steps)
		for i, l := range layers {
			got := diff(l)
			for j := range got {
				require.InDelta(t, shrink*initial[i][j], got[j], 1e-12*math.Max(1, math.Abs(initial[i][j])),
					"lr %g layer %s [%d]", lr, l.Scope, j)
			}
		}
	}
}
