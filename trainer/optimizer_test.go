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

// kpNet is a two-layer tanh network under KP, trained by an SGD step on a fixed batch, for checking how W − B evolves.
type kpNet struct {
	step   func()                           // one training step
	layers []feedback.Layer                 // its two dense layers
	diff   func(l feedback.Layer) []float64 // W − B of a layer, flattened
}

// newKPNet builds kpNet on the pure-Go backend (float64) with ctx's extra params, optimizer opt and rate lr.
func newKPNet(t *testing.T, params map[string]any, opt *SGD, lr float64) kpNet {
	backend, err := backends.NewWithConfig("go:ops_sequential")
	require.NoError(t, err)
	t.Cleanup(backend.Finalize)
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
	for k, v := range params {
		ctx.SetParam(k, v)
	}
	require.NoError(t, ctx.SetRNGStateFromSeed(3))
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
	return kpNet{
		step:   func() { exec.MustExec(x, target) },
		layers: layers,
		diff: func(l feedback.Layer) []float64 {
			w := tensors.MustCopyFlatData[float64](l.Weights.MustValue())
			b := tensors.MustCopyFlatData[float64](l.Feedback.MustValue())
			for i := range w {
				w[i] -= b[i]
			}
			return w
		},
	}
}

// TestKolenPollackMomentumRecursion: KP composed from the primitives (decay, B's gradient tied to W's) through
// SGD with momentum μ, rate η and decay λ gives W and B the same gradient but for the decay term, so
// D = W − B follows, element by element and whatever the data,
//
//	v_D ← μ·v_D + λ·D;   D ← D − η·v_D        (v_D(0) = 0)
//
// the recursion the rule had before the redesign (TestKolenPollackDecay checks the plain-SGD case).
func TestKolenPollackMomentumRecursion(t *testing.T) {
	const lr, momentum, decay, steps = 0.05, 0.9, 0.3, 25
	net := newKPNet(t, nil, &SGD{Momentum: momentum, WeightDecay: decay}, lr)
	want := make([][]float64, len(net.layers))
	velocity := make([][]float64, len(net.layers))
	for i, l := range net.layers {
		want[i] = net.diff(l)
		velocity[i] = make([]float64, len(want[i]))
	}
	for step := 1; step <= steps; step++ {
		net.step()
		for i, l := range net.layers {
			for j := range want[i] {
				velocity[i][j] = momentum*velocity[i][j] + decay*want[i][j]
				want[i][j] -= lr * velocity[i][j]
			}
			got := net.diff(l)
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
	const momentum, decay, steps = 0.9, 0.05, 20
	for _, lr := range []float64{0.01, 0.2} {
		params := map[string]any{feedback.ParamKPDecay: decay, feedback.ParamKPDecoupled: true}
		net := newKPNet(t, params, &SGD{Momentum: momentum, WeightDecay: 0.3}, lr) // 0.3: not KP's decay
		initial := [][]float64{net.diff(net.layers[0]), net.diff(net.layers[1])}
		for range steps {
			net.step()
		}
		shrink := math.Pow(1-decay, steps)
		for i, l := range net.layers {
			got := net.diff(l)
			for j := range got {
				require.InDelta(t, shrink*initial[i][j], got[j], 1e-12*math.Max(1, math.Abs(initial[i][j])),
					"lr %g layer %s [%d]", lr, l.Scope, j)
			}
		}
	}
}
