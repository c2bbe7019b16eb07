package trainer

import (
	gocontext "context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/distributed"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/context/checkpoints"
	"github.com/gomlx/gomlx/pkg/ml/datasets"
	"github.com/gomlx/gomlx/pkg/ml/train"
	"github.com/gomlx/gomlx/pkg/ml/train/metrics"
	"github.com/gomlx/gomlx/pkg/ml/train/optimizers"
	"github.com/gomlx/gomlx/ui/commandline"
	"github.com/nowt-ml/nowt/feedback"
	"github.com/nowt-ml/nowt/input"
	"github.com/nowt-ml/nowt/models"
	"github.com/nowt-ml/nowt/xla"
)

// Result summarises a run.
type Result struct {
	// Config is the run's configuration (for a resumed run, the stored one).
	Config Config
	// Steps done in total, and the epochs they make.
	Steps  int
	Epochs float64
	// Final test metrics, and the best top-1 seen at any evaluation.
	TestTop1, TestTop5, TestLoss float64
	BestTestTop1                 float64
	// Layers is the final alignment per feedback layer.
	Layers []LayerAlignment
	// SkippedImages is the number of unreadable images skipped (see Config.Strict).
	SkippedImages int
	// Duration of this invocation (training, evaluation and logging).
	Duration time.Duration
	// Checkpoint is the base path of the last checkpoint written.
	Checkpoint string
	// AtChance is set when the run's last test evaluations were at chance level ([EndedAtChance]).
	AtChance *ChanceEnding
	// CheckpointAtChance is set by [EvaluateWith] when the evaluated checkpoint's test top-1 is at chance level
	// ([IsAtChance]): Since is the checkpoint's step and Final its top-1; Best and BestStep are the run's best
	// from its metrics log (or this evaluation's, without a log).
	CheckpointAtChance *ChanceEnding
}

// NaNError reports a loss that became NaN or infinite, or that the divergence guard stopped (Start > 0: the
// loss had stayed above DivergenceFactor times Start for DivergenceLogs records); the run keeps its last good
// checkpoint.
type NaNError struct {
	// Step is the 1-based training step whose loss was not finite (or diverged); Loss its value.
	Step int
	Loss float64
	// OnTest is set when the loss that was not finite is the test set's, evaluated after step Step.
	OnTest bool
	// Start is the loss the run started from, when the divergence guard stopped it (0 for a non-finite loss).
	Start float64
	// Checkpoint is the last good checkpoint ("" if none was written yet), the one -resume continues from.
	Checkpoint string
	// SetAside counts the newer checkpoints renamed "diverged-…": written after the last loss known to be in
	// range, their weights may already be bad.
	SetAside int
}

// Error implements error.
func (e *NaNError) Error() string {
	keep := "no checkpoint from before it is known to be good: start again with a lower -lr"
	if e.Checkpoint != "" {
		keep = "the last good checkpoint is " + e.Checkpoint + " (continue from it with -resume and a lower -lr)"
	}
	if e.SetAside > 0 {
		keep += fmt.Sprintf("; %d newer checkpoint(s), written after the last loss in range, renamed %s… (-resume skips them)",
			e.SetAside, divergedCheckpointPrefix)
	}
	if e.Start > 0 {
		return fmt.Sprintf("training stopped: the loss diverged, %g at step %d, over %d times its start (%g) for %d records; %s (-divergence-guard=false trains on)",
			e.Loss, e.Step, DivergenceFactor, e.Start, DivergenceLogs, keep)
	}
	if e.OnTest {
		return fmt.Sprintf("training stopped: the test loss is %g after step %d; %s", e.Loss, e.Step, keep)
	}
	return fmt.Sprintf("training stopped: the loss is %g at step %d; %s", e.Loss, e.Step, keep)
}

// run holds the state of one training or evaluation session.
type run struct {
	cfg           Config
	out           io.Writer
	backend       backends.Backend
	sharedBackend bool // backend belongs to the caller of setupOn: close leaves it
	ctx           *context.Context
	trainDS       *input.Dataset
	testDS        *input.Dataset
	classes       int
	stepsPerEpoch int
	totalSteps    int
	schedule      Schedule
	trainer       *train.Trainer
	dp            *xla.DataParallel // nil: one device
	alignExec     *context.Exec
	mirrorExec    *context.Exec
	alignBatch    []*tensors.Tensor // images, labels
	alignOutputs  []string          // names of alignExec's outputs (alignOutputName)
	numLayers     int
	notices       io.Writer
	checkpoint    string // the checkpoint loaded, if any
}

// warnSkipped is the datasets' OnSkip: a warning naming the unreadable image.
func (r *run) warnSkipped(err error) {
	fmt.Fprintf(r.notices, "warning: skipping an unreadable image (-strict stops instead): %v\n", err)
}

// skipped is the number of unreadable images skipped so far.
func (r *run) skipped() int {
	n := 0
	if r.trainDS != nil {
		n += r.trainDS.Skipped()
	}
	if r.testDS != nil {
		n += r.testDS.Skipped()
	}
	return n
}

func splitNames(dataset string) (trainSplit, testSplit string) {
	if dataset == "imagefolder" {
		return "train", "val"
	}
	return "train", "test"
}

// setup builds the backend, datasets, context, model and GoMLX trainer. For resume, the checkpoint (the newest
// readable one of the folder checkpointDir, or the file checkpoint) is attached before any graph is built.
//
// The caller owns what it returns and must call its close; on an error setup releases what it had made.
func setup(cfg Config, out io.Writer, checkpointDir string, needTrain bool) (_ *run, err error) {
	return setupOn(nil, cfg, out, checkpointDir, needTrain)
}

