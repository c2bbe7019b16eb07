package trainer

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/context/checkpoints"
	"github.com/gomlx/gomlx/pkg/ml/train"
	"github.com/gomlx/gomlx/pkg/ml/train/optimizers"
	"github.com/nowt-ml/nowt/feedback"
	"github.com/stretchr/testify/require"
)

// kpNet is a two-layer tanh network under KP, trained by an SGD step on a fixed batch, for checking how W − B evolves.
type kpNet struct {
	ctx     *context.Context
	backend backends.Backend
	step    func()                           // one training step
	layers  []feedback.Layer                 // its two dense layers
	diff    func(l feedback.Layer) []float64 // W − B of a layer, flattened
}

// newKPNet builds kpNet on the pure-Go backend (float64) with ctx's extra params, optimizer opt and rate lr.
func newKPNet(t *testing.T, params map[string]any, opt *SGD, lr float64) kpNet {
	return newKPNetWith(t, params, opt, lr, false, "")
}

// newKPNetWith is newKPNet; with ownVelocity, every B has a velocity variable before the first step, as in a
// checkpoint written before B was updated from W's state, so that the optimizer updates B through it; with
// checkpointDir, its variables come from the checkpoint there.
func newKPNetWith(t *testing.T, params map[string]any, opt *SGD, lr float64, ownVelocity bool, checkpointDir string) kpNet {
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
	if checkpointDir != "" {
		_, err := checkpoints.Build(ctx).Dir(checkpointDir).Done()
		require.NoError(t, err)
		ctx = ctx.Checked(false) // The checkpoint's variables already exist.
	}
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
	if ownVelocity {
		for _, l := range layers {
			optimizerState(ctx, l.Feedback, l.Feedback.Name(), l.Feedback.Shape())
		}
	}
	return kpNet{
		ctx:     ctx,
		backend: backend,
		step:    func() { exec.MustExec(x, target) },
		layers:  layers,
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
// the recursion the rule had before the redesign (TestKolenPollackDecay checks the plain-SGD case). With the
// gradients clipped, W's and B's are scaled alike (B's update stays W's), so D follows the same recursion while W
// moves otherwise than without the clip: with momentum (B updated from W's step) and without (B through its own
// clipped gradient).
func TestKolenPollackMomentumRecursion(t *testing.T) {
	const lr, decay, steps = 0.05, 0.3, 25
	for _, opt := range []SGD{
		{Momentum: 0.9, WeightDecay: decay},
		{Momentum: 0.9, WeightDecay: decay, ClipNorm: 1e-3},
		{WeightDecay: decay, ClipNorm: 1e-3},
	} {
		t.Run(fmt.Sprintf("momentum %g, clip %g", opt.Momentum, opt.ClipNorm), func(t *testing.T) {
			net := newKPNet(t, nil, &opt, lr)
			var unclipped kpNet
			if opt.ClipNorm > 0 {
				plain := opt
				plain.ClipNorm = 0
				unclipped = newKPNet(t, nil, &plain, lr)
			}
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
						velocity[i][j] = opt.Momentum*velocity[i][j] + decay*want[i][j]
						want[i][j] -= lr * velocity[i][j]
					}
					got := net.diff(l)
					for j := range got {
						require.InDelta(t, want[i][j], got[j], 1e-12*math.Max(1, math.Abs(want[i][j])), "layer %s step %d [%d]", l.Scope, step, j)
					}
				}
				if step == 1 && opt.ClipNorm > 0 {
					unclipped.step()
					for i, l := range net.layers {
						require.NotEqual(t, tensors.MustCopyFlatData[float64](unclipped.layers[i].Weights.MustValue()),
							tensors.MustCopyFlatData[float64](l.Weights.MustValue()), "the clip bounds this net's step")
					}
				}
			}
		})
	}
}

