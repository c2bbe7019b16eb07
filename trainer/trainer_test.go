package trainer

import (
	gocontext "context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"
	_ "github.com/gomlx/gomlx/backends/simplego"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/train/optimizers"
	"github.com/gomlx/gomlx/ui/notebooks"
	"github.com/nowt-ml/nowt/feedback"
	"github.com/nowt-ml/nowt/layers"
	"github.com/nowt-ml/nowt/xla"
	"github.com/stretchr/testify/require"
	"golang.org/x/term"
)

// tinyConfig is a few-second run: an MLP on 512 synthetic... examples of MNIST.
func tinyConfig(t *testing.T, rule string) Config {
	t.Setenv("GOMLX_BACKEND", xla.TestBackendSpec())
	c := DefaultConfig()
	c.Rule, c.Model, c.Dataset = rule, "mlp", "mnist"
	c.TrainLimit, c.TestLimit = 512, 256
	c.BatchSize, c.Steps, c.Epochs = 32, 32, 0
	c.LearningRate, c.Schedule = 0.05, "constant"
	c.LogEvery, c.EvalEvery, c.CheckpointEvery, c.KeepCheckpoints = 8, 16, 16, 5
	c.Params = map[string]any{"mlp_hidden": "64", "mlp_activation": "relu", feedback.ParamWMWarmupSteps: 4}
	c.Progress = false
	c.OutDir = t.TempDir()
	return c
}

// TestSGDMatchesReference: momentum, Nesterov, weight decay and gradient clipping against a plain-Go SGD on the
// loss Σ (θ·a)² (the gradient's norm starts at 8.3: a bound of 0.5 clips every step shown, one of 100 none), and
// the gradient-norm metric against the reference's norm before clipping.
func TestSGDMatchesReference(t *testing.T) {
	backend, err := backends.NewWithConfig("go:ops_sequential")
	require.NoError(t, err)
	a := []float64{0.5, -1, 2}
	for _, o := range []SGD{{}, {Momentum: 0.9}, {Momentum: 0.9, Nesterov: true, WeightDecay: 0.1}, {WeightDecay: 0.3},
		{Momentum: 0.9, WeightDecay: 0.3, ClipNorm: 0.5}, {Momentum: 0.9, Nesterov: true, ClipNorm: 0.5}, {ClipNorm: 100}} {
		ctx := context.New()
		normMetric := o.GradientNormMetric()
		exec := context.MustNewExec(backend, ctx, func(ctx *context.Context, g *Graph) []*Node {
			theta := ctx.WithInitializer(func(g *Graph, s shapes_) *Node { return Const(g, [][]float64{{1, 1, 1}}) }).
				VariableWithShape("theta", shapeOf(1, 3))
			loss := ReduceAllSum(Square(Mul(theta.ValueGraph(g), Const(g, [][]float64{a}))))
			o.UpdateGraph(ctx, g, loss)
			return []*Node{loss, normMetric.UpdateGraph(ctx, nil, []*Node{loss})}
		})
		optimizers.LearningRateVar(ctx, theta64, 0.05)
		theta, velocity := []float64{1, 1, 1}, make([]float64, 3)
		for step := range 5 {
			outputs := exec.MustExec()
			scale, norm := 1.0, 0.0
			for i := range theta {
				norm += math.Pow(2*a[i]*a[i]*theta[i], 2)
			}
			if norm = math.Sqrt(norm); o.ClipNorm > 0 && norm > o.ClipNorm {
				scale = o.ClipNorm / norm
			}
			require.InDelta(t, norm, scalar(outputs[1]), 1e-6*norm, "%+v step %d: the metric's norm, before clipping", o, step)
			for i := range theta {
				grad := scale*2*a[i]*a[i]*theta[i] + o.WeightDecay*theta[i]
				velocity[i] = o.Momentum*velocity[i] + grad
				update := velocity[i]
				if o.Nesterov {
					update = grad + o.Momentum*velocity[i]
				}
				theta[i] -= 0.05 * update
			}
			got := tensors.MustCopyFlatData[float64](ctx.GetVariableByScopeAndName("/", "theta").MustValue())
			for i := range theta {
				require.InDelta(t, theta[i], got[i], 1e-12, "%+v step %d", o, step)
			}
		}
	}
}