// setupOn is setup on a backend the caller owns and keeps (several runs of one process share it), or on a backend
// of the run's own, built from cfg.Backend and released by close, when backend is nil.
func setupOn(backend backends.Backend, cfg Config, out io.Writer, checkpointDir string, needTrain bool) (_ *run, err error) {
	r := &run{cfg: cfg, out: out, notices: cfg.Notices, sharedBackend: backend != nil}
	if r.notices == nil {
		r.notices = out
	}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	if r.backend = backend; backend == nil {
		devices := 1 // evaluation runs on one device
		if needTrain {
			devices = backendDevices(cfg)
		}
		if r.backend, err = newRunBackend(cfg.Backend, devices, r.notices); err != nil {
			return nil, err
		}
	}
	if dt, err := cfg.computeDType(); err == nil && dt != dtypes.Float32 && !r.backend.Capabilities().DTypes[dt] {
		return nil, invalid("-dtype", "-dtype %s: the %s backend does not compute in %s: choose another -dtype, or an XLA "+
			"backend (-backend xla:cpu, nowt setup installs it)", cfg.DType, r.backend.Name(), cfg.DType)
	}
	if !r.sharedBackend { // the owner of a shared backend says it once
		announceEngine(r.notices, r.backend, cfg.Dataset)
	}
	if needTrain {
		if r.dp, err = dataParallel(cfg, r.backend); err != nil {
			return nil, err
		}
	}
	trainSplit, testSplit := splitNames(cfg.Dataset)
	evalBatch := cfg.EvalBatchSize
	if evalBatch <= 0 {
		evalBatch = cfg.BatchSize
	}
	if needTrain {
		r.trainDS, err = input.Open(cfg.Dataset, cfg.DataPath, trainSplit, input.Options{
			BatchSize: cfg.BatchSize / r.devices(), Seed: cfg.Seed, Shuffle: true, DropRemainder: true, Augment: cfg.Augment,
			Normalize: true, Workers: cfg.Workers, Limit: cfg.TrainLimit, ImageSize: cfg.ImageSize,
			SkipCorrupt: !cfg.Strict, OnSkip: r.warnSkipped,
			// train.Loop and bench's steps are done with a batch before they ask for the next; GoMLX's distributed
			// accumulator keeps several.
			ReuseBatches: r.dp == nil,
		})
		if err != nil {
			if errors.Is(err, input.ErrTooFewExamples) {
				return nil, invalid("-batch", "%v (-batch %d, -train-limit %d): lower -batch or raise -train-limit",
					err, cfg.BatchSize, cfg.TrainLimit)
			}
			return nil, fmt.Errorf("opening the training set: %w", err)
		}
		r.stepsPerEpoch = r.trainDS.NumBatches() / r.devices()
		if r.stepsPerEpoch == 0 {
			return nil, invalid("-batch", "the training set has %d examples, fewer than one batch of %d: lower -batch",
				r.trainDS.NumExamples(), cfg.BatchSize)
		}
		r.totalSteps = cfg.Steps
		if r.totalSteps <= 0 {
			r.totalSteps = cfg.Epochs * r.stepsPerEpoch
		}
		r.schedule = newSchedule(cfg, r.stepsPerEpoch, r.totalSteps)
	}
	r.testDS, err = input.Open(cfg.Dataset, cfg.DataPath, testSplit, input.Options{
		BatchSize: evalBatch, Seed: cfg.Seed, Normalize: true, Workers: cfg.Workers, Limit: cfg.TestLimit,
		ImageSize: cfg.ImageSize, SkipCorrupt: !cfg.Strict, OnSkip: r.warnSkipped,
	})
	if err != nil {
		return nil, fmt.Errorf("opening the test set: %w", err)
	}
	r.classes = r.testDS.NumClasses()

	ctx, err := newContext(cfg)
	if err != nil {
		return nil, err
	}
	r.ctx = ctx
	if checkpointDir != "" {
		if st, err := os.Stat(checkpointDir); err != nil || st.IsDir() {
			r.checkpoint, err = loadCheckpoint(ctx, checkpointDir, r.notices)
			if err != nil {
				return nil, err
			}
		} else if err := loadCheckpointFile(ctx, checkpointDir); err != nil { // one checkpoint's file
			return nil, err
		} else {
			r.checkpoint = checkpointDir
		}
	}
	modelFn, err := models.New(cfg.Model, r.classes)
	if err != nil {
		return nil, err
	}
	loss, err := lossFn(cfg.Loss)
	if err != nil {
		return nil, err
	}
	dtype, err := cfg.computeDType()
	if err != nil {
		return nil, err
	}
	// The model computes in dtype (under mixed precision its layers keep float32 master copies); the loss, the
	// metrics and the alignment read float32 logits.
	model := func(ctx *context.Context, images *Node) *Node {
		return ConvertDType(modelFn(ctx.In(modelScope), ConvertDType(images, dtype)), dtypes.Float32)
	}
	trainModel := func(ctx *context.Context, _ any, inputs []*Node) []*Node {
		logits := model(ctx, inputs[0])
		if g := logits.Graph(); !ctx.IsTraining(g) {
			feedback.ReleaseGraph(ctx, g) // An evaluation graph builds no gradient (a training one: SGD releases it).
		}
		return []*Node{logits}
	}
	r.trainer = train.NewTrainer(r.backend, ctx, trainModel, loss,
		&SGD{Momentum: cfg.Momentum, Nesterov: cfg.Nesterov, WeightDecay: cfg.WeightDecay},
		[]metrics.Interface{metrics.NewBaseMetric("Batch Accuracy", "acc", metrics.AccuracyMetricType,
			metrics.SparseCategoricalAccuracyGraph, nil)},
		[]metrics.Interface{metrics.NewSparseCategoricalAccuracy("Top-1 Accuracy", evalTop1), newTop5Accuracy()})

	// A fixed batch of test images for the alignment metrics.
	_, images, labels, err := r.testDS.Yield()
	if err != nil {
		return nil, fmt.Errorf("reading the test set: %w", err)
	}
	r.testDS.Reset()
	r.alignBatch = []*tensors.Tensor{images[0], labels[0]}
	r.alignExec, err = context.NewExec(r.backend, ctx, func(ctx *context.Context, images, labels *Node) []*Node {
		g := images.Graph()
		ctx.SetTraining(g, false)
		taskLoss := func() *Node { return loss([]*Node{labels}, []*Node{model(ctx, images)}) }
		vars, grads := feedback.Gradients(ctx, taskLoss())
		var outs []*Node
		var names []string
		add := func(scope, metric string, n *Node) {
			if n != nil {
				outs, names = append(outs, n), append(names, alignOutputName(scope, metric))
			}
		}
		for _, a := range feedback.AlignmentGraph(ctx, g) {
			add(a.Scope, alignWeightAngle, a.WeightAngle)
			add(a.Scope, alignNormRatio, a.NormRatio)
			add(a.Scope, alignDeltaAngle, a.DeltaAngle) // Absent where no gradient reached the layer.
			add(a.Scope, alignDeltaUndefined, a.DeltaUndefined)
		}
		// The weight gradients against backprop's (the model built again under backprop, after AlignmentGraph).
		ruleGrads := make(map[*context.Variable]*Node, len(vars))
		for i, v := range vars {
			ruleGrads[v] = grads[i]
		}
		for scope, angle := range feedback.GradientAngles(ctx, g, ruleGrads, taskLoss) {
			add(scope, alignGradientAngle, angle)
		}
		feedback.ReleaseGraph(ctx, g)
		if len(outs) == 0 {
			outs = append(outs, Scalar(g, dtypes.Float32, 0))
		}
		r.alignOutputs = names
		return outs
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// announceEngine writes to notices (if non-nil) the line that names the engine a run uses and, for a dataset of
// JPEG files, the decoder.
func announceEngine(notices io.Writer, backend backends.Backend, dataset string) {
	if notices == nil {
		return
	}
	fmt.Fprintf(notices, "engine: %s\n", xla.Engine(backend))
	if input.DecodesImages(dataset) {
		fmt.Fprintf(notices, "JPEG decoder: %s\n", input.JPEGDecoder())
	}
}

// newRunBackend creates the backend spec names for a run on devices devices (see xla.NewFor; notices gets what
// its installation says), with an error naming -backend when spec is not a backend's name.
func newRunBackend(spec string, devices int, notices io.Writer) (backends.Backend, error) {
	backend, err := newBackend(spec, devices, notices)
	if err != nil {
		if specErr := (*xla.InvalidSpecError)(nil); errors.As(err, &specErr) {
			return nil, invalid("-backend", "-backend: %v", specErr)
		}
		return nil, err
	}
	return backend, nil
}

// newBackend creates a run's backend (a variable for tests, which check that every run releases its own).
var newBackend = xla.NewFor

// backendDevices is how many devices cfg's training uses, as xla.NewFor takes it: cfg.Devices, with 0 for one
// and -1 for all (so that XLA on CPU exposes as many host devices as the run splits its batches over).
func backendDevices(cfg Config) int {
	switch {
	case cfg.Devices == -1:
		return xla.AllDevices
	case cfg.Devices < 1:
		return 1
	}
	return cfg.Devices
}

// close releases what setup made: the datasets' workers and the backend (an XLA backend's PJRT client, with its
// threads and device memory: a process that trains several runs, like nowt compare, would otherwise keep every
// one of them).
func (r *run) close() {
	if r.trainDS != nil {
		r.trainDS.Close()
	}
	if r.testDS != nil {
		r.testDS.Close()
	}
	// The device buffers and compiled programs go first: a PJRT client destroyed while they live does not free
	// them, and their finalizers find it gone (measured on xla:cpu, 10 runs of a 2000-wide MLP in one process,
	// MALLOC_ARENA_MAX=1: the RSS grew 110–140 MB a run with only the backend finalized, stays at ~200 MB so).
	if r.trainer != nil {
		r.trainer.ResetComputationGraphs()
	}
	for _, e := range []*context.Exec{r.alignExec, r.mirrorExec} {
		if e != nil {
			e.Finalize()
		}
	}
	for _, t := range r.alignBatch {
		_ = t.FinalizeAll()
	}
	if r.ctx != nil {
		r.ctx.Finalize()
	}
	if r.backend != nil && !r.sharedBackend && !r.backend.IsFinalized() {
		r.backend.Finalize()
	}
}

// recoverAsError turns a panic that reached an API boundary of this package (GoMLX reports graph-building errors,
// such as an input too small for a model's kernels, by panicking) into an error returned through *err.
func recoverAsError(what string, err *error) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("%s: %v", what, p)
	}
}

// newContext creates the context with every known hyperparameter, the configuration's, and its -set settings.
func newContext(cfg Config) (*context.Context, error) {
	ctx := context.New().Checked(false)
	for k, v := range feedback.DefaultParams() {
		ctx.SetParam(k, v)
	}
	for k, v := range models.DefaultParams() {
		ctx.SetParam(k, v)
	}
	for k, v := range cfg.Params {
		ctx.SetParam(k, normalizeParam(v))
	}
	ctx.SetParam(feedback.ParamRule, cfg.Rule)
	if cfg.Settings != "" {
		if err := parseSettings(ctx, cfg.Settings); err != nil {
			return nil, err
		}
		if rule := context.GetParamOr(ctx, feedback.ParamRule, cfg.Rule); rule != cfg.Rule {
			return nil, invalid("-set", "-set %s=%s at the root would replace the run's rule %q without saying so: "+
				"choose the rule with -rule (nowt compare: -rules); -set may choose one per layer scope "+
				"(e.g. \"/model/out/%s=bp\", nowt models -v lists the scopes)", feedback.ParamRule, rule, cfg.Rule,
				feedback.ParamRule)
		}
	}
	if err := feedback.ValidateParams(ctx); err != nil {
		var pe *feedback.ParamError
		errors.As(err, &pe)
		return nil, &ConfigError{Flag: "-set", Msg: err.Error(), Param: pe}
	}
	if err := models.CheckParams(ctx); err != nil {
		return nil, invalid("-set", "%v", err)
	}
	if err := checkSettingScopes(ctx, cfg.Model); err != nil {
		return nil, err
	}
	if err := ctx.SetRNGStateFromSeed(cfg.Seed); err != nil {
		return nil, fmt.Errorf("seeding: %w", err)
	}
	return ctx, nil
}

// parseSettings applies a GoMLX "-set" string to ctx, turning a panic of GoMLX's parser into an error.
func parseSettings(ctx *context.Context, settings string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = invalid("-set", "-set %q: %v", settings, r)
		}
	}()
	if _, err := commandline.ParseContextSettings(ctx, settings); err != nil {
		return invalid("-set", "-set %q: %v (see nowt rules -v for the names)", settings, err)
	}
	return nil
}

