package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/nowt-ml/nowt/feedback"
	"github.com/nowt-ml/nowt/input"
	"github.com/nowt-ml/nowt/models"
	"github.com/nowt-ml/nowt/trainer"
	"github.com/nowt-ml/nowt/xla"
	"golang.org/x/term"
)

// runFlags are the flags shared by train, compare and bench: they fill a trainer.Config.
type runFlags struct {
	cfg        trainer.Config
	milestones string
	// params maps a flag name to the context hyperparameter it sets (only when given on the command line).
	params map[string]paramFlag
}

type paramFlag struct {
	param string
	value func() any
}

func addRunFlags(fs *flag.FlagSet, defaults trainer.Config) *runFlags {
	f := &runFlags{cfg: defaults, params: map[string]paramFlag{}}
	c := &f.cfg
	fs.StringVar(&c.Model, "model", c.Model, "model: "+strings.Join(models.Names(), ", ")+" (see nowt models)")
	fs.StringVar(&c.Rule, "rule", c.Rule, "learning rule: "+strings.Join(feedback.RuleNames(), ", ")+" (see nowt rules)")
	fs.StringVar(&c.Dataset, "dataset", c.Dataset, "dataset: "+strings.Join(input.Names(), ", "))
	fs.StringVar(&c.DataPath, "data", c.DataPath, "dataset location (default: mnist from the Go module cache, fashion-mnist from /usr/share/datasets/fashion-mnist, cifar10-jpeg from ../shared/data; synthetic: a spec like examples=1024,size=32,channels=3,classes=10)")
	fs.IntVar(&c.TrainLimit, "train-limit", c.TrainLimit, "use only the first N training examples (0: all)")
	fs.IntVar(&c.TestLimit, "test-limit", c.TestLimit, "use only the first N test examples (0: all)")
	fs.BoolVar(&c.Augment, "augment", c.Augment, "training augmentation (CIFAR: pad-crop-flip; image folders: random-resized crop and flip)")
	fs.IntVar(&c.ImageSize, "image-size", c.ImageSize, "image side for image folders (0: 224), cifar10-jpeg (0: 32) and synthetic data (0: 32; nowt bench: 224); other datasets have one size")
	fs.IntVar(&c.Workers, "workers", c.Workers, "decoding workers (0: all cores)")
	fs.IntVar(&c.Epochs, "epochs", c.Epochs, "training epochs")
	fs.IntVar(&c.Steps, "steps", c.Steps, "training steps (overrides -epochs when > 0)")
	fs.IntVar(&c.BatchSize, "batch", c.BatchSize, "training batch size")
	fs.IntVar(&c.EvalBatchSize, "eval-batch", c.EvalBatchSize, "evaluation batch size (0: -batch)")
	fs.Float64Var(&c.LearningRate, "lr", c.LearningRate, "peak learning rate")
	fs.StringVar(&c.Schedule, "schedule", c.Schedule, "learning-rate schedule: constant, step (×gamma at -milestones) or cosine")
	fs.StringVar(&f.milestones, "milestones", "", "epochs at which the step schedule multiplies the rate by -gamma, e.g. 30,60,80")
	fs.Float64Var(&c.Gamma, "gamma", c.Gamma, "step schedule factor")
	fs.Float64Var(&c.WarmupEpochs, "warmup", c.WarmupEpochs, "epochs of linear learning-rate warm-up")
	fs.Float64Var(&c.Momentum, "momentum", c.Momentum, "SGD momentum (0: plain SGD)")
	fs.BoolVar(&c.Nesterov, "nesterov", c.Nesterov, "Nesterov momentum")
	fs.Float64Var(&c.WeightDecay, "wd", c.WeightDecay, "weight decay (weights, kernels and KP's B; not biases nor batch norm)")
	fs.Float64Var(&c.ClipNorm, "clip-norm", c.ClipNorm, "scale each step's gradients (all of them, KP's B included) so that their global L2 norm is at most this (0: no clipping)")
	fs.StringVar(&c.Loss, "loss", c.Loss, "loss: softmax (cross-entropy) or sigmoid (per-class, as the authors' released code)")
	fs.Float64Var(&c.LabelSmoothing, "label-smoothing", c.LabelSmoothing, "softmax loss against (1-ε)·onehot + ε/classes (0: none); the test loss stays the plain cross-entropy")
	if c.DType == "" { // the stored config of a resumed run, or the defaults, may leave it empty
		c.DType = "float32"
	}
	fs.StringVar(&c.DType, "dtype", c.DType, "precision of the forward and backward passes: float32, or mixed precision bfloat16 or float16 (W, B, batch-norm statistics, optimizer state and alignment metrics stay float32)")
	fs.Int64Var(&c.Seed, "seed", c.Seed, "random seed (initialisation, shuffling, augmentation, mirror noise)")
	fs.StringVar(&c.Backend, "backend", c.Backend, xla.SpecHelp)
	fs.IntVar(&c.Devices, "devices", c.Devices, "devices each batch is split over (data parallelism: XLA backends; on xla:cpu, host devices sharing the cores, to try it on one machine): 1 one device, -1 all, n the first n; -batch is the global batch")
	fs.StringVar(&c.OutDir, "out", c.OutDir, "output folder: config.json, metrics.jsonl, checkpoints/")
	fs.IntVar(&c.LogEvery, "log-every", c.LogEvery, "steps between metrics records (0: 4 per epoch)")
	fs.IntVar(&c.EvalEvery, "eval-every", c.EvalEvery, "steps between test evaluations (0: each epoch)")
	fs.IntVar(&c.CheckpointEvery, "checkpoint-every", c.CheckpointEvery, "steps between checkpoints (0: each epoch)")
	fs.IntVar(&c.KeepCheckpoints, "keep", c.KeepCheckpoints, "checkpoints to keep")
	fs.BoolVar(&c.Progress, "progress", c.Progress, "show the progress bar (default: only when the output is a terminal; else one line per metrics record)")
	fs.BoolVar(&c.Strict, "strict", c.Strict, "stop at the first unreadable image instead of skipping it with a warning")
	fs.BoolFunc("divergence-guard", fmt.Sprintf("stop a run whose loss stays over %d× its start for %d records (=false: train on) (default %v)",
		trainer.DivergenceFactor, trainer.DivergenceLogs, !c.NoDivergenceGuard), func(v string) error {
		on, err := strconv.ParseBool(v)
		c.NoDivergenceGuard = !on
		return err
	})
	fs.IntVar(&c.ChanceGuard, "chance-guard", c.ChanceGuard, "stop a run whose test top-1 has been at chance for this many evaluations in a row after it had learned (0: train on, with a warning)")
	fs.StringVar(&c.Settings, "set", c.Settings, `context hyperparameters, "name=value;name2=value2" (scoped: "/model/fc/feedback_rule=bp"); see nowt rules -v`)

	// Rule and model hyperparameters, set in the context only when given.
	for _, st := range feedback.AllSettings() { // Generated from the rules' declared settings.
		if name := st.FlagName(); name != "-" {
			usage := st.Doc
			if r := st.Range(); r != "" {
				usage += " " + r
			}
			f.setting(fs, name, st.Name, st.Default, usage)
		}
	}
	for _, st := range models.Settings() { // The models' declared settings that have a flag.
		if st.Flag != "" {
			usage := st.Doc
			if st.Valid != "" {
				usage += " (" + st.Valid + ")"
			}
			f.setting(fs, st.Flag, st.Name, st.Default, usage)
		}
	}
	return f
}

