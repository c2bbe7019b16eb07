package trainer

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/train"
	"github.com/gomlx/gomlx/pkg/ml/train/metrics"
	"github.com/gomlx/gomlx/ui/commandline"
	"github.com/nowt-ml/nowt/feedback"
	"github.com/nowt-ml/nowt/input"
	"github.com/nowt-ml/nowt/internal/param"
	"github.com/nowt-ml/nowt/models"
	"github.com/nowt-ml/nowt/xla"
)

// run holds the state of one training or evaluation session.
type run struct {
	cfg           Config
	out           io.Writer
	backend       backends.Backend
	sharedBackend bool // backend belongs to the caller of setupOn: close leaves it
	ctx           *context.Context
	trainDS       *input.Dataset
	prefetch      *devicePrefetch     // the training batches moved to the device ahead, when trainingBatches made it
	distributed   *distributedBatches // the global batches of data parallelism, when trainingBatches made them
	testDS        *input.Dataset
	evalBatch     int // the size to which evaluation pads a shorter batch (paddedBatches): the test set's batch size
	classes       int
	stepsPerEpoch int
	totalSteps    int
	schedule      Schedule
	trainer       *train.Trainer
	dp            *xla.DataParallel // nil: one device
	alignExec     *context.Exec
	mirrorExec    *context.Exec
	settleExec    *context.Exec     // brings the KP B whose updates the steps defer up to date (deferred.go)
	feedbackStale bool              // a step ran since settleExec last did
	alignBatch    []*tensors.Tensor // images, labels
	alignOutputs  []string          // names of alignExec's outputs (alignOutputName)
	numLayers     int
	notices       io.Writer
	checkpoint    string     // the checkpoint loaded, if any
	clock         *wallClock // nil: the invocation's time is not recorded (nowt eval)
	// accuracyMetric and normMetric index the training step's metrics: the batch accuracy and the gradient
	// norm.
	accuracyMetric, normMetric int
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
	evalBatch := cfg.evalBatch()
	if needTrain {
		r.trainDS, err = input.Open(cfg.Dataset, cfg.DataPath, trainSplit, input.Options{
			BatchSize: cfg.BatchSize / r.devices(), BatchMultiple: r.devices(), // no global batch spans two epochs
			Seed: cfg.Seed, Shuffle: true, DropRemainder: true, Augment: cfg.Augment,
			Normalize: true, Workers: cfg.Workers, Limit: cfg.TrainLimit, ImageSize: cfg.ImageSize,
			SkipCorrupt: !cfg.Strict, OnSkip: r.warnSkipped,
			// train.Loop and bench's steps are done with a batch before they ask for the next; GoMLX's distributed
			// accumulator keeps several.
			ReuseBatches: r.dp == nil,
			Indexed:      indexedTraining(cfg, r.backend, r.dp),
		})
		if err != nil {
			if tooFew := (*input.TooFewError)(nil); errors.As(err, &tooFew) {
				advice := "lower -batch" // -train-limit 0 (all) or above the split's size: no limit to raise
				if tooFew.Limited {
					advice += " or raise -train-limit"
				}
				return nil, invalid("-batch", "%v (-batch %d, -train-limit %d): %s", err, cfg.BatchSize, cfg.TrainLimit, advice)
			}
			return nil, fmt.Errorf("opening the training set: %w", err)
		}
		// At least one: Open refuses a split with fewer batches than BatchMultiple (a *input.TooFewError, above).
		r.stepsPerEpoch = r.trainDS.NumBatches() / r.devices()
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
	r.evalBatch = min(evalBatch, r.testDS.NumExamples()) // a test set smaller than a batch is not padded up to one

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
			r.checkpoint = checkpointBase(checkpointDir) // as the newest is named: without .json or .bin
		}
	}
	modelFn, err := models.New(cfg.Model, r.classes)
	if err != nil {
		return nil, err
	}
	loss, err := lossFn(cfg.Loss, cfg.LabelSmoothing, ctx)
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
		logits := model(ctx, input.BatchImages(inputs))
		if g := logits.Graph(); !ctx.IsTraining(g) {
			feedback.ReleaseGraph(ctx, g) // An evaluation graph builds no gradient (a training one: SGD releases it).
		}
		return []*Node{logits}
	}
	sgd := &SGD{Momentum: cfg.Momentum, Nesterov: cfg.Nesterov, WeightDecay: cfg.WeightDecay, ClipNorm: cfg.ClipNorm,
		deferUnread: !cfg.noDeferredFeedback}
	normMetric := sgd.GradientNormMetric()
	if !logGradientNorms {
		sgd.norms = nil // The optimizer hands the metric no norm: it reports NaN.
	}
	r.trainer = train.NewTrainer(r.backend, ctx, trainModel, loss, sgd,
		[]metrics.Interface{metrics.NewBaseMetric(batchAccuracyMetricName, "acc", metrics.AccuracyMetricType,
			metrics.SparseCategoricalAccuracyGraph, nil), normMetric},
		[]metrics.Interface{
			newMaskedMean("Top-1 Accuracy", evalTop1, metrics.AccuracyMetricType, metrics.SparseCategoricalAccuracyGraph),
			newMaskedMean("Top-5 Accuracy", evalTop5, metrics.AccuracyMetricType, top5AccuracyGraph),
			newMaskedMean("Test Loss", evalLoss, metrics.LossMetricType, func(_ *context.Context, labels, predictions []*Node) *Node {
				return loss(labels, predictions)
			}),
		})
	r.accuracyMetric, r.normMetric = -1, -1
	for i, m := range r.trainer.TrainMetrics() {
		switch m.Name() {
		case batchAccuracyMetricName:
			r.accuracyMetric = i
		case GradientNormMetricName:
			r.normMetric = i
		}
	}
	if r.accuracyMetric < 0 || r.normMetric < 0 {
		return nil, fmt.Errorf("internal error: the trainer lost the %q or %q training metric",
			batchAccuracyMetricName, GradientNormMetricName)
	}

	// A fixed batch of test images for the alignment metrics.
	images, labels, err := r.alignmentExamples(cfg, testSplit)
	if err != nil {
		return nil, err
	}
	r.alignBatch = []*tensors.Tensor{images, labels}

	// The network's initial values are drawn on the host, on every engine: one seed, one initial network.
	if err := initializeOnHost(cfg, ctx, modelFn, loss, dtype, images.Shape(), labels.Shape()); err != nil {
		return nil, err
	}
	r.alignExec, err = context.NewExec(r.backend, ctx, func(ctx *context.Context, images, labels *Node) []*Node {
		g := images.Graph()
		ctx.SetTraining(g, false) // batch norm on its running statistics: the angles do not depend on the batch
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
			add(a.Scope, alignWeightNorm, a.WeightNorm)
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

// alignmentExamples reads the fixed batch the alignment metrics are measured on: the test set's first
// cfg.alignBatch() examples (all of a smaller test set). Where that is the evaluation batch it is the test set's
// first batch; otherwise (an evaluation batch changed by a resume or `nowt eval`) the same examples are read
// again in a batch of their own, so that the angles do not depend on -eval-batch.
func (r *run) alignmentExamples(cfg Config, split string) (images, labels *tensors.Tensor, err error) {
	ds, size := r.testDS, min(cfg.alignBatch(), r.testDS.NumExamples())
	if size != r.evalBatch {
		ds, err = input.Open(cfg.Dataset, cfg.DataPath, split, input.Options{
			BatchSize: size, Seed: cfg.Seed, Normalize: true, Workers: cfg.Workers, Limit: cfg.TestLimit,
			ImageSize: cfg.ImageSize, SkipCorrupt: !cfg.Strict, // the test set's own reader warns of skipped images
		})
		if err != nil {
			return nil, nil, fmt.Errorf("opening the test set for the alignment metrics: %w", err)
		}
		defer ds.Close()
	}
	_, in, out, err := ds.Yield()
	if err != nil {
		return nil, nil, fmt.Errorf("reading the test set: %w", err)
	}
	if ds == r.testDS {
		r.testDS.Reset()
	}
	return in[0], out[0], nil
}

// close releases what setup made: the datasets' workers and the backend (an XLA backend's PJRT client, with its
// threads and device memory: a process that trains several runs, like nowt compare, would otherwise keep every
// one of them).
func (r *run) close() {
	if r.prefetch != nil {
		r.prefetch.stop() // before the source closes: no batch is then being taken from it
		r.prefetch = nil
	}
	if r.distributed != nil {
		r.distributed.stop() // likewise, and no shard is then being moved onto a device the backend frees below
		r.distributed = nil
	}
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
	for _, e := range []*context.Exec{r.alignExec, r.mirrorExec, r.settleExec} {
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

// newContext creates the context with every known hyperparameter, the configuration's, and its -set settings.
func newContext(cfg Config) (*context.Context, error) {
	ctx := context.New().Checked(false)
	for k, v := range feedback.DefaultParams() {
		ctx.SetParam(k, v)
	}
	for k, v := range models.DefaultParams() {
		ctx.SetParam(k, v)
	}
	if err := checkParams(cfg.Params); err != nil {
		return nil, err
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
	if err := checkSetNames(ctx, settings); err != nil {
		return err
	}
	if _, err := commandline.ParseContextSettings(ctx, settings); err != nil {
		return invalid("-set", "-set %q: %v (see nowt rules -v for the names)", settings, err)
	}
	return nil
}

// checkParams refuses a Config.Params entry that no rule, model or layer reads (a mistyped name, which the context
// would keep without a word, as -set refuses it) or whose value is not of its default's kind: GoMLX would read
// the number 16 as the string "\x10" for mlp_hidden, and panic reading the string "32" as resnet_width.
func checkParams(params map[string]any) error {
	defaults := feedback.DefaultParams()
	maps.Copy(defaults, models.DefaultParams())
	for _, name := range slices.Sorted(maps.Keys(params)) {
		v := params[name]
		def, known := defaults[name]
		if !known {
			return invalid("-set", "Params[%q]: no rule, model or layer has a hyperparameter of that name (nowt rules -v "+
				"and nowt models -v list them; feedback.DefaultParams and models.DefaultParams hold them)", name)
		}
		want, got := param.Kind(def), param.Kind(v)
		if got != want {
			return invalid("-set", "Params[%q] = %#v is %s: want %s, as its default %#v", name, v, got, want, def)
		}
		if f, ok := v.(float64); ok && isInt(def) && f != math.Trunc(f) {
			return invalid("-set", "Params[%q] = %v: want a whole number, as its default %v", name, v, def)
		}
	}
	return nil
}

// isInt reports whether v is an integer.
func isInt(v any) bool {
	switch v.(type) {
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return true
	}
	return false
}

// normalizeParam turns JSON numbers that are whole into ints, so that config.json round-trips int params.
func normalizeParam(v any) any {
	if f, ok := v.(float64); ok && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return int(f)
	}
	return v
}

// modelScope is the context scope the model is built in: per-layer settings name /model/<layer scope>.
const modelScope = "model"

// logGradientNorms is false only in the benchmark that measures what computing the steps' gradient norms costs
// (BenchmarkGradientNorm): the norm metric then reports NaN (a training loop would stop on it) and the optimizer
// computes no norm unless it clips.
var logGradientNorms = true

// batchAccuracyMetricName names the training step's batch-accuracy metric.
const batchAccuracyMetricName = "Batch Accuracy"

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
	settings := models.Settings()
	var bad error
	ctx.EnumerateParams(func(scope, key string, _ any) {
		if bad != nil || scope == context.RootScope || scope == root {
			return
		}
		if i := slices.IndexFunc(settings, func(s models.Setting) bool { return s.Name == key && s.ModelWide }); i >= 0 {
			flag := ""
			if f := settings[i].Flag; f != "" {
				flag = ", or with its flag -" + f
			}
			bad = invalid("-set", "-set: %s is a setting of the whole model, read at its top: at scope %s it would be "+
				"ignored (give it without a scope%s)", key, scope, flag)
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

// epochLooper turns the end of an epoch into the start of the next, for train.Loop.RunSteps. (With data
// parallelism the training set's epoch is a whole multiple of the devices' count of batches,
// input.Options.BatchMultiple, so that no global batch mixes two epochs.)
type epochLooper struct {
	*input.Dataset
}

// Yield implements train.Dataset.
func (l epochLooper) Yield() (any, []*tensors.Tensor, []*tensors.Tensor, error) {
	spec, inputs, labels, err := l.Dataset.Yield()
	if errors.Is(err, io.EOF) {
		l.Dataset.Reset()
		spec, inputs, labels, err = l.Dataset.Yield()
	}
	if err != nil {
		err = &readError{err}
	}
	return spec, inputs, labels, err
}

// readError is a training batch that could not be read (a corrupt image under -strict, a file gone): Train reports
// it as the input's error, without the training loop's wrapping.
type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

// devices is the number of devices a training batch is split over.
func (r *run) devices() int {
	if r.dp == nil {
		return 1
	}
	return r.dp.NumDevices()
}

// trainingBatches is the endless stream of training batches for train.Loop: on one device the dataset itself,
// moved to the device a batch ahead on XLA where the dataset hands its batches over (devicePrefetch: the transfer
// runs while the step before runs; r.close stops it); with data parallelism, GoMLX's distributed accumulator, which gathers as many consecutive per-device batches
// as there are devices into one global batch sharded along its batch axis (the same examples, in the same
// order, as the global batch of a one-device run) and prefetches it onto the devices (distributedBatches; r.close
// stops it too).
func (r *run) trainingBatches() (train.Dataset, error) {
	looper := epochLooper{Dataset: r.trainDS}
	if r.dp == nil {
		// The pure-Go backend's "device" is host memory: nothing to transfer ahead. A training set that writes its
		// batches again (ReuseBatches: in-memory pixels on one device) makes each batch ahead itself and, on XLA's
		// CPU plugin, straight into memory the device shares; the prefetch must not call its Yield during a step.
		if r.backend.Name() != "xla" || !r.trainDS.IsOwnershipTransferred() {
			return looper, nil
		}
		if r.prefetch != nil {
			r.prefetch.stop()
		}
		r.prefetch = newDevicePrefetch(r.backend, looper)
		return r.prefetch, nil
	}
	if r.distributed != nil {
		r.distributed.stop()
	}
	ds, err := newDistributedBatches(r.backend, looper, r.dp)
	if err != nil {
		return nil, fmt.Errorf("splitting training batches over %d devices: %w", r.devices(), err)
	}
	r.distributed = ds
	return ds, nil
}

// indexedTraining reports whether the training set is read as indexed batches (input.Options.Indexed): its images
// on the device once and each step's batch gathered there, so that no batch is made or transferred on the host
// during a step. On one XLA device, for training and nowt bench's pipeline feed (its host and device feeds keep one
// batch of images); not on the pure-Go backend, whose device is the host (a batch costs it nothing next to its
// step), nor with data parallelism, whose accumulator splits every input along its batch axis.
func indexedTraining(cfg Config, b backends.Backend, dp *xla.DataParallel) bool {
	return !cfg.hostBatches && dp == nil && b.Name() == "xla" && (cfg.Feed == "" || cfg.Feed == FeedPipeline)
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
