package trainer

import (
	gocontext "context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/distributed"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
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
	// Duration of this invocation (training, evaluation and logging).
	Duration time.Duration
	// Checkpoint is the base path of the last checkpoint written.
	Checkpoint string
}

// NaNError reports a loss that became NaN or infinite; the run keeps its last good checkpoint.
type NaNError struct {
	// Step is the 1-based training step whose loss was not finite; Loss its value.
	Step int
	Loss float64
	// Checkpoint is the last good checkpoint ("" if none was written yet).
	Checkpoint string
}

// Error implements error.
func (e *NaNError) Error() string {
	keep := "no checkpoint had been written yet"
	if e.Checkpoint != "" {
		keep = "the last good checkpoint is " + e.Checkpoint + " (continue from it with -resume, after lowering the learning rate)"
	}
	return fmt.Sprintf("training stopped: the loss is %g at step %d; %s", e.Loss, e.Step, keep)
}

// run holds the state of one training or evaluation session.
type run struct {
	cfg           Config
	out           io.Writer
	backend       backends.Backend
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
	numLayers     int
}

func splitNames(dataset string) (trainSplit, testSplit string) {
	if dataset == "imagefolder" {
		return "train", "val"
	}
	return "train", "test"
}

// setup builds the backend, datasets, context, model and GoMLX trainer. For resume, the checkpoint is attached
// before any graph is built.
func setup(cfg Config, out io.Writer, checkpointDir string, needTrain bool) (*run, error) {
	r := &run{cfg: cfg, out: out}
	var err error
	if r.backend, err = xla.New(cfg.Backend, out); err != nil {
		return nil, err
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
		})
		if err != nil {
			return nil, fmt.Errorf("opening the training set: %w", err)
		}
		r.stepsPerEpoch = r.trainDS.NumBatches() / r.devices()
		if r.stepsPerEpoch == 0 {
			return nil, fmt.Errorf("the training set has %d examples, fewer than one batch of %d: lower -batch",
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
		ImageSize: cfg.ImageSize,
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
		if _, err := loadCheckpoint(ctx, checkpointDir); err != nil {
			return nil, err
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
	trainModel := func(ctx *context.Context, _ any, inputs []*Node) []*Node {
		return []*Node{modelFn(ctx.In("model"), inputs[0])}
	}
	r.trainer = train.NewTrainer(r.backend, ctx, trainModel, loss,
		&SGD{Momentum: cfg.Momentum, Nesterov: cfg.Nesterov, WeightDecay: cfg.WeightDecay},
		[]metrics.Interface{metrics.NewBaseMetric("Batch Accuracy", "acc", metrics.AccuracyMetricType,
			metrics.SparseCategoricalAccuracyGraph, nil)},
		[]metrics.Interface{metrics.NewSparseCategoricalAccuracy("Top-1 Accuracy", "top1"), newTop5Accuracy()})

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
		logits := modelFn(ctx.In("model"), images)
		_, _ = feedback.Gradients(ctx, loss([]*Node{labels}, []*Node{logits}))
		var outs []*Node
		for _, a := range feedback.AlignmentGraph(ctx, g) {
			delta := a.DeltaAngle
			if delta == nil {
				delta = Scalar(g, a.NormRatio.DType(), -1) // Not measured (no gradient reached the layer).
			}
			weight := a.WeightAngle
			if weight == nil {
				weight = Scalar(g, a.NormRatio.DType(), -1) // Not defined (B is not in W's shape: dfa).
			}
			outs = append(outs, weight, delta, a.NormRatio)
		}
		if len(outs) == 0 {
			outs = append(outs, Scalar(g, dtypes.Float32, 0))
		}
		return outs
	})
	if err != nil {
		return nil, err
	}
	return r, nil
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
		if _, err := commandline.ParseContextSettings(ctx, cfg.Settings); err != nil {
			return nil, fmt.Errorf("parsing settings %q: %w", cfg.Settings, err)
		}
	}
	if err := models.CheckParams(ctx); err != nil {
		return nil, err
	}
	if err := feedback.CheckSettings(ctx); err != nil {
		return nil, err
	}
	if err := ctx.SetRNGStateFromSeed(cfg.Seed); err != nil {
		return nil, fmt.Errorf("seeding: %w", err)
	}
	return ctx, nil
}