// normalizeParam turns JSON numbers that are whole into ints, so that config.json round-trips int params.
func normalizeParam(v any) any {
	if f, ok := v.(float64); ok && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return int(f)
	}
	return v
}

// Names of the alignment graph's outputs, per layer (see alignOutputName).
const (
	alignWeightAngle    = "weight_angle"
	alignNormRatio      = "norm_ratio"
	alignDeltaAngle     = "delta_angle"
	alignDeltaUndefined = "delta_undefined"
	alignGradientAngle  = "gradient_angle"
)

// alignOutputName names one alignment output of the layer in scope.
func alignOutputName(scope, metric string) string { return scope + "#" + metric }

// align runs the alignment graph on the fixed batch and reads its outputs by name. An angle that is NaN (a
// zero vector on one side) is undefined and stays nil in the record.
func (r *run) align() ([]LayerAlignment, error) {
	outs, err := r.alignExec.Exec(r.alignBatch[0], r.alignBatch[1])
	if err != nil {
		return nil, fmt.Errorf("computing alignment: %w", err)
	}
	if len(outs) != len(r.alignOutputs) {
		return nil, nil // No feedback layers: the graph returns a placeholder.
	}
	byName := make(map[string]float64, len(outs))
	for i, name := range r.alignOutputs {
		byName[name] = scalar(outs[i])
	}
	defined := func(scope, metric string) *float64 {
		v, found := byName[alignOutputName(scope, metric)]
		if !found || !isFinite(v) {
			return nil
		}
		return &v
	}
	batch := r.alignBatch[1].Shape().Dim(0)
	layers := feedback.Layers(r.ctx)
	result := make([]LayerAlignment, len(layers))
	for i, layer := range layers {
		scope := layer.Scope
		a := LayerAlignment{Layer: scope, WeightAngle: defined(scope, alignWeightAngle),
			NormRatio: defined(scope, alignNormRatio), GradientAngle: defined(scope, alignGradientAngle)}
		if _, measured := byName[alignOutputName(scope, alignGradientAngle)]; measured && a.GradientAngle == nil {
			a.GradientUndefined = true
		}
		if undefined, measured := byName[alignOutputName(scope, alignDeltaUndefined)]; measured {
			a.DeltaUndefined = int(undefined)
			a.DeltaExamples = batch - a.DeltaUndefined
			if a.DeltaExamples > 0 {
				a.DeltaAngle = defined(scope, alignDeltaAngle)
			}
		}
		result[i] = a
	}
	return result, nil
}

func scalar(t *tensors.Tensor) float64 {
	switch v := t.Value().(type) {
	case float32:
		return float64(v)
	case float64:
		return v
	case int64:
		return float64(v)
	case int32:
		return float64(v)
	}
	panic(fmt.Sprintf("unexpected metric %s", t.Shape()))
}

// evaluate runs the test set: top-1, top-5 and mean loss (without regularisation), read by metric name.
func (r *run) evaluate() (top1, top5, loss float64, err error) {
	outs, err := r.trainer.Eval(r.testDS)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("evaluating: %w", err)
	}
	byName := map[string]float64{}
	for i, m := range r.trainer.EvalMetrics() {
		if i < len(outs) {
			byName[m.ShortName()] = scalar(outs[i])
		}
	}
	for _, name := range []string{evalTop1, evalTop5, evalLoss} {
		if _, found := byName[name]; !found {
			return 0, 0, 0, fmt.Errorf("evaluating: no %q among the evaluation's %d outputs", name, len(outs))
		}
	}
	return byName[evalTop1], byName[evalTop5], byName[evalLoss], nil
}

// Short names of the evaluation metrics: ours, and GoMLX's mean loss without regularisation.
const (
	evalTop1 = "top1"
	evalTop5 = "top5"
	evalLoss = "#loss"
)

// newTop5Accuracy is the fraction of examples whose label is among the 5 largest logits (ties count against).
func newTop5Accuracy() metrics.Interface {
	return metrics.NewMeanMetric("Top-5 Accuracy", evalTop5, metrics.AccuracyMetricType,
		func(_ *context.Context, labels, predictions []*Node) *Node {
			logits := predictions[0]
			onehot := OneHot(Reshape(labels[0], -1), logits.Shape().Dim(-1), logits.DType())
			labelLogit := InsertAxes(ReduceSum(Mul(logits, onehot), -1), -1) // [batch, 1]
			higher := ReduceSum(ConvertDType(GreaterThan(logits, labelLogit), logits.DType()), -1)
			return ReduceAllMean(ConvertDType(LessThan(higher, Scalar(logits.Graph(), logits.DType(), 5)), logits.DType()))
		}, nil)
}