// setting adds the flag name for the context parameter param, typed by its default def (a float64, int, bool or
// string: no flag for another type); the parameter is set only when the flag is given.
func (f *runFlags) setting(fs *flag.FlagSet, name, param string, def any, usage string) {
	var value func() any
	switch d := def.(type) {
	case float64:
		v := fs.Float64(name, d, usage)
		value = func() any { return *v }
	case int:
		v := fs.Int(name, d, usage)
		value = func() any { return *v }
	case bool:
		v := fs.Bool(name, d, usage)
		value = func() any { return *v }
	case string:
		v := fs.String(name, d, usage)
		value = func() any { return *v }
	default: // settings declare one of the four (feedback's and models' tests hold them to it)
		return
	}
	f.params[name] = paramFlag{param, value}
}

// config returns the configuration, with the hyperparameter flags that were given.
func (f *runFlags) config(fs *flag.FlagSet) (trainer.Config, error) {
	c := f.cfg
	// Rule and model names are lower case ("-rule BP" trains bp, and config.json says so).
	c.Rule, c.Model = strings.ToLower(strings.TrimSpace(c.Rule)), strings.ToLower(strings.TrimSpace(c.Model))
	c.Params = map[string]any{}
	for k, v := range f.cfg.Params {
		c.Params[k] = v
	}
	fs.Visit(func(fl *flag.Flag) {
		if p, ok := f.params[fl.Name]; ok {
			c.Params[p.param] = p.value()
		}
	})
	if len(c.Params) == 0 {
		c.Params = nil
	}
	if c.DType == "float32" {
		c.DType = "" // the default: config.json stays as it was before -dtype existed
	}
	if !flagGiven(fs, "milestones") {
		return c, nil
	}
	c.Milestones = nil
	for _, m := range splitList(f.milestones) {
		v, err := strconv.ParseFloat(m, 64)
		if err != nil {
			return c, usagef("-milestones %q: %q is not a number of epochs", f.milestones, m)
		}
		c.Milestones = append(c.Milestones, v)
	}
	return c, nil
}