// kpOptimizerCases are the optimizer settings under which KP's B is updated from its W's step (SGD.pairedDecay):
// momentum and Nesterov's, L2 and decoupled decay, no decay, clipping.
var kpOptimizerCases = []struct {
	name   string
	opt    SGD
	params map[string]any
}{
	{"momentum, optimizer's decay", SGD{Momentum: 0.9, WeightDecay: 0.3}, nil},
	{"nesterov, kp_decay", SGD{Momentum: 0.8, Nesterov: true, WeightDecay: 0.01}, map[string]any{feedback.ParamKPDecay: 0.2}},
	{"momentum, decoupled", SGD{Momentum: 0.9, WeightDecay: 0.3}, map[string]any{feedback.ParamKPDecay: 0.05, feedback.ParamKPDecoupled: true}},
	{"nesterov, decoupled, no decay", SGD{Momentum: 0.5, Nesterov: true}, map[string]any{feedback.ParamKPDecoupled: true}},
	{"momentum, clipped", SGD{Momentum: 0.9, WeightDecay: 0.3, ClipNorm: 1e-3}, nil},
}

// setRate sets the learning rate of every net to rate, as a schedule's change of rate does.
func setRate(t *testing.T, rate float64, nets ...kpNet) {
	t.Helper()
	for _, net := range nets {
		require.NoError(t, optimizers.LearningRateVar(net.ctx, dtypes.Float64, 0).SetValue(tensors.FromScalar(rate)))
	}
}

// TestKolenPollackPairedUpdate: the optimizer updates KP's B from its W's step and one scalar per layer
// (SGD.pairedDecay), without a velocity of B's own, and B is the same as when it goes through a velocity of its
// own, step after step, under momentum and Nesterov's momentum, L2 and decoupled decay and a changing rate. A
// B that has its own velocity (a checkpoint from before) keeps it, so that such a run resumes exactly.
func TestKolenPollackPairedUpdate(t *testing.T) {
	for _, c := range kpOptimizerCases {
		t.Run(c.name, func(t *testing.T) {
			paired := newKPNetWith(t, c.params, &c.opt, 0.05, false, "")
			own := newKPNetWith(t, c.params, &c.opt, 0.05, true, "")
			values := func(net kpNet) [][]float64 {
				var all [][]float64
				for _, l := range net.layers {
					all = append(all, tensors.MustCopyFlatData[float64](l.Weights.MustValue()),
						tensors.MustCopyFlatData[float64](l.Feedback.MustValue()))
				}
				return all
			}
			for step := 1; step <= 30; step++ {
				if step == 15 { // a schedule's change of rate
					setRate(t, 0.2, paired, own)
				}
				paired.step()
				own.step()
				want, got := values(own), values(paired)
				for i := range want {
					for j := range want[i] {
						require.InDelta(t, want[i][j], got[i][j], 1e-12*math.Max(1, math.Abs(want[i][j])),
							"step %d, array %d (W, B of each layer) [%d]", step, i, j)
					}
				}
			}
			for _, l := range paired.layers {
				velocities := paired.ctx.InAbsPath(velocityScope + l.Feedback.Scope())
				require.Nil(t, velocities.GetVariable(l.Feedback.Name()), "paired B %s has no velocity of its own", l.Scope)
				require.NotNil(t, velocities.GetVariable(l.Feedback.Name()+pairedRatioSuffix), "paired B %s's ratio", l.Scope)
				require.NotNil(t, own.ctx.InAbsPath(velocityScope+l.Feedback.Scope()).GetVariable(l.Feedback.Name()))
				require.Nil(t, own.ctx.InAbsPath(velocityScope+l.Feedback.Scope()).GetVariable(l.Feedback.Name()+pairedRatioSuffix))
			}
		})
	}
}

