package trainer

import (
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestScheduleAt(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    Schedule
		want map[int]float64
	}{
		{"constant", Schedule{Base: 0.1, Kind: "constant", TotalSteps: 100}, map[int]float64{0: 0.1, 99: 0.1}},
		{"step", Schedule{Base: 0.1, Kind: "step", Milestones: []int{10, 20}, Gamma: 0.1, TotalSteps: 30},
			map[int]float64{0: 0.1, 9: 0.1, 10: 0.01, 19: 0.01, 20: 0.001, 29: 0.001}},
		{"cosine", Schedule{Base: 1, Kind: "cosine", TotalSteps: 100}, map[int]float64{0: 1, 50: 0.5, 100: 0}},
		{"warmup+cosine", Schedule{Base: 1, Kind: "cosine", WarmupSteps: 10, TotalSteps: 110},
			map[int]float64{0: 0.1, 4: 0.5, 9: 1, 10: 1, 60: 0.5}},
		{"warmup+step", Schedule{Base: 1, Kind: "step", Milestones: []int{5}, Gamma: 0.5, WarmupSteps: 2, TotalSteps: 10},
			map[int]float64{0: 0.5, 1: 1, 4: 1, 5: 0.5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for step, want := range tc.want {
				require.InDelta(t, want, tc.s.At(step), 1e-12, "step %d", step)
			}
		})
	}
}

