// Package trainer is nowt's training loop: it wires a model from package models, a learning rule from package
// feedback and a dataset from package input into GoMLX's train.Trainer and train.Loop, with SGD (momentum,
// Nesterov, weight decay, step/cosine/warm-up schedules) whose updates also drive Kolen-Pollack's B, weight-mirror
// steps interleaved with training steps, alignment metrics, evaluation, atomic checkpoints, exact resume, a
// NaN guard, a progress bar and a final summary.
//
// It parses no flags: cmd/nowt and notebooks fill a [Config] and call [Train] or [Evaluate].
package trainer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/nowt-ml/nowt/feedback"
	"github.com/nowt-ml/nowt/input"
	"github.com/nowt-ml/nowt/models"
)

// Config describes one training run. Its JSON form is the run's config.json.
type Config struct {
	// Model is a name from models.Names(); Rule a name from feedback.RuleNames().
	Model string `json:"model"`
	Rule  string `json:"rule"`

	// Dataset is a name from input.Names(); DataPath its location ("" = the dataset's default).
	Dataset  string `json:"dataset"`
	DataPath string `json:"data_path,omitempty"`
	// TrainLimit and TestLimit use only the first N examples (0 = all).
	TrainLimit int `json:"train_limit,omitempty"`
	TestLimit  int `json:"test_limit,omitempty"`
	// Augment enables the dataset's training augmentation.
	Augment bool `json:"augment"`
	// ImageSize is the side of image-folder and synthetic images (default 224).
	ImageSize int `json:"image_size,omitempty"`
	// Workers for decoding (0 = all cores).
	Workers int `json:"workers,omitempty"`

	// Epochs of training; Steps, if > 0, overrides it with a number of training steps.
	Epochs int `json:"epochs"`
	Steps  int `json:"steps,omitempty"`
	// BatchSize of training; EvalBatchSize of evaluation (0 = BatchSize).
	BatchSize     int `json:"batch_size"`
	EvalBatchSize int `json:"eval_batch_size,omitempty"`

	// LearningRate is the peak learning rate; Schedule is "constant", "step" (×Gamma at each of Milestones,
	// given in epochs) or "cosine" (to zero at the end); WarmupEpochs of linear warm-up precede it.
	LearningRate float64   `json:"learning_rate"`
	Schedule     string    `json:"schedule"`
	Milestones   []float64 `json:"milestones,omitempty"`
	Gamma        float64   `json:"gamma,omitempty"`
	WarmupEpochs float64   `json:"warmup_epochs,omitempty"`
	// Momentum (0 = plain SGD), Nesterov momentum, and WeightDecay (L2, applied to weights and kernels, and to
	// KP's B; not to biases nor batch-norm parameters).
	Momentum    float64 `json:"momentum"`
	Nesterov    bool    `json:"nesterov,omitempty"`
	WeightDecay float64 `json:"weight_decay"`
	// Loss is "softmax" (cross-entropy) or "sigmoid" (per-class sigmoid cross-entropy, the released code's).
	Loss string `json:"loss"`

	// Seed for initialisation, shuffling, augmentation and mirror noise.
	Seed int64 `json:"seed"`
	// Backend spec for xla.New ("" = $GOMLX_BACKEND, then auto).
	Backend string `json:"backend,omitempty"`
	// Devices is how many devices each training batch is split over (data parallelism; XLA backends, and the
	// "virtual:<n>" test backend):
	// 0 or 1 trains on one device, -1 on all the backend's devices, n ≥ 2 on the first n. BatchSize is the
	// global batch and must be a multiple of the devices used. See package xla and [Train].
	Devices int `json:"devices,omitempty"`

	// OutDir receives config.json, metrics.jsonl and checkpoints/.
	OutDir string `json:"out_dir"`
	// LogEvery steps a metrics record is written (0 = 4 times per epoch); EvalEvery steps the test set is
	// evaluated (0 = at the end of each epoch); CheckpointEvery steps a checkpoint is written (0 = each epoch).
	LogEvery        int `json:"log_every,omitempty"`
	EvalEvery       int `json:"eval_every,omitempty"`
	CheckpointEvery int `json:"checkpoint_every,omitempty"`
	// KeepCheckpoints is how many checkpoints to keep (default 2).
	KeepCheckpoints int `json:"keep_checkpoints,omitempty"`
	// Progress shows GoMLX's progress bar.
	Progress bool `json:"-"`

	// Params are context hyperparameters: the rule's (feedback.Param*: wm_*, kp_decay, ss_scale, ...) and the
	// model's (models.Param*), by name.
	Params map[string]any `json:"params,omitempty"`
	// Settings is a GoMLX "-set" string ("name=value;name2=value2") applied last.
	Settings string `json:"settings,omitempty"`
}