// TestKPWithMomentum: under SGD with momentum μ and decay λ, D = W − B and its velocity follow
// V ← μV + λD, D ← D − ηV, so ‖D‖ after t steps equals that recursion applied to ‖D(0)‖ (D stays parallel to
// D(0), and under this heavy-ball dynamics even crosses zero).
func TestKPWithMomentum(t *testing.T) {
	c := tinyConfig(t, "kp")
	c.Steps, c.WeightDecay, c.Momentum, c.LearningRate = 12, 0.5, 0.9, 0.1
	c.LogEvery, c.EvalEvery, c.CheckpointEvery = 12, 12, 12
	r, err := setup(c, nil, "", true)
	require.NoError(t, err)
	defer r.trainDS.Close()
	defer r.testDS.Close()
	_, err = r.align()
	require.NoError(t, err)
	layers := feedback.Layers(r.ctx)
	require.Len(t, layers, 2)
	d0 := make([]float64, len(layers))
	for i, l := range layers {
		d0[i] = dist32(l.Weights.MustValue(), l.Feedback.MustValue())
	}
	lr := optimizers.LearningRateVar(r.ctx, theta32, c.LearningRate)
	require.NoError(t, lr.SetValue(tensors.FromScalar(float32(c.LearningRate))))
	ds := epochLooper{Dataset: r.trainDS}
	d, v := 1.0, 0.0
	for step := range c.Steps {
		spec, in, lab, err := ds.Yield()
		require.NoError(t, err)
		_, err = r.trainer.TrainStep(spec, in, lab)
		require.NoError(t, err)
		r.feedbackStale = true // the first layer's B, deferred, brought up to date as the trainer does before reading it
		require.NoError(t, r.settleFeedback())
		v = c.Momentum*v + c.WeightDecay*d
		d -= c.LearningRate * v
		for i, l := range layers {
			got := dist32(l.Weights.MustValue(), l.Feedback.MustValue())
			require.InDelta(t, d0[i]*math.Abs(d), got, 1e-3*d0[i], "layer %s step %d", l.Scope, step)
		}
	}
}

// TestTrainNaNStops: an exploding learning rate stops the run at the first non-finite loss, naming the step,
// and keeps the last good checkpoint.
func TestTrainNaNStops(t *testing.T) {
	c := tinyConfig(t, "bp")
	c.LearningRate, c.CheckpointEvery = 1e12, 1
	res, err := Train(gocontext.Background(), c, nil, false)
	var nanErr *NaNError
	require.ErrorAs(t, err, &nanErr)
	require.Greater(t, nanErr.Step, 1)
	require.ErrorContains(t, err, "at step")
	require.True(t, math.IsNaN(nanErr.Loss) || math.IsInf(nanErr.Loss, 0))
	require.NotEmpty(t, nanErr.Checkpoint)
	require.FileExists(t, nanErr.Checkpoint+".json")
	require.NotNil(t, res)
	bases, err := listCheckpoints(filepath.Join(c.OutDir, checkpointDirName))
	require.NoError(t, err)
	require.Equal(t, nanErr.Checkpoint, bases[len(bases)-1], "-resume continues from the last good checkpoint")
	// Step s's loss comes from the weights after step s-1: that checkpoint is set aside, the one before is kept.
	require.True(t, strings.HasSuffix(nanErr.Checkpoint, stepSuffix(nanErr.Step-2)), "%v", err)
	require.Equal(t, 1, nanErr.SetAside)
	require.FileExists(t, filepath.Join(c.OutDir, checkpointDirName,
		fmt.Sprintf(divergedCheckpointPrefix+checkpointNameFormat+".json", nanErr.Step-1, nanErr.Step-1)))
}