func TestNewScheduleConvertsEpochs(t *testing.T) {
	c := DefaultConfig()
	c.Schedule, c.Milestones, c.WarmupEpochs = "step", []float64{1, 2.5}, 0.5
	s := newSchedule(c, 100, 400)
	require.Equal(t, []int{100, 250}, s.Milestones)
	require.Equal(t, 50, s.WarmupSteps)
	require.Equal(t, 400, s.TotalSteps)
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modify func(c *Config)
		errHas string
	}{
		{"default", func(c *Config) {}, ""},
		{"rule", func(c *Config) { c.Rule = "dfa2" }, `unknown feedback rule "dfa2": valid rules are bp, fa, ss, wm, kp, usf, frsf, brsf, dfa, ia, aa`},
		{"model", func(c *Config) { c.Model = "vgg" }, `unknown model "vgg": valid models are`},
		{"dataset", func(c *Config) { c.Dataset = "svhn" }, `unknown dataset "svhn": valid datasets are`},
		{"nothing", func(c *Config) { c.Epochs, c.Steps = 0, 0 }, "nothing to train"},
		{"batch", func(c *Config) { c.BatchSize = 0 }, "-batch 0: the batch size must be ≥ 1"},
		{"lr", func(c *Config) { c.LearningRate = -1 }, "-lr -1: the learning rate must be a finite number > 0"},
		{"lr NaN", func(c *Config) { c.LearningRate = math.NaN() }, "-lr NaN: the learning rate must be a finite number > 0"},
		{"steps", func(c *Config) { c.Steps = -3 }, "-steps -3: must be ≥ 0"},
		{"warmup", func(c *Config) { c.WarmupEpochs = -1 }, "-warmup -1: the warm-up must be"},
		{"gamma", func(c *Config) { c.Gamma = -1 }, "-gamma -1: the step schedule's factor must be"},
		{"eval batch", func(c *Config) { c.EvalBatchSize = -1 }, "-eval-batch -1: must be ≥ 0"},
		{"image size", func(c *Config) { c.ImageSize = -3 }, "-image-size -3: must be ≥ 0"},
		{"image size of a fixed-size dataset", func(c *Config) { c.Dataset, c.ImageSize = "mnist", 64 },
			"-image-size 64: dataset mnist has images of one fixed size; -image-size applies to cifar10-jpeg, imagefolder and synthetic"},
		{"image size too large", func(c *Config) { c.Dataset, c.ImageSize = "imagefolder", 5000 }, "-image-size 5000: must be at most 4096"},
		{"image size of an image folder", func(c *Config) { c.Dataset, c.ImageSize = "imagefolder", 224 }, ""},
		{"rule param", func(c *Config) { c.Params = map[string]any{"wm_noise": "pink"} }, `wm_noise="pink" is not valid: must be one of uniform, gaussian`},
		{"param unknown", func(c *Config) { c.Params = map[string]any{"kp_decy": 0.1} },
			`Params["kp_decy"]: no rule, model or layer has a hyperparameter of that name`},
		{"param int for a string", func(c *Config) { c.Params = map[string]any{"mlp_hidden": 16} },
			`Params["mlp_hidden"] = 16 is a number: want a string, as its default "500"`},
		{"param string for a number", func(c *Config) { c.Params = map[string]any{"resnet_width": "32"} },
			`Params["resnet_width"] = "32" is a string: want a number, as its default 16`},
		{"param fraction for a whole number", func(c *Config) { c.Params = map[string]any{"resnet_width": 32.5} },
			`Params["resnet_width"] = 32.5: want a whole number, as its default 16`},
		{"param whole float for a whole number (config.json)", func(c *Config) { c.Params = map[string]any{"resnet_width": 32.0} }, ""},
		{"param int for a float", func(c *Config) { c.Params = map[string]any{"kp_decay": 1} }, ""},
		{"param bool", func(c *Config) { c.Params = map[string]any{"zero_init_residual": "yes"} },
			`Params["zero_init_residual"] = "yes" is a string: want true or false, as its default false`},
		{"layer param", func(c *Config) { c.Params = map[string]any{"bn_momentum": 1.5} }, "bn_momentum=1.5 is not valid: want a number in [0, 1]"},
		{"layer param aimed at a layer", func(c *Config) { c.Model, c.Settings = "resnet8", "/model/stage1/block0/bn1/bn_epsilon=-1" },
			"bn_epsilon=-1 is not valid: want a finite number > 0, added to the variance (at scope /model/stage1/block0/bn1)"},
		{"set param", func(c *Config) { c.Settings = "wm_learning_rate=-5" }, "wm_learning_rate=-5 is not valid: must be > 0"},
		{"set scoped", func(c *Config) { c.Settings = "/model/fc0/wm_batch=0" }, "wm_batch=0 (scope /model/fc0) is not valid"},
		{"set scope", func(c *Config) { c.Settings = "/model/nolayer/feedback_rule=bp" },
			"scope /model/nolayer (of feedback_rule) is not a scope of the model: no layer lives there (the mlp's layers are /model/{fc0, out})"},
		{"set scope below a layer", func(c *Config) { c.Settings = "/model/fc0/w/feedback_rule=bp" }, "scope /model/fc0/w (of feedback_rule)"},
		{"set scope outside the model", func(c *Config) { c.Settings = "/optimizer/feedback_rule=bp" }, "scope /optimizer (of feedback_rule)"},
		{"set scope of another model", func(c *Config) { c.Settings = "/model/stage1/feedback_rule=fa" }, "scope /model/stage1"},
		{"set a model-wide setting at a layer scope", func(c *Config) { c.Settings = "/model/fc0/mlp_hidden=64" },
			"mlp_hidden is a setting of the whole model, read at its top: at scope /model/fc0 it would be ignored (give it without a scope, or with its flag -hidden)"},
		{"set zero-init at a block", func(c *Config) { c.Model, c.Settings = "resnet8", "/model/stage1/block0/zero_init_residual=true" },
			"zero_init_residual is a setting of the whole model, read at its top: at scope /model/stage1/block0 it would be ignored (give it without a scope, or with its flag -zero-init-residual)"},
		{"set the max-pool's implementation at a layer", func(c *Config) { c.Model, c.Settings = "cnn", "/model/conv1/pool_impl=gather" },
			"pool_impl is a setting of the whole model, read at its top: at scope /model/conv1 it would be ignored (give it without a scope)"},
		{"set the max-pool's implementation for the model", func(c *Config) { c.Model, c.Settings = "cnn", "/model/pool_impl=gather" }, ""},
		{"set batch norm's momentum at a layer", func(c *Config) { c.Model, c.Settings = "resnet8", "/model/stem/bn/bn_momentum=0.99" }, ""},
		{"set the rule at the root", func(c *Config) { c.Settings = "feedback_rule=fa" }, `-set feedback_rule=fa at the root would replace the run's rule "kp"`},
		{"set the run's own rule at the root", func(c *Config) { c.Settings = "feedback_rule=kp" }, ""},
		{"set scope of a deeper mlp", func(c *Config) { c.Settings = "mlp_hidden=10,10;/model/fc1/feedback_rule=fa" }, ""},
		{"set scope of a resnet stage", func(c *Config) { c.Model, c.Settings = "resnet20", "/model/stage1/feedback_rule=fa" }, ""},
		{"set scope of a resnet layer", func(c *Config) {
			c.Model, c.Settings = "resnet18", "/model/stage2/block0/downsample/conv/feedback_rule=fa"
		}, ""},
		{"set scope of the model", func(c *Config) { c.Settings = "/model/feedback_rule=fa" }, ""},
		{"momentum", func(c *Config) { c.Momentum = 1 }, "-momentum 1: must be in [0, 1)"},
		{"schedule", func(c *Config) { c.Schedule = "poly" }, `unknown schedule "poly"`},
		{"milestones", func(c *Config) { c.Schedule = "step" }, "-schedule step needs -milestones"},
		{"unsorted", func(c *Config) { c.Schedule, c.Milestones = "step", []float64{3, 1} }, "must be increasing"},
		{"loss", func(c *Config) { c.Loss = "hinge" }, `unknown loss "hinge"`},
		{"clip", func(c *Config) { c.ClipNorm = 1 }, ""},
		{"clip < 0", func(c *Config) { c.ClipNorm = -1 }, "-clip-norm -1: the gradients' norm bound must be a finite number ≥ 0"},
		{"clip Inf", func(c *Config) { c.ClipNorm = math.Inf(1) }, "-clip-norm +Inf: the gradients' norm bound must be"},
		{"clip NaN", func(c *Config) { c.ClipNorm = math.NaN() }, "-clip-norm NaN: the gradients' norm bound must be"},
		{"label smoothing", func(c *Config) { c.LabelSmoothing = 0.1 }, ""},
		{"label smoothing 1", func(c *Config) { c.LabelSmoothing = 1 }, "-label-smoothing 1: must be in [0, 1)"},
		{"label smoothing < 0", func(c *Config) { c.LabelSmoothing = -0.1 }, "-label-smoothing -0.1: must be in [0, 1)"},
		{"label smoothing NaN", func(c *Config) { c.LabelSmoothing = math.NaN() }, "-label-smoothing NaN: must be in [0, 1)"},
		{"label smoothing sigmoid", func(c *Config) { c.Loss, c.LabelSmoothing = "sigmoid", 0.1 },
			"-label-smoothing 0.1 applies to -loss softmax, not sigmoid"},
		{"out", func(c *Config) { c.OutDir = "" }, "no output folder"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.modify(&c)
			err := c.Validate()
			if tc.errHas == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.errHas)
		})
	}
}

