package trainer

import (
	gocontext "context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/context/checkpoints"
	"github.com/gomlx/gomlx/pkg/ml/train/optimizers"
	"github.com/nowt-ml/nowt/feedback"
)

// Names of the alignment graph's outputs, per layer (see alignOutputName).
const (
	alignWeightAngle    = "weight_angle"
	alignNormRatio      = "norm_ratio"
	alignWeightNorm     = "weight_norm"
	alignDeltaAngle     = "delta_angle"
	alignDeltaUndefined = "delta_undefined"
	alignGradientAngle  = "gradient_angle"
)

// alignOutputName names one alignment output of the layer in scope.
func alignOutputName(scope, metric string) string { return scope + "#" + metric }

// align runs the alignment graph on the fixed batch and reads its outputs by name. An angle that is NaN (a
// zero vector on one side) is undefined and stays nil in the record.
func (r *run) align() ([]LayerAlignment, error) {
	if err := r.settleFeedback(); err != nil {
		return nil, err
	}
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
			NormRatio: defined(scope, alignNormRatio), WeightNorm: defined(scope, alignWeightNorm),
			GradientAngle: defined(scope, alignGradientAngle)}
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

// evaluate runs the test set: top-1, top-5 and mean loss (without regularisation), read by metric name. Once stop
// (nil: never) is cancelled, it ends at the next batch with an error that is [errEvaluationInterrupted].
func (r *run) evaluate(stop gocontext.Context) (top1, top5, loss float64, err error) {
	outs, err := r.trainer.Eval(&paddedBatches{inner: r.testDS, size: r.evalBatch, stop: stop})
	if readErr := (*readError)(nil); errors.As(err, &readErr) {
		return 0, 0, 0, fmt.Errorf("evaluating: reading the test set: %w", readErr.err)
	}
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

// Short names of the evaluation metrics (each a [maskedMean]: GoMLX's own "#loss" would weigh a padded batch by
// its padded size).
const (
	evalTop1 = "top1"
	evalTop5 = "top5"
	evalLoss = "test_loss"
)

// top5AccuracyGraph is the fraction of a batch's real examples (see [exampleMask]) whose label is among the 5
// largest logits (ties count against).
func top5AccuracyGraph(_ *context.Context, labels, predictions []*Node) *Node {
	logits := predictions[0]
	onehot := OneHot(Reshape(labels[0], -1), logits.Shape().Dim(-1), logits.DType())
	labelLogit := InsertAxes(ReduceSum(Mul(logits, onehot), -1), -1) // [batch, 1]
	higher := ReduceSum(ConvertDType(GreaterThan(logits, labelLogit), logits.DType()), -1)
	return MaskedReduceAllMean(ConvertDType(LessThan(higher, Scalar(logits.Graph(), logits.DType(), 5)), logits.DType()),
		exampleMask(labels))
}

// EvalOptions choose what [EvaluateWith] evaluates; the zero value evaluates the run's newest readable checkpoint
// on its own test set.
type EvalOptions struct {
	// Checkpoint is a checkpoint of the run to evaluate: its path (with or without .json/.bin), or its file name
	// in the run's checkpoints folder ("" = the newest readable one).
	Checkpoint string
	// DataPath and TestLimit override the run's dataset location and test limit ("" and 0 = the run's); -1
	// TestLimit uses the whole test set (below -1 is an error).
	DataPath  string
	TestLimit int
	// EvalBatch overrides the run's evaluation batch size (0 = the run's; negative is an error): it changes the
	// memory an evaluation takes, not its result (a shorter last batch is padded and masked).
	EvalBatch int
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
	defer func() {
		if err == nil {
			return
		}
		if cfg, cerr := ReadConfig(dir); cerr == nil { // the settings the advice names, read only on failure
			err = withMemoryAdvice(err, cfg)
		}
	}()
	defer recoverAsError("evaluating the run in "+dir, &err)
	return evaluateRun(dir, opts, out)
}

// evaluateRun is EvaluateWith, without its recovery from panics.
func evaluateRun(dir string, opts EvalOptions, out io.Writer) (*Result, error) {
	start := time.Now()
	if out == nil {
		out = io.Discard
	}
	if opts.TestLimit < -1 {
		return nil, invalid("-test-limit", "-test-limit %d: must be ≥ -1 (0: the run's limit, -1: all)", opts.TestLimit)
	}
	if opts.EvalBatch < 0 {
		return nil, invalid("-eval-batch", "-eval-batch %d: must be ≥ 0 (0: the run's)", opts.EvalBatch)
	}
	cfg, err := ReadConfig(dir)
	if err != nil {
		return nil, err
	}
	cfg.Backend, cfg.Progress, cfg.Notices = opts.Backend, false, opts.Notices
	if opts.DataPath != "" {
		cfg.DataPath = opts.DataPath
	}
	if opts.EvalBatch > 0 {
		cfg.alignSize = cfg.alignBatch() // the angles stay measured on the run's own examples
		cfg.EvalBatchSize = opts.EvalBatch
	}
	switch {
	case opts.TestLimit < 0:
		cfg.TestLimit = 0
	case opts.TestLimit > 0:
		cfg.TestLimit = opts.TestLimit
	}
	if err := cfg.Validate(); err != nil {
		var cfgErr *ConfigError
		if errors.As(err, &cfgErr) && !slices.Contains([]string{"-backend", "-data", "-test-limit", "-eval-batch"}, cfgErr.Flag) {
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
	if result.TestTop1, result.TestTop5, result.TestLoss, err = r.evaluate(gocontext.Background()); err != nil {
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
	base := checkpointBase(name)
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