// normalizeParam turns JSON numbers that are whole into ints, so that config.json round-trips int params.
func normalizeParam(v any) any {
	if f, ok := v.(float64); ok && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return int(f)
	}
	return v
}

// align runs the alignment graph on the fixed batch.
func (r *run) align() ([]LayerAlignment, error) {
	outs, err := r.alignExec.Exec(r.alignBatch[0], r.alignBatch[1])
	if err != nil {
		return nil, fmt.Errorf("computing alignment: %w", err)
	}
	layers := feedback.Layers(r.ctx)
	if len(outs) != 3*len(layers) {
		return nil, nil // No feedback layers.
	}
	result := make([]LayerAlignment, len(layers))
	for i, layer := range layers {
		result[i] = LayerAlignment{Layer: layer.Scope, WeightAngle: scalar(outs[3*i]),
			DeltaAngle: scalar(outs[3*i+1]), NormRatio: scalar(outs[3*i+2])}
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

// evaluate runs the test set: top-1, top-5 and mean loss.
func (r *run) evaluate() (top1, top5, loss float64, err error) {
	outs, err := r.trainer.Eval(r.testDS)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("evaluating: %w", err)
	}
	// Eval returns GoMLX's loss metrics first, then ours: top-1 and top-5 are the last two.
	n := len(outs)
	return scalar(outs[n-2]), scalar(outs[n-1]), scalar(outs[0]), nil
}

// newTop5Accuracy is the fraction of examples whose label is among the 5 largest logits (ties count against).
func newTop5Accuracy() metrics.Interface {
	return metrics.NewMeanMetric("Top-5 Accuracy", "top5", metrics.AccuracyMetricType,
		func(_ *context.Context, labels, predictions []*Node) *Node {
			logits := predictions[0]
			onehot := OneHot(Reshape(labels[0], -1), logits.Shape().Dim(-1), logits.DType())
			labelLogit := InsertAxes(ReduceSum(Mul(logits, onehot), -1), -1) // [batch, 1]
			higher := ReduceSum(ConvertDType(GreaterThan(logits, labelLogit), logits.DType()), -1)
			return ReduceAllMean(ConvertDType(LessThan(higher, Scalar(logits.Graph(), logits.DType(), 5)), logits.DType()))
		}, nil)
}

// Train runs (or, with resume, continues) the training described by cfg, writing to cfg.OutDir, and reports on
// out. Cancelling goCtx stops it after the current step, with a checkpoint.
func Train(goCtx gocontext.Context, cfg Config, out io.Writer, resume bool) (*Result, error) {
	start := time.Now()
	if out == nil {
		out = io.Discard
	}
	checkpointDir := filepath.Join(cfg.OutDir, checkpointDirName)
	existing, err := listCheckpoints(checkpointDir)
	if err != nil {
		return nil, err
	}
	loadFrom, rewriteConfig := "", !resume
	if resume {
		stored, err := ReadConfig(cfg.OutDir)
		if err != nil {
			return nil, fmt.Errorf("cannot resume: %w", err)
		}
		if len(existing) == 0 {
			return nil, fmt.Errorf("cannot resume: %s holds no checkpoint yet; start the run again without -resume", cfg.OutDir)
		}
		// The stored configuration defines the run; only where it runs and how it reports may change.
		// (Devices too: the global batches are the same however many devices they are split over.)
		stored.Backend, stored.Progress, stored.Workers, stored.Devices = cfg.Backend, cfg.Progress, cfg.Workers, cfg.Devices
		extended := cfg.Epochs > stored.Epochs && cfg.Steps == 0 && stored.Steps == 0
		if extended {
			stored.Epochs = cfg.Epochs // Extending a run is allowed, and recorded below.
		}
		cfg = stored
		loadFrom = checkpointDir
		rewriteConfig = extended
	} else if len(existing) > 0 {
		return nil, fmt.Errorf("output folder %s already holds a run (%d checkpoints): continue it with -resume, or choose another -out",
			cfg.OutDir, len(existing))
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the output folder: %w", err)
	}
	r, err := setup(cfg, out, loadFrom, true)
	if err != nil {
		return nil, err
	}
	defer r.trainDS.Close()
	defer r.testDS.Close()
	if r.dp != nil {
		fmt.Fprintf(out, "Data parallelism: each batch of %d split over %d devices (%d each).\n",
			cfg.BatchSize, r.dp.NumDevices(), cfg.BatchSize/r.dp.NumDevices())
	}
	if rewriteConfig {
		if err := WriteConfig(cfg, cfg.OutDir); err != nil {
			return nil, err
		}
	}
	return r.train(goCtx, start, checkpointDir, len(existing) > 0 && resume)
}

func (r *run) train(goCtx gocontext.Context, start time.Time, checkpointDir string, resumed bool) (*Result, error) {
	cfg, ctx := r.cfg, r.ctx
	startStep := int(optimizers.GetGlobalStep(ctx))
	if startStep >= r.totalSteps {
		fmt.Fprintf(r.out, "Run %s already trained %d of %d steps.\n", cfg.OutDir, startStep, r.totalSteps)
	}
	if err := r.trainDS.Seek(startStep/r.stepsPerEpoch, (startStep%r.stepsPerEpoch)*r.devices()); err != nil {
		return nil, fmt.Errorf("positioning the training set at step %d: %w", startStep, err)
	}
	metricsPath := filepath.Join(cfg.OutDir, metricsFileName)
	if resumed {
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

	// Build the model's variables (in inference mode) and measure the initial alignment.
	initial, err := r.align()
	if err != nil {
		return nil, err
	}
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
			if err := r.mirror(warmup); err != nil {
				return nil, err
			}
			fmt.Fprintf(r.out, "Weight mirror: %d warm-up mirror steps before training.\n", warmup)
			if initial, err = r.align(); err != nil { // B moved: measure again.
				return nil, err
			}
		}
	}
	if !resumed {
		// The starting point: test metrics and alignment before the first step (after the mirror warm-up).
		rec := Record{Step: 0, LearningRate: r.schedule.At(0), Layers: initial}
		t1, t5, tl, err := r.evaluate()
		if err != nil {
			return nil, err
		}
		rec.TestTop1, rec.TestTop5, rec.TestLoss = &t1, &t5, &tl
		if err := log.write(rec); err != nil {
			return nil, err
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

	loop := train.NewLoop(r.trainer)
	if cfg.Progress {
		commandline.AttachProgressBar(loop, func() (string, string) {
			median := loop.MedianTrainStepDuration()
			if median <= 0 {
				return "Images/s", "-"
			}
			return "Images/s", fmt.Sprintf("%.0f", float64(cfg.BatchSize)/median.Seconds())
		})
	}
	lastLogTime, lastLogStep := time.Now(), startStep
	var lastLoss, accSum float64
	var accCount int
	var testTop1, testTop5, testLoss *float64
	loop.OnStep("nowt", 100, func(loop *train.Loop, stepMetrics []*tensors.Tensor) error {
		step := loop.LoopStep + 1 // steps done
		lastLoss = scalar(stepMetrics[0])
		if math.IsNaN(lastLoss) || math.IsInf(lastLoss, 0) {
			return &NaNError{Step: step, Loss: lastLoss, Checkpoint: result.Checkpoint}
		}
		accSum += scalar(stepMetrics[len(stepMetrics)-1]) // Our batch accuracy is the last train metric.
		accCount++
		if r.mirrorExec != nil {
			if err := r.mirror(wmSteps); err != nil {
				return err
			}
		}
		last := step == r.totalSteps
		testTop1, testTop5, testLoss = nil, nil, nil
		if step%evalEvery == 0 || last {
			t1, t5, tl, err := r.evaluate()
			if err != nil {
				return err
			}
			testTop1, testTop5, testLoss = &t1, &t5, &tl
			result.TestTop1, result.TestTop5, result.TestLoss = t1, t5, tl
			result.BestTestTop1 = math.Max(result.BestTestTop1, t1)
		}
		if step%logEvery == 0 || last || testTop1 != nil {
			layers, err := r.align()
			if err != nil {
				return err
			}
			now := time.Now()
			rec := Record{Step: step, Epoch: float64(step) / float64(r.stepsPerEpoch), Loss: lastLoss,
				TrainAccuracy: accSum / float64(accCount), TestTop1: testTop1, TestTop5: testTop5, TestLoss: testLoss,
				LearningRate: r.schedule.At(step - 1), Layers: layers,
				ImagesPerSecond: float64((step-lastLogStep)*cfg.BatchSize) / now.Sub(lastLogTime).Seconds()}
			lastLogTime, lastLogStep, accSum, accCount = now, step, 0, 0
			result.Layers = layers
			if err := log.write(rec); err != nil {
				return err
			}
			if !cfg.Progress {
				fmt.Fprintln(r.out, formatRecord(rec))
			}
		}
		stop := goCtx.Err() != nil
		if step%checkpointEvery == 0 || last || stop {
			path, err := saveCheckpoint(ctx, checkpointDir, int64(step), keep)
			if err != nil {
				return err
			}
			result.Checkpoint = path
		}
		if stop {
			return fmt.Errorf("stopped at step %d (%w); continue with -resume", step, goCtx.Err())
		}
		return setLR(step)
	})
	if remaining := r.totalSteps - startStep; remaining > 0 {
		ds, err := r.trainingBatches()
		if err != nil {
			return nil, err
		}
		if _, err := loop.RunSteps(ds, remaining); err != nil {
			var nanErr *NaNError
			if errors.As(err, &nanErr) {
				return result, nanErr
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
	result.Steps = int(optimizers.GetGlobalStep(ctx))
	result.Epochs = float64(result.Steps) / float64(r.stepsPerEpoch)
	result.Duration = time.Since(start)
	return result, nil
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
		return nil, fmt.Errorf("-devices %d: %w; use an XLA backend with several devices (nowt devices lists them) or -devices 1",
			cfg.Devices, err)
	}
	if _, err := dp.PerDeviceBatch(cfg.BatchSize); err != nil {
		return nil, fmt.Errorf("-devices %d: %w: change -batch or -devices", cfg.Devices, err)
	}
	return dp, nil
}

// Evaluate loads the newest checkpoint of the run in dir and evaluates it on the run's test set.
func Evaluate(dir, backend string, out io.Writer) (*Result, error) {
	start := time.Now()
	cfg, err := ReadConfig(dir)
	if err != nil {
		return nil, err
	}
	cfg.Backend = backend
	cfg.Progress = false
	r, err := setup(cfg, out, filepath.Join(dir, checkpointDirName), false)
	if err != nil {
		return nil, err
	}
	defer r.testDS.Close()
	result := &Result{Config: cfg, Steps: int(optimizers.GetGlobalStep(r.ctx))}
	if result.Layers, err = r.align(); err != nil {
		return nil, err
	}
	if result.TestTop1, result.TestTop5, result.TestLoss, err = r.evaluate(); err != nil {
		return nil, err
	}
	result.BestTestTop1 = result.TestTop1
	result.Duration = time.Since(start)
	return result, nil
}