// explain rewrites a rule hyperparameter's error to name the flag that set it (or -set).
func (f *runFlags) explain(fs *flag.FlagSet, err error) error {
	var cfgErr *trainer.ConfigError
	if !errors.As(err, &cfgErr) {
		return err
	}
	p := cfgErr.Param
	if p == nil { // A model's hyperparameter: name its flag when one set it.
		for name, pf := range f.params {
			if flagGiven(fs, name) && strings.Contains(cfgErr.Msg, pf.param+"=") {
				return &trainer.ConfigError{Flag: "-" + name, Msg: "-" + name + ": " + cfgErr.Msg}
			}
		}
		return err
	}
	for name, pf := range f.params {
		if pf.param == p.Param && flagGiven(fs, name) && (p.Scope == "" || p.Scope == "/") {
			return &trainer.ConfigError{Flag: "-" + name, Param: p,
				Msg: fmt.Sprintf("-%s %v: must be %s (context parameter %s)", name, p.Value, p.Valid, p.Param)}
		}
	}
	return &trainer.ConfigError{Flag: "-set", Param: p, Msg: "-set " + p.Error()}
}

// isTerminal reports whether w is a terminal (the progress bar's default).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// trainFlagSet is train's flag set, with defaults.
func trainFlagSet(defaults trainer.Config, stderr io.Writer) (*flag.FlagSet, *runFlags, *bool) {
	fs := newFlagSet("train", "[flags]",
		"Trains a model under a learning rule, writing config.json, metrics.jsonl (loss, accuracy, test top-1/top-5,\n"+
			"learning rate, images/s, per-layer weight and delta angles) and checkpoints to -out (one run at a time: the\n"+
			"folder is locked). -resume continues the run in -out exactly where its last checkpoint left it (Ctrl-C writes\n"+
			"one and stops); it keeps the run's settings, and refuses a changed one except\n"+
			trainer.ResumableFlags()+"\n"+
			"(-epochs and -steps only growing), which it records in config.json.\n"+
			"Unreadable images are skipped with a warning (-strict stops instead; nowt check lists them).\n\n"+
			"Example: nowt train -model resnet20 -rule kp -dataset cifar10-jpeg -augment -epochs 30 -out runs/r20-kp",
		stderr)
	rf := addRunFlags(fs, defaults)
	resume := fs.Bool("resume", false, "continue the run in -out from its newest checkpoint")
	return fs, rf, resume
}

func runTrain(args []string, stdout, stderr io.Writer) error {
	defaults := trainer.DefaultConfig()
	defaults.Progress = isTerminal(stdout)
	fs, rf, resume := trainFlagSet(defaults, stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *resume {
		// The run's own settings are the defaults: the flags given are the changes asked for.
		if stored, err := trainer.ReadConfig(rf.cfg.OutDir); err == nil {
			stored.Progress = defaults.Progress
			fs, rf, resume = trainFlagSet(stored, io.Discard)
			if err := parseFlags(fs, args); err != nil {
				return err
			}
		}
	}
	cfg, err := rf.config(fs)
	if err != nil {
		return err
	}
	cfg.Notices = stderr
	if err := cfg.Validate(); err != nil {
		return rf.explain(fs, err)
	}
	goCtx, stop := interruptible(stderr)
	defer stop()
	res, err := trainer.Train(goCtx, cfg, stdout, *resume)
	if res != nil && res.Steps > 0 {
		_ = trainer.WriteSummary(stdout, res)
	}
	return rf.explain(fs, err)
}

func runEval(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("eval", "-out DIR [-checkpoint NAME] [-data PATH] [-test-limit N] [-eval-batch N] [-backend SPEC]",
		"Evaluates a checkpoint of the run in -out (the newest readable one by default) on its test set: top-1,\n"+
			"top-5, loss and per-layer alignment, beside the best test top-1 the run logged.", stderr)
	out := fs.String("out", "", "the run's output folder (holding config.json and checkpoints/)")
	checkpoint := fs.String("checkpoint", "", "checkpoint to evaluate: a file name in -out/checkpoints or a path (default: the newest readable one)")
	data := fs.String("data", "", "dataset location (default: the run's)")
	testLimit := fs.Int("test-limit", 0, "use only the first N test examples (0: the run's limit, -1: all)")
	evalBatch := fs.Int("eval-batch", 0, "evaluation batch size (0: the run's); the result does not depend on it")
	backend := fs.String("backend", "", xla.SpecHelp)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usagef("-out is required: the output folder of a nowt train run")
	}
	if *testLimit < -1 {
		return usagef("-test-limit %d: must be ≥ -1 (0: the run's limit, -1: all)", *testLimit)
	}
	if *evalBatch < 0 {
		return usagef("-eval-batch %d: must be ≥ 0 (0: the run's)", *evalBatch)
	}
	res, err := trainer.EvaluateWith(*out, trainer.EvalOptions{Checkpoint: *checkpoint, DataPath: *data,
		TestLimit: *testLimit, EvalBatch: *evalBatch, Backend: *backend, Notices: stderr}, stdout)
	if err != nil {
		return err
	}
	return trainer.WriteSummary(stdout, res)
}

// flagGiven reports whether the flag name was set on the command line.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}
