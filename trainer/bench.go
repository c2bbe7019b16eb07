package trainer

import (
	"fmt"
	"io"
	"time"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/train"
	"github.com/gomlx/gomlx/pkg/ml/train/optimizers"
	"github.com/nowt-ml/nowt/feedback"
)

// Throughput is the measured training speed of one configuration.
type Throughput struct {
	Model, Rule     string
	Batch           int
	Devices         int // the batch is split over this many devices
	Steps           int
	StepTime        time.Duration // median-free mean over the timed steps
	ImagesPerSecond float64
}

// Benchmark trains cfg for warmup untimed steps (compilation included) and then steps timed steps, mirror steps
// included for rules that use them, and reports the training throughput. It writes no files.
func Benchmark(cfg Config, warmup, steps int, out io.Writer) (*Throughput, error) {
	if out == nil {
		out = io.Discard
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
	defer r.trainDS.Close()
	defer r.testDS.Close()
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
	var started time.Time
	for i := range warmup + steps {
		if i == warmup {
			started = time.Now()
		}
		if err := trainStep(r.trainer, ds); err != nil {
			return nil, fmt.Errorf("training step %d: %w", i, err)
		}
		if r.mirrorExec != nil {
			if err := r.mirror(wmSteps); err != nil {
				return nil, err
			}
		}
	}
	elapsed := time.Since(started)
	return &Throughput{Model: cfg.Model, Rule: cfg.Rule, Batch: cfg.BatchSize, Devices: r.devices(), Steps: steps,
		StepTime:        elapsed / time.Duration(max(1, steps)),
		ImagesPerSecond: float64(steps*cfg.BatchSize) / elapsed.Seconds()}, nil
}

// trainStep runs one training step on the next batch of ds, distributed when ds is a train.DistributedDataset.
func trainStep(t *train.Trainer, ds train.Dataset) error {
	if dds, ok := ds.(train.DistributedDataset); ok {
		spec, inputs, labels, err := dds.DistributedYield()
		if err != nil {
			return err
		}
		_, err = t.DistributedTrainStep(dds.Strategy(), dds.DeviceAssignment(), spec, inputs, labels)
		return err
	}
	spec, inputs, labels, err := ds.Yield()
	if err != nil {
		return err
	}
	_, err = t.TrainStep(spec, inputs, labels)
	return err
}