// DefaultConfig returns the defaults: the README's demo (an MLP on MNIST under KP, 3 epochs).
func DefaultConfig() Config {
	return Config{
		Model: "mlp", Rule: "kp", Dataset: "mnist",
		Epochs: 3, BatchSize: 128,
		LearningRate: 0.05, Schedule: "cosine", Gamma: 0.1,
		Momentum: 0.9, WeightDecay: 1e-4, Loss: "softmax",
		Seed: 1, OutDir: "runs/demo", KeepCheckpoints: 2, Progress: true,
	}
}

// Validate checks the configuration and returns an error naming the first fault and what to do.
func (c *Config) Validate() error {
	if _, err := feedback.RuleByName(c.Rule); err != nil {
		return err
	}
	if !contains(models.Names(), c.Model) {
		return fmt.Errorf("unknown model %q: valid models are %s", c.Model, strings.Join(models.Names(), ", "))
	}
	if !contains(input.Names(), c.Dataset) {
		return fmt.Errorf("unknown dataset %q: valid datasets are %s", c.Dataset, strings.Join(input.Names(), ", "))
	}
	switch {
	case c.Epochs <= 0 && c.Steps <= 0:
		return fmt.Errorf("nothing to train: set epochs (got %d) or steps (got %d) to a positive number", c.Epochs, c.Steps)
	case c.BatchSize <= 0:
		return fmt.Errorf("batch size must be positive, got %d", c.BatchSize)
	case c.LearningRate <= 0:
		return fmt.Errorf("learning rate must be positive, got %g", c.LearningRate)
	case c.Momentum < 0 || c.Momentum >= 1:
		return fmt.Errorf("momentum must be in [0, 1), got %g", c.Momentum)
	case c.WeightDecay < 0:
		return fmt.Errorf("weight decay must be ≥ 0, got %g", c.WeightDecay)
	case c.OutDir == "":
		return fmt.Errorf("no output folder: set out_dir (-out)")
	case c.Devices < -1:
		return fmt.Errorf("devices must be -1 (all), 0 or 1 (one device) or the number of devices, got %d", c.Devices)
	case c.Devices > 1 && c.BatchSize%c.Devices != 0:
		return fmt.Errorf("batch size %d is not a multiple of the %d devices it is split over: change -batch or -devices",
			c.BatchSize, c.Devices)
	}
	switch c.Schedule {
	case "constant", "cosine":
	case "step":
		if len(c.Milestones) == 0 {
			return fmt.Errorf("schedule \"step\" needs milestones (epochs at which the learning rate is multiplied by gamma=%g)", c.Gamma)
		}
		if !sort.Float64sAreSorted(c.Milestones) {
			return fmt.Errorf("milestones must be increasing, got %v", c.Milestones)
		}
	default:
		return fmt.Errorf("unknown schedule %q: valid schedules are constant, step, cosine", c.Schedule)
	}
	switch c.Loss {
	case "softmax", "sigmoid":
	default:
		return fmt.Errorf("unknown loss %q: valid losses are softmax, sigmoid", c.Loss)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// configFileName is the run's configuration, in its output folder.
const configFileName = "config.json"

// WriteConfig writes c as dir/config.json, atomically.
func WriteConfig(c Config, dir string) error {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the configuration: %w", err)
	}
	return writeFileAtomic(filepath.Join(dir, configFileName), append(data, '\n'))
}

// ReadConfig reads dir/config.json.
func ReadConfig(dir string) (Config, error) {
	var c Config
	path := filepath.Join(dir, configFileName)
	data, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("reading the run's configuration: %w (is %q the output folder of a nowt run?)", err, dir)
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("decoding %s: %w", path, err)
	}
	return c, nil
}

// writeFileAtomic writes data to a temporary file beside path, syncs it and renames it over path.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("syncing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("renaming into %s: %w", path, err)
	}
	return nil
}