// TestTrainRefusesExistingRun: a second run into the same folder is refused; -resume of an empty one too.
func TestTrainRefusesExistingRun(t *testing.T) {
	c := tinyConfig(t, "fa")
	c.Steps, c.CheckpointEvery = 4, 4
	_, err := Train(gocontext.Background(), c, nil, false)
	require.NoError(t, err)
	_, err = Train(gocontext.Background(), c, nil, false)
	require.ErrorContains(t, err, "already holds a run")
	require.ErrorContains(t, err, "-resume")
	empty := tinyConfig(t, "fa")
	_, err = Train(gocontext.Background(), empty, nil, true)
	require.ErrorContains(t, err, "cannot resume")
}

// TestCheckpointAtomicity: pruning keeps the newest, and a stray data file or staging folder (a crash
// mid-save) is not taken for a checkpoint.
func TestCheckpointAtomicity(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"checkpoint-n000000001-step-000000001", "checkpoint-n000000002-step-000000002"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name+".json"), []byte("{}"), 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(dir, name+".bin"), nil, 0o644))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "checkpoint-n000000003-step-000000003.bin"), nil, 0o644))
	require.NoError(t, os.Mkdir(filepath.Join(dir, ".staging-123"), 0o755))
	bases, err := listCheckpoints(dir)
	require.NoError(t, err)
	require.Len(t, bases, 2)
	require.NoError(t, pruneCheckpoints(dir, 1))
	bases, err = listCheckpoints(dir)
	require.NoError(t, err)
	require.Equal(t, []string{filepath.Join(dir, "checkpoint-n000000002-step-000000002")}, bases)
	require.NoFileExists(t, filepath.Join(dir, "checkpoint-n000000001-step-000000001.bin"))
}

func stepSuffix(step int) string { return "step-" + leftPad(step) }

func leftPad(n int) string {
	s := []byte("000000000")
	for i := len(s) - 1; i >= 0 && n > 0; i-- {
		s[i] = byte('0' + n%10)
		n /= 10
	}
	return string(s)
}

func dist32(a, b *tensors.Tensor) float64 {
	x, y := tensors.MustCopyFlatData[float32](a), tensors.MustCopyFlatData[float32](b)
	var s float64
	for i := range x {
		d := float64(x[i] - y[i])
		s += d * d
	}
	return math.Sqrt(s)
}

// TestProgressByDefault: DefaultConfig shows the progress bar only where the standard output can show it (a
// terminal or a notebook); a program whose output goes to a file or a pipe, as under go test, logs plain lines.
func TestProgressByDefault(t *testing.T) {
	if term.IsTerminal(int(os.Stdout.Fd())) || notebooks.IsNotebook() {
		t.Skip("the standard output is a terminal or a notebook here")
	}
	require.False(t, DefaultConfig().Progress, "no progress bar into a pipe or a file")
}

// TestEveryPoolImplementationTrains: the LeNet-style cnn trains under each max-pool implementation on the test
// engine, with the same losses step by step. Every run's variables are initialised on a pure-Go graph of its
// training step, which once refused `-set pool_impl=native` on XLA (no select-and-scatter in pure Go) and would
// have refused taps (no Pad).
func TestEveryPoolImplementationTrains(t *testing.T) {
	var want []Record
	for _, impl := range []string{"gather", "native", "taps"} {
		t.Run(impl, func(t *testing.T) {
			c := tinyConfig(t, "bp")
			c.Model, c.Dataset, c.DataPath = "cnn", "synthetic", "examples=64,size=12,channels=1,classes=4"
			c.TrainLimit, c.TestLimit = 0, 0
			c.BatchSize, c.Steps, c.LogEvery, c.EvalEvery, c.CheckpointEvery = 16, 4, 1, 4, 4
			c.Params = map[string]any{layers.ParamPoolImpl: impl}
			_, err := Train(gocontext.Background(), c, nil, false)
			require.NoError(t, err)
			records, err := ReadRecords(filepath.Join(c.OutDir, metricsFileName))
			require.NoError(t, err)
			require.Len(t, records, 5)
			if want == nil {
				want = records
				return
			}
			for i, r := range records[1:] {
				require.InDelta(t, want[i+1].Loss, r.Loss, 1e-5, "step %d: %s against gather", r.Step, impl)
			}
		})
	}
}