// Train runs (or, with resume, continues) the training described by cfg, writing to cfg.OutDir, and reports on
// out (records and summary; notices and warnings go to cfg.Notices when set). Cancelling goCtx stops it after the
// current step, with a checkpoint, and returns an [*InterruptedError].
//
// Every setting is checked before any graph is built or file written ([Config.Validate], a [*ConfigError]).
// The run folder is locked while the run trains into it: a second run into it fails naming the holder. With
// resume, the stored configuration defines the run; cfg may only differ in [ResumableSettings] (the changes are
// recorded in config.json), the newest readable checkpoint is loaded (an unreadable newest one is skipped with a
// warning), and what a killed checkpoint write left behind is removed.
//
// A panic from graph building or execution (a model that does not fit its input, say) is returned as an error.
func Train(goCtx gocontext.Context, cfg Config, out io.Writer, resume bool) (res *Result, err error) {
	defer recoverAsError(fmt.Sprintf("training %s under rule %s", cfg.Model, cfg.Rule), &err)
	return trainRun(goCtx, cfg, out, resume)
}

// trainRun is Train, without its recovery from panics.
func trainRun(goCtx gocontext.Context, cfg Config, out io.Writer, resume bool) (*Result, error) {
	start := time.Now()
	if out == nil {
		out = io.Discard
	}
	notices := cfg.Notices
	if notices == nil {
		notices = out
	}
	if cfg.OutDir == "" {
		return nil, invalid("-out", "no output folder: set -out")
	}
	if err := checkNotAFile(cfg.OutDir, "the run's"); err != nil {
		return nil, err
	}
	checkpointDir := filepath.Join(cfg.OutDir, checkpointDirName)
	existing, err := listCheckpoints(checkpointDir)
	if err != nil {
		return nil, err
	}
	var changes []string
	if resume {
		stored, err := ReadConfig(cfg.OutDir)
		if err != nil {
			return nil, fmt.Errorf("cannot resume: %w", err)
		}
		if len(existing) == 0 {
			if last, planned, ok := finishedLog(cfg.OutDir); ok {
				return nil, fmt.Errorf("cannot resume: %s holds a finished run (its metrics log reaches step %d of %d) "+
					"whose checkpoints are gone: there is nothing to continue from; train anew into another -out",
					cfg.OutDir, last, planned)
			}
			return nil, fmt.Errorf("cannot resume: %s holds no checkpoint yet; start the run again without -resume", cfg.OutDir)
		}
		if cfg, changes, err = resumeConfig(stored, cfg); err != nil {
			return nil, err
		}
	} else if len(existing) > 0 {
		return nil, invalid("-out", "-out %s already holds a run (%d checkpoints): continue it with -resume, or choose another -out",
			cfg.OutDir, len(existing))
	} else if last, planned, ok := finishedLog(cfg.OutDir); ok {
		return nil, invalid("-out", "-out %s already holds a finished run (its metrics log reaches step %d of %d; it keeps "+
			"no checkpoint): choose another -out, or delete %s to train there anew", cfg.OutDir, last, planned, cfg.OutDir)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// A folder that exists is locked before its checkpoints are read; a new one once everything is checked.
	var lock *runLock
	if st, err := os.Stat(cfg.OutDir); err == nil && st.IsDir() {
		if lock, err = lockRun(cfg.OutDir); err != nil {
			return nil, err
		}
		defer lock.release()
		if err := cleanCheckpoints(checkpointDir, notices); err != nil {
			return nil, err
		}
	}
	loadFrom := ""
	if resume {
		loadFrom = checkpointDir
	}
	r, err := setup(cfg, out, loadFrom, true)
	if err != nil {
		return nil, err
	}
	defer r.close()
	// Build the model's variables (in inference mode) and measure the initial alignment.
	initial, err := r.align()
	if err != nil {
		return nil, err
	}
	if goCtx.Err() != nil {
		return nil, &InterruptedError{}
	}
	if lock == nil {
		if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
			return nil, fmt.Errorf("creating the output folder: %w", err)
		}
		if lock, err = lockRun(cfg.OutDir); err != nil {
			return nil, err
		}
		defer lock.release()
		if existing, err := listCheckpoints(checkpointDir); err != nil || len(existing) > 0 {
			return nil, fmt.Errorf("output folder %s already holds a run: continue it with -resume, or choose another -out", cfg.OutDir)
		}
	}
	// The run's wall time adds up the invocations that trained it (nowt train -resume as well as nowt compare).
	if !resume {
		if err := os.Remove(filepath.Join(cfg.OutDir, wallTimeFileName)); err != nil && !os.IsNotExist(err) {
			return nil, fmt.Errorf("clearing the wall time of the run the folder held: %w", err)
		}
	}
	defer func() { _ = addWallTime(cfg.OutDir, time.Since(start)) }()
	if r.dp != nil {
		fmt.Fprintf(notices, "Data parallelism: each batch of %d split over %d devices (%d each).\n",
			cfg.BatchSize, r.dp.NumDevices(), cfg.BatchSize/r.dp.NumDevices())
	}
	step := int(optimizers.GetGlobalStep(r.ctx)) // the checkpoint loaded: the newest readable one
	if len(changes) > 0 {
		cfg.Changes = append(slices.Clone(cfg.Changes), fmt.Sprintf("resumed at step %d: %s", step, strings.Join(changes, ", ")))
	}
	if !resume || len(changes) > 0 {
		if err := WriteConfig(cfg, cfg.OutDir); err != nil {
			return nil, err
		}
	}
	jpegDecoder := ""
	if input.DecodesImages(cfg.Dataset) {
		jpegDecoder = input.JPEGDecoder()
	}
	if err := recordProvenance(cfg.OutDir, newProvenance(step, xla.Engine(r.backend), jpegDecoder, start), resume); err != nil {
		return nil, err
	}
	if resume {
		fmt.Fprintf(notices, "Resuming %s from step %d of %d (epoch %.2f), checkpoint %s.\n", cfg.OutDir, step,
			r.totalSteps, float64(step)/float64(r.stepsPerEpoch), filepath.Base(r.checkpoint))
		if len(changes) > 0 {
			fmt.Fprintf(notices, "Changed on resume (recorded in %s): %s.\n", filepath.Join(cfg.OutDir, configFileName),
				strings.Join(changes, ", "))
		}
	}
	// A new attempt: a resumed run that had diverged (with a lower -lr, say), or that -chance-guard had stopped, is
	// no longer marked so.
	for _, mark := range []string{divergedFileName, collapsedFileName} {
		if err := os.Remove(filepath.Join(cfg.OutDir, mark)); err != nil && !os.IsNotExist(err) {
			return nil, fmt.Errorf("clearing the mark %s: %w", mark, err)
		}
	}
	res, err := r.train(goCtx, start, checkpointDir, resume, initial)
	var nanErr *NaNError
	if errors.As(err, &nanErr) {
		if werr := writeDivergence(cfg.OutDir, nanErr); werr != nil {
			return res, errors.Join(err, werr)
		}
	}
	var collapseErr *CollapseError
	if errors.As(err, &collapseErr) {
		if werr := writeCollapse(cfg.OutDir, collapseErr); werr != nil {
			return res, errors.Join(err, werr)
		}
	}
	return res, err
}

// divergedAt completes e, a run stopped by a non-finite or diverging loss: the checkpoints of steps ≥ bound hold
// weights not known to be good (a checkpoint's weights give the loss of the step after it), so they are renamed
// with divergedCheckpointPrefix, out of -resume's way and kept for inspection; e.Checkpoint is the newest of the
// others, the one -resume continues from.
func (r *run) divergedAt(e *NaNError, checkpointDir string, bound int) error {
	bases, err := listCheckpoints(checkpointDir)
	if err != nil {
		return errors.Join(e, err)
	}
	for _, base := range bases {
		if checkpointStep(base) < bound {
			e.Checkpoint = base
			continue
		}
		for _, suffix := range []string{checkpoints.JsonNameSuffix, checkpoints.BinDataSuffix} {
			aside := filepath.Join(checkpointDir, divergedCheckpointPrefix+filepath.Base(base)+suffix)
			if err := os.Rename(base+suffix, aside); err != nil && !os.IsNotExist(err) {
				return errors.Join(e, fmt.Errorf("setting aside a checkpoint written after the loss left its range: %w", err))
			}
		}
		e.SetAside++
	}
	return e
}

