package trainer

import (
	gocontext "context"
	"math"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/nowt-ml/nowt/input"
	"github.com/nowt-ml/nowt/xla"
	"github.com/stretchr/testify/require"
)

// TestMixedPrecisionTraining: a short MNIST run (and, on XLA with the CIFAR-10 JPEG copy present, a short CIFAR-10
// ResNet-8 run under KP) in bfloat16 reaches the float32 run's test accuracy within the noise of its test set,
// for BP and both rules whose B learns (KP in training, WM in mirror steps: BP and KP on pure Go, WM and the
// CIFAR-10 KP run on XLA), and its checkpoint keeps every variable in float32.
func TestMixedPrecisionTraining(t *testing.T) {
	type run struct {
		name      string
		configure func(c *Config)
		// tolerance in accuracy points: about three standard deviations of the difference of two accuracies
		// near acc measured on n test images, √(2·acc(1−acc)/n).
		tolerance float64
		minTop1   float64
	}
	runs := []run{{
		name: "mnist-mlp",
		configure: func(c *Config) {
			c.TrainLimit, c.TestLimit, c.Steps, c.BatchSize, c.EvalEvery = 4096, 1000, 384, 32, 384
			c.LearningRate, c.Momentum, c.Schedule = 0.1, 0.9, "cosine"
			c.Params["mlp_hidden"] = "128"
		},
		tolerance: 3 * math.Sqrt(2*0.93*0.07/1000) * 100, minTop1: 80,
	}}
	if xla.TestBackendIsXLA() {
		if _, err := input.DefaultCIFAR10JPEGArchive(); err == nil {
			runs = append(runs, run{
				name: "cifar10-resnet8",
				configure: func(c *Config) {
					c.Model, c.Dataset, c.Augment = "resnet8", "cifar10-jpeg", false
					c.TrainLimit, c.TestLimit, c.Steps, c.BatchSize, c.EvalEvery = 1280, 1000, 40, 64, 40
					c.LearningRate, c.Momentum, c.Schedule = 0.1, 0.9, "cosine"
					c.Params["resnet_width"] = 8
				},
				tolerance: 3 * math.Sqrt(2*0.25*0.75/1000) * 100, minTop1: 15,
			})
		} else {
			t.Logf("no CIFAR-10 JPEG copy (%v): only the MNIST run", err)
		}
	}
	// BP and KP on the pure-Go backend (WM's mirror steps make its run 3× longer there); WM on XLA, with KP
	// on CIFAR-10 below (to keep make test's XLA pass within its budget).
	rules := []string{"bp", "kp"}
	if xla.TestBackendIsXLA() {
		rules = []string{"wm"}
	}
	for _, r := range runs {
		rules := rules
		if r.name != "mnist-mlp" {
			rules = []string{"kp"} // a ResNet step in bfloat16 costs 1.3× float32's on XLA's CPU backend: one rule
		}
		for _, rule := range rules {
			t.Run(r.name+"/"+rule, func(t *testing.T) {
				top1 := map[string]float64{}
				for _, dtype := range []string{"", "bfloat16"} {
					c := tinyConfig(t, rule)
					c.DType = dtype
					r.configure(&c)
					c.LogEvery, c.CheckpointEvery = c.Steps, c.Steps
					res, err := Train(gocontext.Background(), c, nil, false)
					require.NoError(t, err)
					top1[dtype] = 100 * res.TestTop1
					ctx := context.New()
					_, err = loadCheckpoint(ctx, c.OutDir+"/"+checkpointDirName, nil)
					require.NoError(t, err)
					for v := range ctx.IterVariables() {
						if v.Shape().DType.IsFloat() {
							require.Equal(t, dtypes.Float32, v.Shape().DType, "checkpointed %s", v.ScopeAndName())
						}
					}
				}
				t.Logf("test top-1: float32 %.2f %%, bfloat16 %.2f %% (tolerance %.1f points)", top1[""], top1["bfloat16"], r.tolerance)
				require.Greater(t, top1[""], r.minTop1, "float32 run")
				require.InDelta(t, top1[""], top1["bfloat16"], r.tolerance, "bfloat16 against float32")
			})
		}
	}
}

// TestMixedPrecisionComputedKernels: a bfloat16 run under the rules whose kernel is computed at every step (and
// kept as feedback.SentKernelName) trains and resumes: the alignment metrics, measured in float32 before the first
// step, and the bfloat16 step write the same kept kernel (once a float32 and a bfloat16 variable of one name).
func TestMixedPrecisionComputedKernels(t *testing.T) {
	for _, rule := range []string{"ss", "brsf"} {
		t.Run(rule, func(t *testing.T) {
			c := tinyConfig(t, rule)
			c.DType = "bfloat16"
			c.Steps, c.LogEvery, c.EvalEvery, c.CheckpointEvery = 4, 2, 4, 2
			_, err := Train(gocontext.Background(), c, nil, false)
			require.NoError(t, err)
			c.Steps = 6
			res, err := Train(gocontext.Background(), c, nil, true)
			require.NoError(t, err)
			require.Equal(t, 6, res.Steps)
		})
	}
}