// TestReadConfigNamesTheRunsBelow: a folder without config.json that holds runs (a comparison's, or one over seeds)
// is named as such, with its runs; any other folder is asked about.
func TestReadConfigNamesTheRunsBelow(t *testing.T) {
	root := t.TempDir()
	for _, run := range []string{"cmp/bp", "cmp/kp", "seeds/seed-1/bp", "seeds/seed-2/bp", "many/a", "many/b", "many/c", "many/d", "many/e"} {
		require.NoError(t, os.MkdirAll(filepath.Join(root, run), 0o755))
		require.NoError(t, WriteConfig(DefaultConfig(), filepath.Join(root, run)))
	}
	require.NoError(t, os.MkdirAll(filepath.Join(root, "empty"), 0o755))
	for _, tc := range []struct{ dir, errHas string }{
		{"cmp", `"` + root + `/cmp" is not one run but holds 2 (` + root + `/cmp/bp, ` + root + `/cmp/kp): name one of them`},
		{"seeds", `holds 2 (` + root + `/seeds/seed-1/bp, ` + root + `/seeds/seed-2/bp)`},
		{"many", `holds 5 (` + root + `/many/a, ` + root + `/many/b, ` + root + `/many/c, ` + root + `/many/d, …)`},
		{"empty", `(is "` + root + `/empty" the output folder of a nowt run?)`},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			_, err := ReadConfig(filepath.Join(root, tc.dir))
			require.ErrorIs(t, err, fs.ErrNotExist)
			assert.ErrorContains(t, err, tc.errHas)
		})
	}
	_, err := ReadConfig(filepath.Join(root, "cmp", "bp"))
	assert.NoError(t, err)
}
