package trainer

import (
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/train"
	"github.com/gomlx/gomlx/pkg/ml/train/optimizers"
	"github.com/nowt-ml/nowt/feedback"
	"github.com/pkg/errors"
)

// Throughput is the measured training speed of one configuration.
type Throughput struct {
	Model, Rule     string
	Batch           int
	Devices         int // the batch is split over this many devices
	Steps           int
	FirstStep       time.Duration // the first step, compilation included
	StepTime        time.Duration // median of the timed steps (mirror steps included)
	MirrorTime      time.Duration // median time of a step's weight-mirror steps (0 for rules without them)
	ImagesPerSecond float64       // BatchSize / StepTime
}

// MirrorShare is the fraction of a step's time spent in weight-mirror steps.
func (t *Throughput) MirrorShare() float64 {
	if t.StepTime <= 0 {
		return 0
	}
	return t.MirrorTime.Seconds() / t.StepTime.Seconds()
}

// Benchmark trains cfg for warmup untimed steps (compilation included) and then steps timed steps, mirror steps
// included for rules that use them, and reports the training throughput from the median step. It writes no files.
func Benchmark(cfg Config, warmup, steps int, out io.Writer) (tp *Throughput, err error) {
	defer recoverAsError(fmt.Sprintf("benchmarking %s under rule %s", cfg.Model, cfg.Rule), &err)
	if out == nil {
		out = io.Discard
	}
	if steps < 1 || warmup < 0 {
		return nil, fmt.Errorf("benchmark: %d timed steps after %d warm-up steps: want at least 1 timed step and no negative count", steps, warmup)
	}
	cfg.OutDir = "unused"
	if cfg.Epochs <= 0 && cfg.Steps <= 0 {
		cfg.Steps = warmup + steps
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r, err := setup(cfg, out, "", true)
	if err != nil {
		return nil, err
	}
	defer r.close()
	if _, err := r.align(); err != nil { // builds the variables
		return nil, err
	}
	if feedback.HasMirrorLayers(r.ctx) {
		if r.mirrorExec, err = newMirrorExec(r); err != nil {
			return nil, err
		}
	}
	wmSteps := context.GetParamOr(r.ctx, feedback.ParamWMSteps, 1)
	// The learning rate only matters for what is computed, not for its speed: keep it constant.
	optimizers.LearningRateVar(r.ctx, dtypes.Float32, cfg.LearningRate)
	ds, err := r.trainingBatches()
	if err != nil {
		return nil, err
	}
	var first time.Duration
	stepTimes, mirrorTimes := make([]time.Duration, 0, steps), make([]time.Duration, 0, steps)
	for i := range max(1, warmup) + steps {
		started := time.Now()
		if err := trainStep(r.trainer, ds); err != nil {
			return nil, fmt.Errorf("training step %d: %w", i, err)
		}
		mirrorStarted := time.Now()
		if r.mirrorExec != nil {
			if err := r.mirror(wmSteps); err != nil {
				return nil, err
			}
		}
		done := time.Now()
		switch {
		case i == 0:
			first = done.Sub(started)
		case i >= max(1, warmup):
			stepTimes = append(stepTimes, done.Sub(started))
			if r.mirrorExec != nil {
				mirrorTimes = append(mirrorTimes, done.Sub(mirrorStarted))
			}
		}
	}
	step := median(stepTimes)
	return &Throughput{Model: cfg.Model, Rule: cfg.Rule, Batch: cfg.BatchSize, Devices: r.devices(), Steps: steps,
		FirstStep: first, StepTime: step, MirrorTime: median(mirrorTimes),
		ImagesPerSecond: float64(cfg.BatchSize) / step.Seconds()}, nil
}

// median returns the median of ds (the mean of the two middle values for an even count), 0 for none.
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// trainStep runs one training step on the next batch of ds, distributed when ds is a train.DistributedDataset,
// and waits for it to finish (it reads the step's metrics to the host), so that it can be timed.
func trainStep(t *train.Trainer, ds train.Dataset) error {
	var metrics []*tensors.Tensor
	if dds, ok := ds.(train.DistributedDataset); ok {
		spec, inputs, labels, err := dds.DistributedYield()
		if err != nil {
			return err
		}
		if metrics, err = t.DistributedTrainStep(dds.Strategy(), dds.DeviceAssignment(), spec, inputs, labels); err != nil {
			return err
		}
	} else {
		spec, inputs, labels, err := ds.Yield()
		if err != nil {
			return err
		}
		return trainStepOn(t, spec, inputs, labels)
	}
	return readMetrics(metrics)
}

// trainStepOn runs one training step on the given batch and waits for it to finish (it reads the step's
// metrics to the host).
func trainStepOn(t *train.Trainer, spec any, inputs, labels []*tensors.Tensor) error {
	metrics, err := t.TrainStep(spec, inputs, labels)
	if err != nil {
		return err
	}
	return readMetrics(metrics)
}

// readMetrics reads a step's metrics to the host, which waits for the step to finish.
func readMetrics(metrics []*tensors.Tensor) error {
	for _, m := range metrics {
		if err := m.ConstFlatData(func(any) {}); err != nil {
			return errors.Wrap(err, "reading the training step's metrics")
		}
	}
	return nil
}
