// Package trainer is nowt's training loop: it wires a model from package models, a learning rule from package
// feedback and a dataset from package input into GoMLX's train.Trainer and train.Loop, with SGD (momentum,
// Nesterov, weight decay, step/cosine/warm-up schedules) whose updates also drive Kolen-Pollack's B, weight-mirror
// steps interleaved with training steps, alignment metrics, evaluation, atomic checkpoints, exact resume, a
// NaN guard, a progress bar and a final summary.
//
// A run that stops early says why with a typed error: [NaNError] (a loss that diverged), [CollapseError] (test
// accuracy at chance, under -chance-guard), [InterruptedError] (Ctrl-C), [StorageError] (a checkpoint or log that
// could not be written) and [OutOfMemoryError] (a device out of memory), each naming what to do next.
//
// It parses no flags: cmd/nowt and notebooks fill a [Config] and call [Train] or [Evaluate].
package trainer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/ui/notebooks"
	"github.com/nowt-ml/nowt/feedback"
	"github.com/nowt-ml/nowt/input"
	"github.com/nowt-ml/nowt/models"
	"golang.org/x/term"
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
	// ImageSize is the side of image-folder (default 224), cifar10-jpeg (default 32) and synthetic images (default 32);
	// the other datasets have one image size, and a non-zero ImageSize with them is an error.
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
	// ClipNorm c > 0 scales each step's gradients together so that their global L2 norm is at most c (see
	// [SGD]); 0, the default, does not clip.
	ClipNorm float64 `json:"clip_norm,omitempty"`
	// Loss is "softmax" (cross-entropy) or "sigmoid" (per-class sigmoid cross-entropy, the released code's).
	Loss string `json:"loss"`
	// LabelSmoothing ε in [0, 1) trains the softmax loss against (1−ε)·onehot + ε/classes instead of the one-hot
	// label (0, the default: none). The test loss stays the plain cross-entropy.
	LabelSmoothing float64 `json:"label_smoothing,omitempty"`
	// DType is the precision of the forward and backward passes: "float32" (or "", the default), or for mixed
	// precision "bfloat16" or "float16", where W, B, biases, batch-norm parameters and statistics, the optimizer's
	// state, the loss and the alignment metrics stay in float32 (see layers.MasterDType).
	DType string `json:"dtype,omitempty"`

	// Seed for initialisation, shuffling, augmentation and mirror noise.
	Seed int64 `json:"seed"`
	// Backend spec for xla.New ("" = $GOMLX_BACKEND, then auto).
	Backend string `json:"backend,omitempty"`
	// Devices is how many devices each training batch is split over (data parallelism; XLA backends, and XLA on
	// CPU on one machine, which exposes as many host devices as Devices asks for, see xla.NewFor):
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
	// Progress shows GoMLX's progress bar on the standard output (meant for a terminal or a notebook); without it
	// each metrics record is printed as one line. [DefaultConfig] sets it where the standard output is a terminal
	// or the program runs in a notebook (GoNB), so that a program whose output goes to a file or a pipe logs plain
	// lines, not the bar's escape sequences.
	Progress bool `json:"-"`
	// Notices receives notices and warnings (resuming, skipped images, data parallelism, the backend); nil
	// sends them to the writer given to [Train] with the records.
	Notices io.Writer `json:"-"`
	// Feed is where [Benchmark] and [BenchmarkRounds] take each timed step's batch ("" is [FeedPipeline]);
	// training always takes the input pipeline's next batch.
	Feed Feed `json:"-"`
	// hostBatches keeps the training set's batches made on the host where they would be indexed (indexedTraining):
	// for the tests that compare the two.
	hostBatches bool
	// noDeferredFeedback updates every KP B at every step, the first layer's included (deferred.go): for the
	// tests that compare the two.
	noDeferredFeedback bool

	// Strict stops at the first unreadable image (corrupt, empty or of an unsupported format) instead of
	// skipping it with a warning.
	Strict bool `json:"strict,omitempty"`
	// NoDivergenceGuard turns off the divergence guard, which stops a run whose loss has grown past
	// [DivergenceFactor] times its start for [DivergenceLogs] records in a row (a non-finite loss always stops it).
	NoDivergenceGuard bool `json:"no_divergence_guard,omitempty"`
	// ChanceGuard, when > 0, stops a run whose test top-1 has been at chance for ChanceGuard evaluations in a row
	// after it had learned ([IsAtChance]): a collapse that the divergence guard cannot see (the loss does not
	// grow). 0, the default, trains on (the trainer warns once).
	ChanceGuard int `json:"chance_guard,omitempty"`
	// Changes records the settings changed when the run was resumed (see [ResumableSettings]).
	Changes []string `json:"changes,omitempty"`

	// Params are context hyperparameters: the rule's (feedback.Param*: wm_*, kp_decay, ss_scale, ...) and the
	// model's (models.Param*), by name. [Config.Validate] refuses a name that no rule or model has and a value of
	// another kind than the parameter's default (mlp_hidden is the string "256", not the number 256).
	Params map[string]any `json:"params,omitempty"`
	// Settings is a GoMLX "-set" string ("name=value;name2=value2") applied last.
	Settings string `json:"settings,omitempty"`

	// alignSize, when > 0, is the run's alignment batch (see alignBatch), set where -eval-batch is overridden.
	alignSize int
}