// divergedCheckpointPrefix starts the names of the checkpoints a diverged run set aside ([run.divergedAt]).
const divergedCheckpointPrefix = "diverged-"

// startingLoss is the loss a run's divergence guard compares with, from its log: the test loss of its step-0
// evaluation (not the first record's: a WM run's log starts with its warm-up records, which hold none), or NaN.
func startingLoss(records []Record) float64 {
	if i := slices.IndexFunc(records, func(r Record) bool { return r.Step == 0 && r.TestLoss != nil }); i >= 0 {
		return *records[i].TestLoss
	}
	return math.NaN()
}

// divergedFileName marks a run folder whose last training stopped on a non-finite or diverging loss: it holds
// the [NaNError], so that nowt compare reports the run as diverged instead of training it again (the same
// settings diverge the same way). Resuming the run removes it.
const divergedFileName = "diverged.json"

// divergence is the JSON form of a [NaNError] (its losses as text: JSON has no NaN nor Inf).
type divergence struct {
	Step       int    `json:"step"`
	Loss       string `json:"loss"`
	Start      string `json:"start,omitempty"`
	Checkpoint string `json:"checkpoint,omitempty"`
}

// writeDivergence writes the divergence mark of the run in dir.
func writeDivergence(dir string, e *NaNError) error {
	d := divergence{Step: e.Step, Loss: strconv.FormatFloat(e.Loss, 'g', -1, 64), Checkpoint: e.Checkpoint}
	if e.Start > 0 {
		d.Start = strconv.FormatFloat(e.Start, 'g', -1, 64)
	}
	return writeMark(dir, divergedFileName, d)
}

// readDivergence returns the divergence mark of the run in dir, if it has a readable one.
func readDivergence(dir string) (*NaNError, bool) {
	d, ok := readMark[divergence](dir, divergedFileName)
	if !ok {
		return nil, false
	}
	e := &NaNError{Step: d.Step, Checkpoint: d.Checkpoint}
	e.Loss, _ = strconv.ParseFloat(d.Loss, 64)
	if d.Start != "" {
		e.Start, _ = strconv.ParseFloat(d.Start, 64)
	}
	return e, true
}

// writeMark writes v as the JSON mark name (diverged.json, collapsed.json) of the run in dir, atomically.
func writeMark(dir, name string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("writing the mark %s: %w", name, err)
	}
	return writeFileAtomic(filepath.Join(dir, name), append(data, '\n'))
}

// readMark decodes the JSON mark name of the run in dir, if it has a readable one.
func readMark[T any](dir, name string) (*T, bool) {
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return nil, false
	}
	v := new(T)
	if json.Unmarshal(data, v) != nil {
		return nil, false
	}
	return v, true
}

// modelScope is the context scope the model is built in: per-layer settings name /model/<layer scope>.
const modelScope = "model"

// checkSettingScopes fails if a hyperparameter is set at a scope where no layer of the model lives (a mistyped
// scope in -set, which GoMLX would otherwise ignore). A setting reaches the layers at and below its scope, so a
// valid scope is "/model" or an ancestor of (or equal to) one of the model's layer scopes, which the model
// declares without building a graph ([models.LayerScopes]).
func checkSettingScopes(ctx *context.Context, model string) error {
	modelCtx := ctx.In(modelScope)
	layerScopes, err := models.LayerScopes(model, modelCtx)
	if err != nil {
		return invalid("-set", "%v", err)
	}
	root := modelCtx.Scope()
	var bad error
	ctx.EnumerateParams(func(scope, key string, _ any) {
		if bad != nil || scope == context.RootScope || scope == root {
			return
		}
		if slices.Contains([]string{models.ParamMLPHidden, models.ParamMLPActivation, models.ParamResNetWidth}, key) {
			bad = invalid("-set", "-set: %s is a setting of the whole model, read at its top: at scope %s it would be "+
				"ignored (give it without a scope, or with its flag: -hidden, -activation, -width)", key, scope)
			return
		}
		for _, s := range layerScopes {
			full := root + context.ScopeSeparator + s
			if full == scope || strings.HasPrefix(full, scope+context.ScopeSeparator) {
				return
			}
		}
		shown := layerScopes
		if len(shown) > 6 {
			shown = append(slices.Clone(shown[:6]), fmt.Sprintf("and %d more (nowt models -v lists them)", len(shown)-6))
		}
		bad = invalid("-set", "-set: scope %s (of %s) is not a scope of the model: no layer lives there (the %s's layers are %s/{%s})",
			scope, key, model, root, strings.Join(shown, ", "))
	})
	return bad
}

// InterruptedError reports a run stopped by its context (Ctrl-C), after writing a checkpoint.
type InterruptedError struct {
	// Step is the number of steps done (0: stopped before the first); Checkpoint the checkpoint written.
	Step       int
	Checkpoint string
	// Continue says how to go on; "" is "continue with -resume" (nowt train's way).
	Continue string
}

// Error implements error.
func (e *InterruptedError) Error() string {
	if e.Checkpoint == "" {
		return "interrupted before the first training step: nothing new to save (run the same command again to go on)"
	}
	how := e.Continue
	if how == "" {
		how = "continue with -resume"
	}
	return fmt.Sprintf("interrupted at step %d: saved %s; %s", e.Step, e.Checkpoint, how)
}

// StorageError reports a run stopped because it could not write into its folder (a full disk, a folder made
// read-only): what it was writing, the cause, and how to go on from the last checkpoint it wrote.
type StorageError struct {
	// What names what was being written: "the checkpoint of step 10", "the metrics log …".
	What string
	// Err is the cause.
	Err error
	// Checkpoint is the newest checkpoint the run holds ("" none).
	Checkpoint string
	// Continue says how to go on; "" is nowt train's way (-resume, or the same command where no checkpoint
	// was written).
	Continue string
}

// Error implements error.
func (e *StorageError) Error() string {
	cause := e.Err.Error()
	var pathErr *fs.PathError
	if errors.As(e.Err, &pathErr) { // the file and the system's word, without the layers that wrapped them
		cause = pathErr.Error()
		if strings.Contains(e.What, pathErr.Path) {
			cause = pathErr.Err.Error()
		}
	}
	msg := fmt.Sprintf("writing %s: %s", e.What, cause)
	if errors.Is(e.Err, syscall.ENOSPC) {
		msg += ": the disk is full; free space there (each run keeps its -keep newest checkpoints) or train into another -out"
	}
	how := e.Continue
	switch {
	case how != "":
	case e.Checkpoint == "":
		how = "no checkpoint was written yet: then run the same command again, which starts the run anew"
	default:
		how = "then go on with -resume"
	}
	if e.Checkpoint != "" {
		return fmt.Sprintf("%s; the newest checkpoint is %s; %s", msg, e.Checkpoint, how)
	}
	return fmt.Sprintf("%s; %s", msg, how)
}

// Unwrap returns the cause.
func (e *StorageError) Unwrap() error { return e.Err }

// DivergenceFactor and DivergenceLogs define the divergence guard: a run stops when its logged loss exceeds
// DivergenceFactor times its starting loss for DivergenceLogs records in a row.
const (
	DivergenceFactor = 10
	DivergenceLogs   = 3
)

