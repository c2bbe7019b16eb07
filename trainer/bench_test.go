package trainer

import (
	"io"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/nowt-ml/nowt/models"
	"github.com/nowt-ml/nowt/xla"
)

// BenchmarkStepParts takes apart the time of one training step of the 784-500-10 ReLU MLP on MNIST at batch 128
// (docs/perf.md's mlp500 row) on the test backend ($NOWT_TEST_BACKEND, e.g. xla:cpu), by what the step is fed:
//
//   - device: the same batch every step, already on the device: the compiled graph and GoMLX's per-call work
//     (what JAX's and PyTorch's rows in docs/perf.md measure, which reuse one batch);
//   - host: a new host tensor every step (the same values), so the step also transfers its input;
//   - pipeline: the next batch of the input pipeline every step, as nowt trains (and `nowt bench` measures).
//
// The differences between the three are the input transfer and the input pipeline's share of the step.
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
	r, err := setup(cfg, io.Discard, "", true)
	if err != nil {
		b.Skipf("MNIST or the backend not available: %v", err)
	}
	defer r.trainDS.Close()
	defer r.testDS.Close()
	ds, err := r.trainingBatches()
	if err != nil {
		b.Fatal(err)
	}
	spec, inputs, labels, err := ds.Yield()
	if err != nil {
		b.Fatal(err)
	}
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