// DefaultConfig returns the defaults of `nowt train`: an MLP on MNIST under KP for 3 epochs, with the progress bar
// where the standard output is a terminal or a notebook.
func DefaultConfig() Config {
	return Config{
		Model: "mlp", Rule: "kp", Dataset: "mnist",
		Epochs: 3, BatchSize: 128,
		LearningRate: 0.05, Schedule: "cosine", Gamma: 0.1,
		Momentum: 0.9, WeightDecay: 1e-4, Loss: "softmax",
		Seed: 1, OutDir: "runs/demo", KeepCheckpoints: 2, Progress: progressByDefault(),
	}
}

// progressByDefault reports whether the standard output shows a progress bar: a terminal, or a notebook.
func progressByDefault() bool {
	return term.IsTerminal(int(os.Stdout.Fd())) || notebooks.IsNotebook()
}

// ConfigError reports an invalid setting. Flag names the command-line flag that sets it (e.g. "-lr").
type ConfigError struct {
	Flag string
	Msg  string
	// Param is set when a rule hyperparameter is out of its range (its Param names it).
	Param *feedback.ParamError
}

// Error implements error.
func (e *ConfigError) Error() string { return e.Msg }

func invalid(flag, format string, args ...any) error {
	return &ConfigError{Flag: flag, Msg: fmt.Sprintf(format, args...)}
}

// checkNotAFile refuses an -out that names a file, or a link to nothing: whose says whose folder it should be
// ("the run's").
func checkNotAFile(dir, whose string) error {
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		return invalid("-out", "-out %s is a file, not a folder: give %s folder (it is made if missing)", dir, whose)
	}
	for parent := filepath.Dir(dir); parent != filepath.Dir(parent); parent = filepath.Dir(parent) {
		if st, err := os.Stat(parent); err == nil {
			if !st.IsDir() {
				return invalid("-out", "-out %s is inside %s, which is a file, not a folder: give %s folder elsewhere",
					dir, parent, whose)
			}
			break // the nearest existing folder: the rest can be made
		}
	}
	if target, ok := linkToNothing(dir); ok {
		return invalid("-out", "-out %s is a link to %s, which does not exist: make that folder, or remove the link "+
			"to have %s folder made there", dir, target, whose)
	}
	return nil
}

// linkToNothing returns where path leads when it is a symbolic link whose target does not exist.
func linkToNothing(path string) (target string, ok bool) {
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		return "", false
	}
	target, err := os.Readlink(path)
	return target, err == nil
}