func (r *run) train(goCtx gocontext.Context, start time.Time, checkpointDir string, resumed bool, initial []LayerAlignment) (*Result, error) {
	cfg, ctx := r.cfg, r.ctx
	startStep := int(optimizers.GetGlobalStep(ctx))
	if startStep >= r.totalSteps {
		fmt.Fprintf(r.notices, "Run %s already trained %d of %d steps.\n", cfg.OutDir, startStep, r.totalSteps)
	}
	if err := r.trainDS.Seek(startStep/r.stepsPerEpoch, (startStep%r.stepsPerEpoch)*r.devices()); err != nil {
		return nil, fmt.Errorf("positioning the training set at step %d: %w", startStep, err)
	}
	metricsPath := filepath.Join(cfg.OutDir, metricsFileName)
	startLoss := math.NaN() // The loss the divergence guard compares with: the test loss at step 0.
	var earlier []Record    // a resumed run's records up to the step it resumes from
	// What chance is on the test set: for the starting record and the chance watch.
	testCounts := r.testDS.ClassCounts()
	if resumed {
		records, _ := ReadRecords(metricsPath)
		startLoss = startingLoss(records)
		earlier = slices.DeleteFunc(records, func(r Record) bool { return r.Step > startStep })
		if err := truncateRecords(metricsPath, startStep); err != nil {
			return nil, err
		}
	} else if err := os.Remove(metricsPath); err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("clearing the metrics log: %w", err)
	}
	log, err := openRecordWriter(metricsPath)
	if err != nil {
		return nil, err
	}
	defer func() { _ = log.close() }()

	r.numLayers = len(initial)
	if feedback.HasMirrorLayers(ctx) {
		if r.mirrorExec, err = newMirrorExec(r); err != nil {
			return nil, err
		}
		if !resumed {
			warmup := context.GetParamOr(ctx, feedback.ParamWMWarmupSteps, -1)
			if warmup < 0 {
				warmup = r.stepsPerEpoch
			}
			fmt.Fprintf(r.notices, "Weight mirror: %d warm-up mirror steps before training.\n", warmup)
			if lo, hi, n := mirrorNoiseFloors(ctx); n > 0 {
				fmt.Fprintf(r.notices, "Weight mirror: B settles no closer to Wᵀ than its noise floor, %s over its %d layers "+
					"(4× -wm-batch about halves it).\n", degreeRange(lo, hi), n)
			}
			if initial, err = r.mirrorWarmup(goCtx, warmup, initial, log); err != nil {
				return nil, err
			}
		}
	}
	if !resumed {
		// The starting point: test metrics and alignment before the first step (after the mirror warm-up).
		rec := Record{Step: 0, LearningRate: r.schedule.At(0), Layers: initial, Classes: r.classes,
			ChanceTop1: MajorityTop1(testCounts), TestExamples: r.testDS.NumExamples()}
		t1, t5, tl, err := r.evaluate()
		if err != nil {
			return nil, err
		}
		rec.TestTop1, rec.TestTop5, rec.TestLoss = &t1, &t5, &tl
		rec.SkippedImages = r.skipped()
		startLoss = tl
		if err := log.write(rec); err != nil {
			return nil, &StorageError{What: "the metrics log " + metricsPath, Err: err}
		}
		if !cfg.Progress {
			fmt.Fprintln(r.out, formatRecord(rec))
		}
	}

	lrVar := optimizers.LearningRateVar(ctx, dtypes.Float32, r.schedule.At(startStep))
	setLR := func(step int) error {
		return lrVar.SetValue(tensors.FromScalar(float32(r.schedule.At(step))))
	}
	if err := setLR(startStep); err != nil {
		return nil, err
	}

	logEvery := positiveOr(cfg.LogEvery, max(1, r.stepsPerEpoch/4))
	evalEvery := positiveOr(cfg.EvalEvery, r.stepsPerEpoch)
	checkpointEvery := positiveOr(cfg.CheckpointEvery, r.stepsPerEpoch)
	keep := positiveOr(cfg.KeepCheckpoints, 2)
	wmSteps := context.GetParamOr(ctx, feedback.ParamWMSteps, 1)
	result := &Result{Config: cfg}
	if bases, _ := listCheckpoints(checkpointDir); len(bases) > 0 {
		result.Checkpoint = bases[len(bases)-1]
	}
	if resumed && r.checkpoint != "" {
		result.Checkpoint = r.checkpoint
	}

	loop := train.NewLoop(r.trainer)
	lastTop1 := "-"
	if cfg.Progress {
		commandline.AttachProgressBar(loop, func() (string, string) {
			median := loop.MedianTrainStepDuration()
			if median <= 0 {
				return "Images/s", "-"
			}
			return "Images/s", fmt.Sprintf("%.0f", float64(cfg.BatchSize)/median.Seconds())
		}, func() (string, string) { return "Test top-1", lastTop1 })
	}
	// Throughput counts training only: each step from the end of the previous step's hook (evaluation, alignment,
	// logging and checkpoint left out) to the end of its mirror steps, and not the invocation's first step
	// (compilation) unless its record holds nothing else.
	segmentStart := time.Now()
	var trainSeconds float64
	var trainedSteps int
	var lastLoss, accSum float64
	var accCount, grown int
	lastFineLog := startStep // the last logged step whose loss the guard found in range (the checkpoint resumed from)
	var testTop1, testTop5, testLoss *float64
	chance := newChanceWatch(cfg.Dataset, testCounts, cfg.ChanceGuard, earlier)
	var collapse *CollapseError // set when -chance-guard stops the run
	loop.OnStep("nowt", 100, func(loop *train.Loop, stepMetrics []*tensors.Tensor) error {
		step := loop.LoopStep + 1 // steps done
		defer func() { segmentStart = time.Now() }()
		lastLoss = scalar(stepMetrics[0])
		if !isFinite(lastLoss) {
			// Its loss came from the weights after step-1: only checkpoints from before are known to be good.
			return r.divergedAt(&NaNError{Step: step, Loss: lastLoss}, checkpointDir, step-1)
		}
		accSum += scalar(stepMetrics[len(stepMetrics)-1]) // Our batch accuracy is the last train metric.
		accCount++
		if r.mirrorExec != nil {
			if err := r.mirror(wmSteps); err != nil {
				return err
			}
		}
		last := step == r.totalSteps
		if compiling := step == startStep+1 && step%logEvery != 0 && step%evalEvery != 0 && !last; !compiling {
			trainSeconds += time.Since(segmentStart).Seconds()
			trainedSteps++
		}
		testTop1, testTop5, testLoss = nil, nil, nil
		if step%evalEvery == 0 || last {
			t1, t5, tl, err := r.evaluate()
			if err != nil {
				return err
			}
			if !isFinite(tl) {
				// The weights after this step overflowed: the checkpoints from before it are good.
				return r.divergedAt(&NaNError{Step: step, Loss: tl, OnTest: true}, checkpointDir, step)
			}
			testTop1, testTop5, testLoss = &t1, &t5, &tl
			if warning := chance.observe(step, t1); warning != "" {
				fmt.Fprintln(r.notices, warning)
			}
			collapse = chance.stop(step, t1)
			result.TestTop1, result.TestTop5, result.TestLoss = t1, t5, tl
			result.BestTestTop1 = math.Max(result.BestTestTop1, t1)
			lastTop1 = fmt.Sprintf("%.2f%%", 100*t1)
		}
		if step%logEvery == 0 || last || testTop1 != nil {
			layers, err := r.align()
			if err != nil {
				return err
			}
			rec := Record{Step: step, Epoch: float64(step) / float64(r.stepsPerEpoch), Loss: lastLoss,
				TrainAccuracy: accSum / float64(accCount), TestTop1: testTop1, TestTop5: testTop5, TestLoss: testLoss,
				LearningRate: r.schedule.At(step - 1), Layers: layers, SkippedImages: r.skipped()}
			if trainSeconds > 0 {
				rec.ImagesPerSecond = float64(trainedSteps*cfg.BatchSize) / trainSeconds
			}
			trainSeconds, trainedSteps, accSum, accCount = 0, 0, 0, 0
			result.Layers = layers
			if err := log.write(rec); err != nil {
				return &StorageError{What: "the metrics log " + metricsPath, Err: err, Checkpoint: result.Checkpoint}
			}
			if !cfg.Progress {
				fmt.Fprintln(r.out, formatRecord(rec))
			}
			if math.IsNaN(startLoss) {
				startLoss = lastLoss
			}
			if startLoss > 0 && lastLoss > DivergenceFactor*startLoss {
				grown++
			} else {
				grown, lastFineLog = 0, step
			}
			if grown >= DivergenceLogs && !cfg.NoDivergenceGuard {
				// The weights after step lastFineLog-1 gave a loss in range; later ones may have started to grow.
				return r.divergedAt(&NaNError{Step: step, Loss: lastLoss, Start: startLoss}, checkpointDir, lastFineLog)
			}
		}
		stop := goCtx.Err() != nil
		// While the loss is far above its start, no checkpoint replaces the last good one (unless stopping).
		if (step%checkpointEvery == 0 && grown == 0) || last || stop || collapse != nil {
			path, err := saveCheckpointFunc(ctx, checkpointDir, int64(step), keep)
			if err != nil {
				return &StorageError{What: fmt.Sprintf("the checkpoint of step %d into %s", step, checkpointDir), Err: err,
					Checkpoint: result.Checkpoint}
			}
			result.Checkpoint = path
		}
		if collapse != nil && !last { // at the last step the run is done: nothing left to save
			collapse.Checkpoint = result.Checkpoint
			return collapse
		}
		if stop {
			return &InterruptedError{Step: step, Checkpoint: result.Checkpoint}
		}
		return setLR(step)
	})
	if remaining := r.totalSteps - startStep; remaining > 0 {
		ds, err := r.trainingBatches()
		if err != nil {
			return nil, err
		}
		if _, err := loop.RunSteps(ds, remaining); err != nil {
			r.finishResult(result, metricsPath, start)
			var nanErr *NaNError
			if errors.As(err, &nanErr) {
				result.Checkpoint = nanErr.Checkpoint
				return result, nanErr
			}
			var intErr *InterruptedError
			if errors.As(err, &intErr) {
				return result, intErr
			}
			var collapseErr *CollapseError
			if errors.As(err, &collapseErr) {
				return result, collapseErr
			}
			var storageErr *StorageError
			if errors.As(err, &storageErr) {
				return result, storageErr
			}
			return result, fmt.Errorf("training: %w", err)
		}
	} else {
		t1, t5, tl, err := r.evaluate()
		if err != nil {
			return nil, err
		}
		result.TestTop1, result.TestTop5, result.TestLoss, result.BestTestTop1 = t1, t5, tl, t1
		if result.Layers, err = r.align(); err != nil {
			return nil, err
		}
	}
	r.finishResult(result, metricsPath, start)
	return result, nil
}

