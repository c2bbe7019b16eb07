package trainer

import (
	"io"
	"os"
	"testing"
	"time"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/train"
	"github.com/nowt-ml/nowt/internal/stats"
	"github.com/nowt-ml/nowt/models"
	"github.com/nowt-ml/nowt/xla"
)

// BenchmarkStepParts takes apart the time of one training step of the 784-500-10 ReLU MLP on MNIST at batch 128
// (docs/perf.md's mlp500 row) on the test backend ($NOWT_TEST_BACKEND, e.g. xla:cpu), by what the step is fed:
//
//   - device: the same batch every step, already on the device: the compiled graph and GoMLX's per-call work
//     (what JAX's and PyTorch's rows in docs/perf.md measure, which reuse one batch);
//   - host: a new host tensor every step (the same values), so the step also transfers its input;
//   - pipeline: the next batch of the input pipeline every step, made on the host;
//   - indexed: the next batch as nowt trains on one XLA device (and `nowt bench` measures): MNIST's images on the
//     device, each step's batch gathered there by its indices (input.Options.Indexed; on pure Go, as pipeline).
//
// The differences between them are the input transfer and the input pipeline's share of the step.
//
//	NOWT_TEST_BACKEND=xla:cpu go test ./trainer -run '^$' -bench StepParts -benchtime 300x
func BenchmarkStepParts(b *testing.B) {
	b.Setenv("GOMLX_BACKEND", xla.TestBackendSpec())
	cfg := DefaultConfig()
	cfg.Rule, cfg.Model, cfg.Dataset = "bp", "mlp", "mnist"
	cfg.Params = map[string]any{models.ParamMLPHidden: "500", models.ParamMLPActivation: "relu"}
	cfg.BatchSize, cfg.Steps, cfg.Progress, cfg.OutDir = 128, 1000, false, b.TempDir()
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	indexedCfg := cfg
	cfg.hostBatches = true // device, host and pipeline: batches of images
	r, err := setup(cfg, io.Discard, "", true)
	if err != nil {
		b.Skipf("MNIST or the backend not available: %v", err)
	}
	defer r.close()
	ri, err := setup(indexedCfg, io.Discard, "", true)
	if err != nil {
		b.Fatal(err)
	}
	defer ri.close()
	indexedDS, spec, inputs, labels := firstBatch(b, ri)
	if err := trainStepOn(ri.trainer, spec, inputs, labels); err != nil { // compile
		b.Fatal(err)
	}
	ds, spec, inputs, labels := firstBatch(b, r)
	step := func(inputs, labels []*tensors.Tensor) {
		if err := trainStepOn(r.trainer, spec, inputs, labels); err != nil {
			b.Fatal(err)
		}
	}
	step(inputs, labels) // compile
	images, labelValues := tensors.MustCopyFlatData[float32](inputs[0]), tensors.MustCopyFlatData[int32](labels[0])
	imageDims, labelDims := inputs[0].Shape().Dimensions, labels[0].Shape().Dimensions
	parts := []struct {
		name string
		run  func()
	}{
		{"device", func() { step(inputs, labels) }},
		{"host", func() {
			step([]*tensors.Tensor{tensors.FromFlatDataAndDimensions(images, imageDims...)},
				[]*tensors.Tensor{tensors.FromFlatDataAndDimensions(labelValues, labelDims...)})
		}},
		{"pipeline", func() {
			if err := trainStep(r.trainer, ds); err != nil {
				b.Fatal(err)
			}
		}},
		{"indexed", func() {
			if err := trainStep(ri.trainer, indexedDS); err != nil {
				b.Fatal(err)
			}
		}},
	}
	for _, part := range parts {
		b.Run(part.name, func(b *testing.B) {
			for range 5 {
				part.run()
			}
			b.ResetTimer()
			for range b.N {
				part.run()
			}
		})
	}
}

// BenchmarkGradientNorm measures what logging the steps' global gradient norm costs: the same step of the
// 784-500-10 ReLU MLP at batch 128 (the same batch, on the device) with the norm computed and read back, and
// without (logGradientNorms false), alternating one step of each (each first in every other pair) so that both
// see the same machine. It reports
// the ratio of the medians, with ÷ without (1.00: free). GRADNORM_CONTROL=1 sets both up without the norm: the
// ratio it then reports is the benchmark's own noise.
//
//	NOWT_TEST_BACKEND=xla:cpu go test ./trainer -run '^$' -bench GradientNorm -benchtime 2000x
func BenchmarkGradientNorm(b *testing.B) {
	b.Setenv("GOMLX_BACKEND", xla.TestBackendSpec())
	backend, err := newRunBackend(DefaultConfig().Backend, 1, io.Discard) // one backend for both, as in nowt bench
	if err != nil {
		b.Skipf("the backend is not available: %v", err)
	}
	defer backend.Finalize()
	steps := make([]func(), 2)
	for i, logged := range []bool{os.Getenv("GRADNORM_CONTROL") == "", false} {
		logGradientNorms = logged
		cfg := DefaultConfig()
		cfg.Rule, cfg.Model, cfg.Dataset = "fa", "mlp", "mnist"
		cfg.Params = map[string]any{models.ParamMLPHidden: "500", models.ParamMLPActivation: "relu"}
		cfg.BatchSize, cfg.Steps, cfg.Progress, cfg.OutDir = 128, 1000, false, b.TempDir()
		r, err := setupOn(backend, cfg, io.Discard, "", true)
		logGradientNorms = true
		if err != nil {
			b.Skipf("MNIST not available: %v", err)
		}
		defer r.close()
		_, spec, inputs, labels := firstBatch(b, r)
		steps[i] = func() {
			if err := trainStepOn(r.trainer, spec, inputs, labels); err != nil {
				b.Fatal(err)
			}
		}
		for range 5 {
			steps[i]() // compile and warm up
		}
	}
	var with, without []time.Duration
	b.ResetTimer()
	timed := func(step func(), into *[]time.Duration) {
		start := time.Now()
		step()
		*into = append(*into, time.Since(start))
	}
	for i := range b.N {
		if i%2 == 0 { // Each goes first in every other pair: the first of a pair runs slower on a busy machine.
			timed(steps[0], &with)
			timed(steps[1], &without)
		} else {
			timed(steps[1], &without)
			timed(steps[0], &with)
		}
	}
	b.ReportMetric(float64(stats.Median(with))/float64(stats.Median(without)), "with÷without")
	b.ReportMetric(float64(stats.Median(with).Microseconds()), "µs-with")
	b.ReportMetric(float64(stats.Median(without).Microseconds()), "µs-without")
}

// firstBatch returns r's training batches and the first of them.
func firstBatch(b *testing.B, r *run) (ds train.Dataset, spec any, inputs, labels []*tensors.Tensor) {
	ds, err := r.trainingBatches()
	if err != nil {
		b.Fatal(err)
	}
	spec, inputs, labels, err = ds.Yield()
	if err != nil {
		b.Fatal(err)
	}
	return ds, spec, inputs, labels
}