// isFinite reports whether v is neither NaN nor infinite.
func isFinite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// Validate checks every setting of the configuration, its hyperparameters (Params and the -set Settings)
// included, without touching any file or building any graph. It returns a [*ConfigError] naming the first
// fault, the command-line flag that sets it and the valid range.
func (c *Config) Validate() error {
	if _, err := feedback.RuleByName(c.Rule); err != nil {
		return invalid("-rule", "-rule: %v", err)
	}
	if !contains(models.Names(), c.Model) {
		return invalid("-model", "-model: unknown model %q: valid models are %s", c.Model, strings.Join(models.Names(), ", "))
	}
	if !contains(input.Names(), c.Dataset) {
		return invalid("-dataset", "-dataset: unknown dataset %q: valid datasets are %s", c.Dataset, strings.Join(input.Names(), ", "))
	}
	nonNegative := []struct {
		flag, what string
		v          int
	}{
		{"-epochs", "training epochs", c.Epochs}, {"-steps", "training steps (0: train for -epochs)", c.Steps},
		{"-eval-batch", "the evaluation batch size (0: -batch)", c.EvalBatchSize},
		{"-train-limit", "a number of training examples (0: all)", c.TrainLimit},
		{"-test-limit", "a number of test examples (0: all)", c.TestLimit},
		{"-image-size", "an image side in pixels (0: the dataset's default)", c.ImageSize},
		{"-workers", "a number of decoding workers (0: all cores)", c.Workers},
		{"-log-every", "a number of steps (0: 4 records per epoch)", c.LogEvery},
		{"-eval-every", "a number of steps (0: each epoch)", c.EvalEvery},
		{"-checkpoint-every", "a number of steps (0: each epoch)", c.CheckpointEvery},
		{"-keep", "a number of checkpoints (0: 2)", c.KeepCheckpoints},
		{"-chance-guard", "a number of test evaluations (0: off)", c.ChanceGuard},
	}
	for _, n := range nonNegative {
		if n.v < 0 {
			return invalid(n.flag, "%s %d: must be ≥ 0, %s", n.flag, n.v, n.what)
		}
	}
	switch {
	case c.Epochs == 0 && c.Steps == 0:
		return invalid("-epochs", "nothing to train: set -epochs or -steps to a positive number")
	case c.BatchSize <= 0:
		return invalid("-batch", "-batch %d: the batch size must be ≥ 1", c.BatchSize)
	case c.ImageSize > 0 && !input.TakesImageSize(c.Dataset):
		return invalid("-image-size", "-image-size %d: dataset %s has images of one fixed size; -image-size applies to %s: "+
			"leave it out", c.ImageSize, c.Dataset, input.ImageSizeDatasets())
	case c.ImageSize > 4096:
		return invalid("-image-size", "-image-size %d: must be at most 4096 pixels (0: the dataset's default)", c.ImageSize)
	case !(c.LearningRate > 0) || !isFinite(c.LearningRate):
		return invalid("-lr", "-lr %g: the learning rate must be a finite number > 0", c.LearningRate)
	case !(c.Momentum >= 0 && c.Momentum < 1):
		return invalid("-momentum", "-momentum %g: must be in [0, 1) (0: plain SGD)", c.Momentum)
	case !(c.WeightDecay >= 0) || !isFinite(c.WeightDecay):
		return invalid("-wd", "-wd %g: the weight decay must be a finite number ≥ 0", c.WeightDecay)
	case !(c.ClipNorm >= 0) || !isFinite(c.ClipNorm):
		return invalid("-clip-norm", "-clip-norm %g: the gradients' norm bound must be a finite number ≥ 0 (0: no clipping)", c.ClipNorm)
	case !(c.Gamma >= 0) || !isFinite(c.Gamma):
		return invalid("-gamma", "-gamma %g: the step schedule's factor must be a finite number > 0", c.Gamma)
	case !(c.WarmupEpochs >= 0) || !isFinite(c.WarmupEpochs):
		return invalid("-warmup", "-warmup %g: the warm-up must be a finite number of epochs ≥ 0", c.WarmupEpochs)
	case c.OutDir == "":
		return invalid("-out", "no output folder: set -out")
	case c.Devices < -1:
		return invalid("-devices", "-devices %d: must be -1 (all), 0 or 1 (one device) or the number of devices", c.Devices)
	case c.Devices > 1 && c.BatchSize%c.Devices != 0:
		return invalid("-devices", "batch size %d is not a multiple of the %d devices it is split over: change -batch or -devices",
			c.BatchSize, c.Devices)
	}
	for _, m := range c.Milestones {
		if !(m >= 0) || !isFinite(m) {
			return invalid("-milestones", "-milestones %v: each must be a finite number of epochs ≥ 0", c.Milestones)
		}
	}
	if !sort.Float64sAreSorted(c.Milestones) {
		return invalid("-milestones", "-milestones %v: must be increasing", c.Milestones)
	}
	switch c.Schedule {
	case "constant", "cosine":
	case "step":
		if len(c.Milestones) == 0 {
			return invalid("-milestones", "-schedule step needs -milestones (epochs at which the learning rate is multiplied by -gamma %g)", c.Gamma)
		}
		if c.Gamma == 0 {
			return invalid("-gamma", "-gamma 0: the step schedule's factor must be > 0")
		}
	default:
		return invalid("-schedule", "-schedule: unknown schedule %q: valid schedules are constant, step, cosine", c.Schedule)
	}
	switch c.Loss {
	case "softmax", "sigmoid":
	default:
		return invalid("-loss", "-loss: unknown loss %q: valid losses are softmax, sigmoid", c.Loss)
	}
	switch {
	case !(c.LabelSmoothing >= 0 && c.LabelSmoothing < 1):
		return invalid("-label-smoothing", "-label-smoothing %g: must be in [0, 1) (0: none; 0.1 is usual)", c.LabelSmoothing)
	case c.LabelSmoothing > 0 && c.Loss != "softmax":
		return invalid("-label-smoothing", "-label-smoothing %g applies to -loss softmax, not %s", c.LabelSmoothing, c.Loss)
	}
	if _, err := c.computeDType(); err != nil {
		return err
	}
	_, err := newContext(*c)
	return err
}