// TestKolenPollackResumesOwnVelocity: a checkpoint whose B has a velocity of its own (written before B was
// updated from W's step) resumes through that velocity, exactly as the run would have gone on.
func TestKolenPollackResumesOwnVelocity(t *testing.T) {
	opt := SGD{Momentum: 0.9, WeightDecay: 0.3}
	own := newKPNetWith(t, nil, &opt, 0.05, true, "")
	for range 5 {
		own.step()
	}
	dir := t.TempDir()
	handler, err := checkpoints.Build(own.ctx).Dir(dir).Done()
	require.NoError(t, err)
	require.NoError(t, handler.Save())
	resumed := newKPNetWith(t, nil, &opt, 0.05, false, dir)
	for step := 6; step <= 10; step++ {
		own.step()
		resumed.step()
		for i, l := range own.layers {
			for _, pair := range [][2]*context.Variable{{l.Weights, resumed.layers[i].Weights}, {l.Feedback, resumed.layers[i].Feedback}} {
				want := tensors.MustCopyFlatData[float64](pair[0].MustValue())
				got := tensors.MustCopyFlatData[float64](pair[1].MustValue())
				require.InDeltaSlice(t, want, got, 1e-12, "step %d, %s", step, pair[0].ParameterName())
			}
		}
	}
	for _, l := range resumed.layers {
		velocities := resumed.ctx.InAbsPath(velocityScope + l.Feedback.Scope())
		require.NotNil(t, velocities.GetVariable(l.Feedback.Name()), "B %s keeps its velocity", l.Scope)
		require.Nil(t, velocities.GetVariable(l.Feedback.Name()+pairedRatioSuffix), "B %s is not paired", l.Scope)
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

// TestSGDLearningRateInGoMLXTrainer: SGD used as the optimizer of a program's own train.Trainer (which deletes the
// learning-rate variable when it is made) steps at the context's optimizers.ParamLearningRate, or at GoMLX's SGD
// default where it is not set, as GoMLX's own SGD does: it used to create the variable at 0, and trained nothing.
func TestSGDLearningRateInGoMLXTrainer(t *testing.T) {
	for _, tc := range []struct {
		name   string
		params map[string]any
		want   float64
	}{
		{"context's learning_rate", map[string]any{optimizers.ParamLearningRate: 0.5}, 0.5},
		{"GoMLX's default", nil, optimizers.SGDDefaultLearningRate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			backend, err := backends.NewWithConfig("go:ops_sequential")
			require.NoError(t, err)
			t.Cleanup(backend.Finalize)
			ctx := context.New()
			ctx.SetParam(feedback.ParamRule, "bp")
			for k, v := range tc.params {
				ctx.SetParam(k, v)
			}
			require.NoError(t, ctx.SetRNGStateFromSeed(1))
			model := func(ctx *context.Context, _ any, inputs []*Node) []*Node {
				return []*Node{feedback.Dense(ctx.In("d"), inputs[0], 2, false)}
			}
			loss := func(_, predictions []*Node) *Node { return ReduceAllSum(predictions[0]) }
			trainer := train.NewTrainer(backend, ctx, model, loss, &SGD{}, nil, nil)
			x := tensors.FromFlatDataAndDimensions([]float32{1, 2, 3}, 1, 3)
			labels := tensors.FromFlatDataAndDimensions([]int32{0}, 1, 1)
			// ∂L/∂W = xᵀ·1 for L = Σ x·W: one step moves W[i, j] by −η·x[i].
			_, err = trainer.TrainStep(nil, []*tensors.Tensor{x}, []*tensors.Tensor{labels})
			require.NoError(t, err)
			w0 := tensors.MustCopyFlatData[float32](ctx.GetVariableByScopeAndName("/d", feedback.WeightsName).MustValue())
			_, err = trainer.TrainStep(nil, []*tensors.Tensor{x}, []*tensors.Tensor{labels})
			require.NoError(t, err)
			w1 := tensors.MustCopyFlatData[float32](ctx.GetVariableByScopeAndName("/d", feedback.WeightsName).MustValue())
			for i := range w1 {
				require.InDelta(t, -tc.want*float64(1+i/2), float64(w1[i]-w0[i]), 1e-5, "W[%d]", i)
			}
		})
	}
}
