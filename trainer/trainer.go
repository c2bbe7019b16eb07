package trainer

import (
	gocontext "context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/train"
	"github.com/gomlx/gomlx/pkg/ml/train/optimizers"
	"github.com/gomlx/gomlx/ui/commandline"
	"github.com/nowt-ml/nowt/feedback"
	"github.com/nowt-ml/nowt/input"
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

// recoverAsError turns a panic that reached an API boundary of this package (GoMLX reports graph-building errors,
// such as an input too small for a model's kernels, by panicking) into an error returned through *err.
func recoverAsError(what string, err *error) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("%s: %v", what, p)
	}
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
	if goCtx == nil {
		return nil, errors.New("trainer.Train: nil context.Context (pass context.Background() where nothing cancels the run)")
	}
	defer func() { err = withMemoryAdvice(err, cfg) }()
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
		cfg.alignSize = stored.alignBatch() // a new -eval-batch does not move the angles' examples
	} else if len(existing) > 0 {
		return nil, invalid("-out", "-out %s already holds a run (%d checkpoints): continue it with -resume, or choose another -out",
			cfg.OutDir, len(existing))
	} else if last, planned, ok := finishedLog(cfg.OutDir); ok {
		return nil, invalid("-out", "-out %s already holds a finished run (its metrics log reaches step %d of %d; it keeps "+
			"no checkpoint): choose another -out, or delete %s to train there anew", cfg.OutDir, last, planned, cfg.OutDir)
	} else if runs := runsBelow(cfg.OutDir); len(runs) > 0 {
		// A comparison's folder (nowt compare's -out): a run beside its rules' folders would make nowt compare
		// refuse it from then on.
		return nil, invalid("-out", "-out %s holds a comparison, not a run (it holds %d: %s): a run trains into a "+
			"folder of its own; choose another -out (or -resume one of its runs)", cfg.OutDir, len(runs), shortList(runs, 4))
	} else if note := replacedRunNotice(cfg); note != "" {
		fmt.Fprintln(notices, note)
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
	r.clock = &wallClock{dir: cfg.OutDir, start: start}
	defer func() { _ = r.clock.bank() }()
	keep, onDisk := positiveOr(cfg.KeepCheckpoints, 2), 0
	if resume && r.checkpoint != "" {
		if onDisk, err = pruneOnResume(checkpointDir, r.checkpoint, keep); err != nil {
			return nil, err
		}
	}
	if warning := spaceWarning(cfg.OutDir, freeBytes(cfg.OutDir), checkpointBytes(r.ctx, r.checkpoint, cfg.Momentum > 0),
		keep, onDisk); warning != "" {
		fmt.Fprintln(notices, warning)
	}
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
		t1, t5, tl, err := r.evaluate(goCtx)
		if errors.Is(err, errEvaluationInterrupted) {
			return nil, &InterruptedError{}
		}
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
	var accCount int
	var norms normStats                           // the gradient norms since the last record
	guard := guardFromRecords(earlier, startLoss) // rebuilt from the records on resume
	since := sinceRecordVariable(ctx)             // what the steps since the last record counted, kept in checkpoints
	if resumed {
		kept, err := loadSinceRecord(since)
		if err != nil {
			return nil, err
		}
		accSum, accCount, norms = kept.accSum, kept.accCount, kept.norms
	}
	var testTop1, testTop5, testLoss *float64
	chance := newChanceWatch(cfg.Dataset, testCounts, cfg.ChanceGuard, earlier)
	var collapse *CollapseError // set when -chance-guard stops the run
	loop.OnStep("nowt", 100, func(loop *train.Loop, stepMetrics []*tensors.Tensor) error {
		step := loop.LoopStep + 1 // steps done
		r.feedbackStale = true
		defer func() { segmentStart = time.Now() }()
		lastLoss = scalar(stepMetrics[0])
		if !isFinite(lastLoss) {
			// Its loss came from the weights after step-1: only checkpoints from before are known to be good.
			return r.divergedAt(&NaNError{Step: step, Loss: lastLoss}, checkpointDir, step-1)
		}
		accSum += scalar(stepMetrics[r.accuracyMetric])
		accCount++
		norm := scalar(stepMetrics[r.normMetric])
		if !isFinite(norm) {
			// A finite loss but a gradient that overflowed: the step's update made the weights non-finite, and
			// those after step-1 overflow again on the same batch.
			return r.divergedAt(&NaNError{Step: step, Loss: norm, OnGradient: true, LastLoss: lastLoss}, checkpointDir, step-1)
		}
		norms.add(norm, cfg.ClipNorm)
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
		evaluated := step%evalEvery == 0 || last
		var t1, t5, tl float64
		if evaluated {
			var err error
			t1, t5, tl, err = r.evaluate(goCtx)
			if errors.Is(err, errEvaluationInterrupted) {
				// Stopping: the step's record goes without test metrics, its checkpoint is written below.
				fmt.Fprintf(r.notices, "Evaluation of step %d cut short by the interruption: its record has no test metrics.\n", step)
				evaluated = false
			} else if err != nil {
				return err
			}
		}
		if evaluated {
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
			norms.fill(&rec, cfg.ClipNorm)
			norms = normStats{}
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
			guard.observe(step, lastLoss)
			if guard.grown >= DivergenceLogs && !cfg.NoDivergenceGuard {
				// The weights after step guard.lastFine-1 gave a loss in range; later ones may have started to grow.
				return r.divergedAt(&NaNError{Step: step, Loss: lastLoss, Start: guard.start}, checkpointDir, guard.lastFine)
			}
		}
		stop := goCtx.Err() != nil
		// While the loss is far above its start, no checkpoint replaces the last good one (unless stopping).
		if (step%checkpointEvery == 0 && guard.grown == 0) || last || stop || collapse != nil {
			if err := (sinceRecord{accSum: accSum, accCount: accCount, norms: norms}).store(since); err != nil {
				return err
			}
			if err := r.settleFeedback(); err != nil {
				return err
			}
			path, err := saveCheckpointFunc(ctx, checkpointDir, int64(step), keep)
			if err != nil {
				return &StorageError{What: fmt.Sprintf("the checkpoint of step %d into %s", step, checkpointDir), Err: err,
					Checkpoint: result.Checkpoint}
			}
			result.Checkpoint = path
			_ = r.clock.bank() // best effort, as at the end: a wall time never stops a run
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
			if !r.finishResultAfterFailure(result, metricsPath, start) {
				result = nil // the run so far cannot be read back: report the failure alone
			}
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
			var readErr *readError
			if errors.As(err, &readErr) {
				return result, fmt.Errorf("reading the training batch of step %d: %w", loop.LoopStep+1, readErr.err)
			}
			return result, fmt.Errorf("training: %w", err)
		}
	} else {
		t1, t5, tl, err := r.evaluate(goCtx)
		if errors.Is(err, errEvaluationInterrupted) {
			return nil, &InterruptedError{} // nothing trained: the same command evaluates again
		}
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

// finishResultAfterFailure is finishResult after a training step failed, and reports whether it could be done:
// an execution that fails (a device out of memory, say) can leave the variables it was given without values, so
// that reading the step counter panics, which must not hide the failure itself.
func (r *run) finishResultAfterFailure(result *Result, metricsPath string, start time.Time) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	r.finishResult(result, metricsPath, start)
	return true
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