// DTypes are the valid values of -dtype (Config.DType).
var DTypes = []string{"float32", "bfloat16", "float16"}

// evalBatch is the evaluation batch size: EvalBatchSize, or BatchSize where it is 0.
func (c Config) evalBatch() int { return positiveOr(c.EvalBatchSize, c.BatchSize) }

// alignBatch is how many of the test set's first examples the alignment metrics are measured on: the run's
// evaluation batch as the run started. A resume or `nowt eval` with another -eval-batch changes how the test set
// is evaluated (its memory), not the examples the angles are measured on, so a run's angle series stays one
// series; a resume's Changes keep the batch it started with ("resumed at step n: -eval-batch 500 → 1000").
func (c Config) alignBatch() int {
	if c.alignSize > 0 {
		return c.alignSize
	}
	if old, changed := c.valueBeforeResumes("eval_batch_size"); changed {
		if n, err := strconv.Atoi(old); err == nil && n > 0 {
			return n
		}
		return c.BatchSize // unset or 0: -batch
	}
	return c.evalBatch()
}

// valueBeforeResumes returns the value (as config.json writes it, "(unset)" where it was unset) that the setting
// key had before the first resume recorded in c.Changes to change it, and whether any did. Each change reads
// "resumed at step n: -flag old → new, -flag2 old → new" (see [Train]).
func (c Config) valueBeforeResumes(key string) (old string, changed bool) {
	prefix := settingName(key) + " "
	for _, change := range c.Changes {
		_, diffs, _ := strings.Cut(change, ": ")
		for _, diff := range strings.Split(diffs, ", ") {
			if rest, ok := strings.CutPrefix(diff, prefix); ok {
				old, _, _ = strings.Cut(rest, " → ")
				return old, true
			}
		}
	}
	return "", false
}