// finishResult fills in what a run's result takes from its whole log and its clock, also when it stopped early
// (Ctrl-C, divergence): steps, epochs, skipped images, duration, the best test top-1 of the whole run, and the
// latest evaluation where this invocation made none.
func (r *run) finishResult(result *Result, metricsPath string, start time.Time) {
	result.Steps = int(optimizers.GetGlobalStep(r.ctx))
	result.Epochs = float64(result.Steps) / float64(r.stepsPerEpoch)
	result.SkippedImages = r.skipped()
	result.Duration = time.Since(start)
	records, _ := ReadRecords(metricsPath)
	s := Summarize(records)
	if s.Final != nil {
		result.BestTestTop1 = max(result.BestTestTop1, s.Best)
		if result.TestTop1 == 0 && result.TestLoss == 0 { // no evaluation in this invocation
			result.TestTop1 = *s.Final.TestTop1
			result.TestTop5 = valueOr(s.Final.TestTop5, math.NaN())
			result.TestLoss = valueOr(s.Final.TestLoss, math.NaN())
		}
	}
	if result.Layers == nil {
		result.Layers = s.Layers
	}
	if ending, ok := EndedAtChance(&result.Config, records); ok {
		result.AtChance = &ending
	}
}

func positiveOr(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// newMirrorExec compiles the weight-mirror step of every WM layer. With data parallelism it runs on every
// device, replicated (each device draws the same noise from the replicated RNG state and makes the same update
// of its copy of B), so that W and B stay on the devices: run on device 0 alone, it would gather every variable
// it reads from the devices and scatter B back at every training step.
func newMirrorExec(r *run) (*context.Exec, error) {
	exec, err := context.NewExec(r.backend, r.ctx, func(ctx *context.Context, g *Graph) *Node {
		feedback.MirrorStep(ctx, g)
		return Scalar(g, dtypes.Float32, 0)
	})
	if err != nil || r.dp == nil {
		return exec, err
	}
	return exec.AutoSharding(r.dp.Mesh).
		WithOutputShardingSpecs(distributed.NewReplicatedShardingSpec(r.dp.Mesh)).
		WithDeviceAssignment(r.dp.DeviceAssignment), nil
}

// mirror runs n weight-mirror steps.
func (r *run) mirror(n int) error {
	for range n {
		var err error
		if r.dp != nil {
			_, err = r.mirrorExec.DistributedExec()
		} else {
			_, err = r.mirrorExec.Exec()
		}
		if err != nil {
			return fmt.Errorf("weight-mirror step: %w", err)
		}
	}
	return nil
}

// warmupRecords is how many alignment records the weight mirror's warm-up writes (besides the one before it).
const warmupRecords = 10

// mirrorWarmup runs the weight mirror's n warm-up steps, recording the alignment (at step 0, with
// WarmupMirrorSteps set) before them and after every n/warmupRecords of them, so that the plots show B
// aligning; it returns the alignment after the warm-up.
func (r *run) mirrorWarmup(goCtx gocontext.Context, n int, before []LayerAlignment, log *recordWriter) ([]LayerAlignment, error) {
	write := func(done int, layers []LayerAlignment) error {
		if err := log.write(Record{Step: 0, WarmupMirrorSteps: &done, LearningRate: r.schedule.At(0), Layers: layers}); err != nil {
			return &StorageError{What: "the metrics log " + log.f.Name(), Err: err}
		}
		return nil
	}
	if err := write(0, before); err != nil {
		return nil, err
	}
	layers := before
	for done := 0; done < n; {
		chunk := min(n-done, max(1, (n+warmupRecords-1)/warmupRecords))
		for step := 0; step < chunk; step += 10 { // Ctrl-C is heard every 10 mirror steps.
			if goCtx.Err() != nil {
				return nil, &InterruptedError{}
			}
			if err := r.mirror(min(10, chunk-step)); err != nil {
				return nil, err
			}
		}
		done += chunk
		var err error
		if layers, err = r.align(); err != nil {
			return nil, err
		}
		if err := write(done, layers); err != nil {
			return nil, err
		}
	}
	return layers, nil
}

// epochLooper turns the end of an epoch into the start of the next, for train.Loop.RunSteps. An epoch ends
// at the dataset's end, or after batchesPerEpoch batches when that is > 0 (data parallelism uses a multiple of
// the number of devices, so that no global batch mixes two epochs).
type epochLooper struct {
	*input.Dataset
	batchesPerEpoch int
}

// Yield implements train.Dataset.
func (l epochLooper) Yield() (any, []*tensors.Tensor, []*tensors.Tensor, error) {
	if _, batch := l.Dataset.Position(); l.batchesPerEpoch > 0 && batch >= l.batchesPerEpoch {
		l.Dataset.Reset()
	}
	spec, inputs, labels, err := l.Dataset.Yield()
	if errors.Is(err, io.EOF) {
		l.Dataset.Reset()
		spec, inputs, labels, err = l.Dataset.Yield()
	}
	return spec, inputs, labels, err
}

// devices is the number of devices a training batch is split over.
func (r *run) devices() int {
	if r.dp == nil {
		return 1
	}
	return r.dp.NumDevices()
}

// trainingBatches is the endless stream of training batches for train.Loop: the dataset itself on one device;
// with data parallelism, GoMLX's distributed accumulator, which gathers as many consecutive per-device batches
// as there are devices into one global batch sharded along its batch axis (the same examples, in the same
// order, as the global batch of a one-device run) and prefetches it onto the devices.
func (r *run) trainingBatches() (train.Dataset, error) {
	looper := epochLooper{Dataset: r.trainDS, batchesPerEpoch: r.stepsPerEpoch * r.devices()}
	if r.dp == nil {
		return looper, nil
	}
	specs := []*distributed.ShardingSpec{r.dp.BatchSharding}
	ds, err := datasets.NewDistributedAccumulator(r.backend, looper, r.dp.Strategy, specs, specs, r.dp.DeviceAssignment)
	if err != nil {
		return nil, fmt.Errorf("splitting training batches over %d devices: %w", r.devices(), err)
	}
	return ds, nil
}

// dataParallel returns the data-parallel set-up that cfg.Devices asks for on backend b, or nil for one device.
func dataParallel(cfg Config, b backends.Backend) (*xla.DataParallel, error) {
	n := cfg.Devices
	if n == -1 {
		n = xla.NumDevices(b)
	}
	if n <= 1 {
		return nil, nil
	}
	dp, err := xla.NewDataParallel(b, n)
	if err != nil {
		return nil, invalid("-devices", "-devices %d: %v; use an XLA backend with several devices (nowt devices lists them) or -devices 1",
			cfg.Devices, err)
	}
	if _, err := dp.PerDeviceBatch(cfg.BatchSize); err != nil {
		return nil, invalid("-devices", "-devices %d: %v: change -batch or -devices", cfg.Devices, err)
	}
	return dp, nil
}

// EvalOptions choose what [EvaluateWith] evaluates; the zero value evaluates the run's newest readable checkpoint
// on its own test set.
type EvalOptions struct {
	// Checkpoint is a checkpoint of the run to evaluate: its path (with or without .json/.bin), or its file name
	// in the run's checkpoints folder ("" = the newest readable one).
	Checkpoint string
	// DataPath and TestLimit override the run's dataset location and test limit ("" and 0 = the run's); -1
	// TestLimit uses the whole test set.
	DataPath  string
	TestLimit int
	// Backend spec ("" = $GOMLX_BACKEND, then auto).
	Backend string
	// Notices receives notices and warnings (nil: out).
	Notices io.Writer
}

// Evaluate loads the newest checkpoint of the run in dir and evaluates it on the run's test set.
func Evaluate(dir, backend string, out io.Writer) (*Result, error) {
	return EvaluateWith(dir, EvalOptions{Backend: backend}, out)
}

// EvaluateWith evaluates a checkpoint of the run in dir (see [EvalOptions]): test top-1, top-5, loss and
// alignment. The result's BestTestTop1 is the best test top-1 of the run's metrics log (the run's real best),
// and Epochs the epochs that the checkpoint's steps make.
func EvaluateWith(dir string, opts EvalOptions, out io.Writer) (res *Result, err error) {
	defer recoverAsError("evaluating the run in "+dir, &err)
	return evaluateRun(dir, opts, out)
}

// evaluateRun is EvaluateWith, without its recovery from panics.
func evaluateRun(dir string, opts EvalOptions, out io.Writer) (*Result, error) {
	start := time.Now()
	if out == nil {
		out = io.Discard
	}
	cfg, err := ReadConfig(dir)
	if err != nil {
		return nil, err
	}
	cfg.Backend, cfg.Progress, cfg.Notices = opts.Backend, false, opts.Notices
	if opts.DataPath != "" {
		cfg.DataPath = opts.DataPath
	}
	switch {
	case opts.TestLimit < 0:
		cfg.TestLimit = 0
	case opts.TestLimit > 0:
		cfg.TestLimit = opts.TestLimit
	}
	if err := cfg.Validate(); err != nil {
		var cfgErr *ConfigError
		if errors.As(err, &cfgErr) && !slices.Contains([]string{"-backend", "-data", "-test-limit"}, cfgErr.Flag) {
			// Not a flag of eval's: the run's stored configuration is at fault.
			return nil, fmt.Errorf("%s holds a setting nowt cannot use (%s): was it edited by hand? Restore it, or train "+
				"the run again", filepath.Join(dir, configFileName), cfgErr.Msg)
		}
		return nil, err
	}
	from := filepath.Join(dir, checkpointDirName)
	if opts.Checkpoint != "" {
		if from, err = findCheckpoint(dir, opts.Checkpoint); err != nil {
			return nil, err
		}
	}
	r, err := setup(cfg, out, from, false)
	if err != nil {
		return nil, err
	}
	defer r.close()
	result := &Result{Config: cfg, Steps: int(optimizers.GetGlobalStep(r.ctx)), Checkpoint: r.checkpoint}
	if result.Layers, err = r.align(); err != nil {
		return nil, err
	}
	if result.TestTop1, result.TestTop5, result.TestLoss, err = r.evaluate(); err != nil {
		return nil, err
	}
	result.BestTestTop1 = result.TestTop1
	records, _ := ReadRecords(filepath.Join(dir, metricsFileName))
	if s := Summarize(records); s.Final != nil { // the run's best evaluation, from the log read once
		result.BestTestTop1 = s.Best
	}
	result.CheckpointAtChance = checkpointAtChance(cfg.Dataset, r.testDS.ClassCounts(), result, records)
	for _, rec := range records {
		if rec.Step > 0 {
			result.Epochs = float64(result.Steps) * rec.Epoch / float64(rec.Step)
		}
	}
	result.SkippedImages = r.skipped()
	result.Duration = time.Since(start)
	return result, nil
}

// findCheckpoint resolves a checkpoint named by the user to the path of its JSON file.
func findCheckpoint(dir, name string) (string, error) {
	base := strings.TrimSuffix(strings.TrimSuffix(name, checkpoints.JsonNameSuffix), checkpoints.BinDataSuffix)
	for _, b := range []string{base, filepath.Join(dir, checkpointDirName, base)} {
		if _, err := os.Stat(b + checkpoints.JsonNameSuffix); err == nil {
			return b + checkpoints.JsonNameSuffix, nil
		}
	}
	bases, _ := listCheckpoints(filepath.Join(dir, checkpointDirName))
	names := make([]string, len(bases))
	for i, b := range bases {
		names[i] = filepath.Base(b)
	}
	return "", invalid("-checkpoint", "-checkpoint %s: no such checkpoint; the run's are %s", name, strings.Join(names, ", "))
}

// mirrorNoiseFloors returns the least and greatest of the weight mirror's noise floors
// ([feedback.MirrorNoiseFloor]) over ctx's layers, and over how many layers.
func mirrorNoiseFloors(ctx *context.Context) (lo, hi float64, n int) {
	for _, layer := range feedback.Layers(ctx) {
		if floor, ok := feedback.MirrorNoiseFloor(ctx, layer); ok {
			if n == 0 || floor < lo {
				lo = floor
			}
			hi = max(hi, floor)
			n++
		}
	}
	return lo, hi, n
}

// degreeRange writes an angle range as "4.3–19.0°", or one angle as "9.8°".
func degreeRange(lo, hi float64) string {
	if fmt.Sprintf("%.1f", lo) == fmt.Sprintf("%.1f", hi) {
		return fmt.Sprintf("%.1f°", lo)
	}
	return fmt.Sprintf("%.1f–%.1f°", lo, hi)
}