// computeDType is the dtype of the forward and backward passes (Config.DType).
func (c *Config) computeDType() (dtypes.DType, error) {
	switch c.DType {
	case "", "float32":
		return dtypes.Float32, nil
	case "bfloat16":
		return dtypes.BFloat16, nil
	case "float16":
		return dtypes.Float16, nil
	}
	return dtypes.InvalidDType, invalid("-dtype", "-dtype: unknown dtype %q: valid dtypes are %s", c.DType, strings.Join(DTypes, ", "))
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ResumableSettings are the settings (config.json keys) that may change when a run is resumed: how long it
// trains (more epochs or steps, never fewer), its peak learning rate and gradient clipping (a lower rate or a
// bound on the gradients' norm after a divergence, say), how it reports, checkpoints and evaluates, and where it
// runs. Any other difference is refused (see [Train]); the changes are recorded in the run's config.json
// (Changes).
var ResumableSettings = []string{"epochs", "steps", "learning_rate", "clip_norm", "log_every", "eval_every",
	"checkpoint_every", "keep_checkpoints", "eval_batch_size", "backend", "devices", "workers", "strict",
	"no_divergence_guard", "chance_guard"}

// flagNames maps config.json keys to the command-line flags that set them, for messages.
var flagNames = map[string]string{
	"model": "-model", "rule": "-rule", "dataset": "-dataset", "data_path": "-data", "train_limit": "-train-limit",
	"test_limit": "-test-limit", "augment": "-augment", "image_size": "-image-size", "workers": "-workers",
	"epochs": "-epochs", "steps": "-steps", "batch_size": "-batch", "eval_batch_size": "-eval-batch",
	"learning_rate": "-lr", "schedule": "-schedule", "milestones": "-milestones", "gamma": "-gamma",
	"warmup_epochs": "-warmup", "momentum": "-momentum", "nesterov": "-nesterov", "weight_decay": "-wd",
	"clip_norm": "-clip-norm", "loss": "-loss", "label_smoothing": "-label-smoothing", "dtype": "-dtype", "seed": "-seed",
	"backend": "-backend", "devices": "-devices", "out_dir": "-out", "log_every": "-log-every", "eval_every": "-eval-every",
	"checkpoint_every": "-checkpoint-every", "keep_checkpoints": "-keep", "settings": "-set", "strict": "-strict",
	"no_divergence_guard": "-divergence-guard", "chance_guard": "-chance-guard",
}

// settingName names a config.json key (or params.<name>) as the user sets it: its flag, or "-set <name>" for a
// hyperparameter without one.
func settingName(key string) string {
	if f, ok := flagNames[key]; ok {
		return f
	}
	if name, ok := strings.CutPrefix(key, "params."); ok {
		for _, s := range settingFlags() {
			if s.name == name && s.flag != "" {
				return "-" + s.flag
			}
		}
		return "-set " + name
	}
	return key
}

// settingFlag is a declared rule, model or layer setting and its flag, without "-" ("" for none).
type settingFlag struct{ name, flag string }

// settingFlags lists every declared setting (feedback.AllSettings, then models.Settings) with its flag.
func settingFlags() []settingFlag {
	var all []settingFlag
	for _, s := range feedback.AllSettings() {
		flag := ""
		if s.Flag != "-" {
			flag = s.FlagName()
		}
		all = append(all, settingFlag{s.Name, flag})
	}
	for _, s := range models.Settings() {
		all = append(all, settingFlag{s.Name, s.Flag})
	}
	return all
}

// configChange is one setting in which two configurations differ: its config.json key and its two values.
type configChange struct {
	key      string
	old, now json.RawMessage // nil where unset
}

// String names the change as the user sets it: "-lr 0.05 → 0.01", "-set bn_momentum (unset) → 0.5".
func (c configChange) String() string {
	return fmt.Sprintf("%s %s → %s", settingName(c.key), orNone(c.old), orNone(c.now))
}

// configChanges lists the settings (config.json's keys, params flattened) in which now differs from old, by key.
func configChanges(old, now Config) []configChange {
	om, nm := configMap(old), configMap(now)
	var changes []configChange
	for _, k := range sortedMapKeys(om, nm) {
		if !bytes.Equal(om[k], nm[k]) {
			changes = append(changes, configChange{k, om[k], nm[k]})
		}
	}
	return changes
}

// resumeConfig returns the configuration of a resumed run: the stored one with the changes asked for in given,
// which must all be in [ResumableSettings] (epochs and steps only growing); the changes are returned as
// "-flag old → new" for the record. Any other difference is a [*ConfigError] listing them all.
func resumeConfig(stored, given Config) (Config, []string, error) {
	// Where and how it reports never counts as a change, nor do other rules' hyperparameters (a comparison
	// retuning wm_batch resumes its kp run): the run keeps its stored values of those.
	stored.Progress, stored.Notices, stored.OutDir = given.Progress, given.Notices, given.OutDir
	given = given.withStoredOtherRulesParams(stored)
	given.Changes = stored.Changes
	var changes, refused []string
	for _, c := range configChanges(stored, given) {
		allowed := contains(ResumableSettings, c.key)
		if c.key == "epochs" || c.key == "steps" {
			var old, now int
			_ = json.Unmarshal(c.old, &old)
			_ = json.Unmarshal(c.now, &now)
			allowed = now > old && (c.key == "steps" || (stored.Steps == 0 && given.Steps == 0))
		}
		if allowed {
			changes = append(changes, c.String())
		} else {
			refused = append(refused, c.String())
		}
	}
	if len(refused) > 0 {
		return stored, nil, invalid(settingName(strings.Fields(refused[0])[0]),
			"cannot resume %s with other settings than it was started with: %s. Only these may change on resume: %s "+
				"(-epochs and -steps only growing). Resume without them, or start a new run in another -out",
			stored.OutDir, strings.Join(refused, "; "), ResumableFlags())
	}
	return given, changes, nil
}

// ResumableFlags lists the command-line flags of [ResumableSettings], comma-separated.
func ResumableFlags() string {
	names := make([]string, len(ResumableSettings))
	for i, k := range ResumableSettings {
		names[i] = settingName(k)
	}
	return strings.Join(names, ", ")
}

func orNone(v json.RawMessage) string {
	if v == nil {
		return "(unset)"
	}
	return string(v)
}

// withStoredResumeChanges returns c with stored's values of the settings that a recorded resume of the stored run
// changed (stored.Changes, e.g. "-lr 30 → 0.05" after a divergence), other than its length (-epochs and -steps,
// which a comparison may still grow) and -chance-guard (each invocation says whether to stop a collapsed run):
// comparing the two configurations then ignores them, and resuming the run keeps them. c's non-JSON fields
// (Progress, Notices) are kept.
func (c Config) withStoredResumeChanges(stored Config) Config {
	var keys []string
	for _, k := range ResumableSettings {
		if k == "epochs" || k == "steps" || k == "chance_guard" {
			continue
		}
		if _, changed := stored.valueBeforeResumes(k); changed {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return c
	}
	mine, theirs := configMap(c), configMap(stored)
	for _, k := range keys {
		if v, ok := theirs[k]; ok {
			mine[k] = v
		} else {
			delete(mine, k)
		}
	}
	data, err := json.Marshal(mine) // configMap's "params.<name>" keys and its dropped "changes" are restored below
	if err != nil {
		return c
	}
	var out Config
	if err := json.Unmarshal(data, &out); err != nil {
		return c
	}
	out.Params, out.Changes, out.Progress, out.Notices = c.Params, c.Changes, c.Progress, c.Notices
	return out
}

// withStoredOtherRulesParams returns c with stored's values (or absence) of the hyperparameters that only rules
// other than c.Rule read (another rule's setting, [feedback.Rule.Settings], that c.Rule does not list, e.g.
// wm_batch in a kp run): they cannot change c's run, so comparing the two configurations ignores them and the run
// keeps its stored values. Unchanged when either has -set settings, which may give some scopes another rule. c's
// Params map is copied, not changed.
func (c Config) withStoredOtherRulesParams(stored Config) Config {
	rule, err := feedback.RuleByName(c.Rule)
	if err != nil || c.Settings != "" || stored.Settings != "" {
		return c
	}
	own := map[string]bool{}
	for _, s := range rule.Settings() {
		own[s.Name] = true
	}
	foreign := map[string]bool{}
	for _, r := range feedback.Rules() {
		for _, s := range r.Settings() {
			foreign[s.Name] = !own[s.Name]
		}
	}
	params := maps.Clone(c.Params)
	for k := range params {
		if foreign[k] {
			delete(params, k)
		}
	}
	for k, v := range stored.Params {
		if foreign[k] {
			if params == nil {
				params = map[string]any{}
			}
			params[k] = v
		}
	}
	if len(params) == 0 {
		params = nil
	}
	c.Params = params
	return c
}

// configMap flattens c's JSON form into keys (params as params.<name>) and their JSON values.
func configMap(c Config) map[string]json.RawMessage {
	data, _ := json.Marshal(c)
	var m map[string]json.RawMessage
	_ = json.Unmarshal(data, &m)
	if raw, ok := m["params"]; ok {
		delete(m, "params")
		var params map[string]json.RawMessage
		_ = json.Unmarshal(raw, &params)
		for k, v := range params {
			m["params."+k] = v
		}
	}
	delete(m, "changes")
	return m
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
		if runs := runsBelow(dir); len(runs) > 0 {
			return c, fmt.Errorf("reading the run's configuration: %w: %q is not one run but holds %d (%s): name one of them",
				err, dir, len(runs), shortList(runs, 4))
		}
		return c, fmt.Errorf("reading the run's configuration: %w (is %q the output folder of a nowt run?)", err, dir)
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("decoding %s: %w: the run's settings file is damaged (nowt writes it whole, atomically); "+
			"restore it from a copy, or train anew into another -out", path, err)
	}
	return c, nil
}

// runsBelow lists the run folders (holding a config.json) one or two levels below dir, as nowt compare writes them
// (<out>/<rule>, and <out>/seed-<n>/<rule> over seeds), sorted.
func runsBelow(dir string) []string {
	var runs []string
	for _, pattern := range []string{"*", filepath.Join("*", "*")} {
		found, _ := filepath.Glob(filepath.Join(dir, pattern, configFileName))
		for _, f := range found {
			runs = append(runs, filepath.Dir(f))
		}
		if len(runs) > 0 {
			break
		}
	}
	slices.Sort(runs)
	return runs
}

// shortList joins the first n items with ", ", adding "…" when there are more.
func shortList(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:n], ", ") + ", …"
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
