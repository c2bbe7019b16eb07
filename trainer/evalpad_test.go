package trainer

import (
	"bytes"
	gocontext "context"
	"fmt"
	"io"
	"path/filepath"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/nowt-ml/nowt/xla"
	"github.com/stretchr/testify/require"
)

// batchesOf is a train.Dataset of fixed batches: images [n, 2] whose values are 1 + the example's index, labels
// the index mod 3.
type batchesOf struct {
	sizes []int
	next  int
}

func (b *batchesOf) Name() string { return "batches-of-test" }
func (b *batchesOf) Reset()       { b.next = 0 }
func (b *batchesOf) Yield() (spec any, inputs, labels []*tensors.Tensor, err error) {
	if b.next >= len(b.sizes) {
		return nil, nil, nil, io.EOF
	}
	first := 0
	for _, n := range b.sizes[:b.next] {
		first += n
	}
	n := b.sizes[b.next]
	b.next++
	images, labs := make([]float32, 2*n), make([]int32, n)
	for i := range n {
		images[2*i], images[2*i+1] = float32(first+i+1), float32(first+i+1)
		labs[i] = int32((first + i) % 3)
	}
	return nil, []*tensors.Tensor{tensors.FromFlatDataAndDimensions(images, n, 2)},
		[]*tensors.Tensor{tensors.FromFlatDataAndDimensions(labs, n, 1)}, nil
}

// TestEvalOptionsRefused: EvaluateWith refuses a negative EvalBatch and a TestLimit below -1, as nowt eval's flags
// do, with a *ConfigError naming the flag, before it reads anything: it used to evaluate with the run's own
// settings (EvalBatch -3) or the whole test set (TestLimit -5) without a word.
func TestEvalOptionsRefused(t *testing.T) {
	for _, tc := range []struct {
		opts       EvalOptions
		flag, want string
	}{
		{EvalOptions{EvalBatch: -3}, "-eval-batch", "-eval-batch -3: must be ≥ 0 (0: the run's)"},
		{EvalOptions{TestLimit: -5}, "-test-limit", "-test-limit -5: must be ≥ -1 (0: the run's limit, -1: all)"},
	} {
		_, err := EvaluateWith(filepath.Join(t.TempDir(), "no-run"), tc.opts, nil)
		var cfgErr *ConfigError
		require.ErrorAs(t, err, &cfgErr)
		require.Equal(t, tc.flag, cfgErr.Flag)
		require.EqualError(t, err, tc.want)
	}
}

// TestPaddedBatches: every batch comes at the full size with its mask; a shorter one keeps its examples, in
// order, and is padded with zero images of label 0, masked out; the end of the data and Reset pass through; a
// batch over the size is an error that names the dataset.
func TestPaddedBatches(t *testing.T) {
	padded := &paddedBatches{inner: &batchesOf{sizes: []int{4, 4, 2}}, size: 4}
	for epoch := range 2 {
		example := 0
		for batch := range 3 {
			spec, inputs, labels, err := padded.Yield()
			require.NoError(t, err, "epoch %d batch %d", epoch, batch)
			require.Equal(t, paddedSpec{}, spec)
			require.Len(t, inputs, 1)
			require.Len(t, labels, 2)
			images := tensors.MustCopyFlatData[float32](inputs[0])
			labs := tensors.MustCopyFlatData[int32](labels[0])
			mask := tensors.MustCopyFlatData[bool](labels[1])
			require.Equal(t, []int{4, 2}, inputs[0].Shape().Dimensions)
			require.Equal(t, []int{4, 1}, labels[0].Shape().Dimensions)
			require.Equal(t, []int{4}, labels[1].Shape().Dimensions)
			for i := range 4 {
				real := batch < 2 || i < 2
				require.Equal(t, real, mask[i], "mask of batch %d row %d", batch, i)
				if real {
					require.Equal(t, []float32{float32(example + 1), float32(example + 1)}, images[2*i:2*i+2])
					require.Equal(t, int32(example%3), labs[i])
					example++
				} else {
					require.Equal(t, []float32{0, 0}, images[2*i:2*i+2], "padding")
					require.Equal(t, int32(0), labs[i], "padding's label")
				}
			}
		}
		require.Equal(t, 10, example)
		_, _, _, err := padded.Yield()
		require.ErrorIs(t, err, io.EOF)
		padded.Reset()
	}
	tooSmall := &paddedBatches{inner: &batchesOf{sizes: []int{5}}, size: 4}
	_, _, _, err := tooSmall.Yield()
	require.ErrorContains(t, err, "batches-of-test")
	require.ErrorContains(t, err, "at most 4")
}

// TestEvaluationIndependentOfEvalBatch: a checkpoint's test top-1, top-5 and loss (softmax and sigmoid) are the
// same whether the test set (100 images) is one batch (at eval batch 100, or 500: not padded up to it), or
// batches of 32 or 7 whose last (4 or 2 images) is padded: the padding counts nowhere (were it counted, as zero
// images of class 0, the three would differ).
func TestEvaluationIndependentOfEvalBatch(t *testing.T) {
	for _, loss := range []string{"softmax", "sigmoid"} {
		t.Run(loss, func(t *testing.T) {
			c := tinyConfig(t, "bp")
			c.Loss, c.TestLimit, c.EvalBatchSize, c.Steps = loss, 100, 32, 4
			res, err := Train(gocontext.Background(), c, nil, false)
			require.NoError(t, err)
			var whole *Result
			for _, batch := range []int{100, 500, 32, 7} {
				got, err := EvaluateWith(c.OutDir, EvalOptions{EvalBatch: batch}, nil)
				require.NoError(t, err, "eval batch %d", batch)
				if whole == nil {
					whole = got
					require.Greater(t, whole.TestTop1, 0.3, "the checkpoint learned (4 steps)")
					require.Less(t, whole.TestTop5, 1.0, "top-5 is not trivially 1")
					continue
				}
				require.InDelta(t, whole.TestTop1, got.TestTop1, 1e-6, "top-1 at eval batch %d", batch)
				require.InDelta(t, whole.TestTop5, got.TestTop5, 1e-6, "top-5 at eval batch %d", batch)
				require.InDelta(t, whole.TestLoss, got.TestLoss, 1e-5*whole.TestLoss, "loss at eval batch %d", batch)
			}
			require.InDelta(t, res.TestTop1, whole.TestTop1, 1e-6, "the training run's last evaluation (eval batch 32)")
			require.InDelta(t, res.TestLoss, whole.TestLoss, 1e-5*whole.TestLoss, "the training run's last evaluation")
		})
	}
}

// TestAlignmentIndependentOfEvalBatch: the angles are measured on the run's own examples (the first -eval-batch
// test images as the run started, 32 here), whatever -eval-batch a later `nowt eval` or resume asks for. Measured
// on the first batch at the new size, as they were, FA's delta and gradient angles moved (62.10° → 62.71° and
// 71.39° → 75.12° in one MNIST run's eval at -eval-batch 100000).
func TestAlignmentIndependentOfEvalBatch(t *testing.T) {
	if xla.TestBackendIsXLA() {
		t.Skip("the run's bookkeeping, the same on every backend: the pure-Go pass runs it")
	}
	c := tinyConfig(t, "fa")
	c.TestLimit, c.EvalBatchSize, c.Steps, c.CheckpointEvery = 100, 32, 4, 4
	res, err := Train(gocontext.Background(), c, nil, false)
	require.NoError(t, err)
	require.NotEmpty(t, res.Layers)
	sameAngles := func(t *testing.T, want, got []LayerAlignment, what string) {
		t.Helper()
		require.Len(t, got, len(want), what)
		for i, w := range want {
			require.NotNil(t, w.DeltaAngle, "%s: %s's delta angle", what, w.Layer)
			require.Equal(t, 32, w.DeltaExamples+w.DeltaUndefined, "%s: %s's alignment batch", what, w.Layer)
			require.Equal(t, w.DeltaExamples, got[i].DeltaExamples, "%s: %s", what, w.Layer)
			require.InDelta(t, *w.DeltaAngle, *got[i].DeltaAngle, 1e-4, "%s: %s's delta angle", what, w.Layer)
			if w.GradientAngle != nil {
				require.InDelta(t, *w.GradientAngle, *got[i].GradientAngle, 1e-4, "%s: %s's gradient angle", what, w.Layer)
			}
		}
	}
	for _, batch := range []int{7, 100} {
		got, err := EvaluateWith(c.OutDir, EvalOptions{EvalBatch: batch}, nil)
		require.NoError(t, err, "eval batch %d", batch)
		sameAngles(t, res.Layers, got.Layers, fmt.Sprintf("nowt eval -eval-batch %d", batch))
	}

	// Resumed with another -eval-batch, then again with a third: the angles stay on the first 32 images.
	for i, batch := range []int{100, 7} {
		c.EvalBatchSize, c.Steps = batch, 8+4*i
		resumed, err := Train(gocontext.Background(), c, nil, true)
		require.NoError(t, err, "resume at -eval-batch %d", batch)
		for _, l := range resumed.Layers {
			require.Equal(t, 32, l.DeltaExamples+l.DeltaUndefined, "resumed at -eval-batch %d: %s's alignment batch", batch, l.Layer)
		}
	}
	stored, err := ReadConfig(c.OutDir)
	require.NoError(t, err)
	require.Len(t, stored.Changes, 2)
	require.Equal(t, 32, stored.alignBatch(), "from the changes %q", stored.Changes)
}

// TestAlignBatchFromChanges: a run's alignment batch is its evaluation batch as it started, read back from the
// first resume that changed -eval-batch (unset there: -batch).
func TestAlignBatchFromChanges(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want int
	}{
		{"never changed", Config{BatchSize: 64, EvalBatchSize: 500}, 500},
		{"unset: -batch", Config{BatchSize: 64}, 64},
		{"changed once", Config{BatchSize: 64, EvalBatchSize: 1000,
			Changes: []string{"resumed at step 300: -lr 0.1 → 0.05, -eval-batch 500 → 1000"}}, 500},
		{"changed twice", Config{BatchSize: 64, EvalBatchSize: 8, Changes: []string{
			"resumed at step 10: -steps 20 → 40", "resumed at step 20: -eval-batch (unset) → 1000",
			"resumed at step 40: -eval-batch 1000 → 8"}}, 64},
		{"set by an override", Config{BatchSize: 64, EvalBatchSize: 8, alignSize: 256}, 256},
	} {
		t.Run(tc.name, func(t *testing.T) { require.Equal(t, tc.want, tc.cfg.alignBatch()) })
	}
}

// TestInterruptCutsEvaluationShort: Ctrl-C during a test-set evaluation ends it at the next batch instead of
// after the whole test set (a run interrupted in the middle of an ImageNet evaluation waited minutes): the step
// is recorded without test metrics, its checkpoint is written, and a resume trains on from it with every later
// evaluation whole. Before the stop check, the interrupted step's record had its test metrics.
func TestInterruptCutsEvaluationShort(t *testing.T) {
	if xla.TestBackendIsXLA() {
		t.Skip("the run's bookkeeping, the same on every backend: the pure-Go pass runs it")
	}
	c := tinyConfig(t, "fa")
	c.TestLimit, c.EvalBatchSize, c.Steps, c.LogEvery, c.EvalEvery, c.CheckpointEvery = 64, 8, 4, 1, 1, 4
	var notices bytes.Buffer
	c.Notices = &notices
	ctx, cancel := gocontext.WithCancel(gocontext.Background())
	defer cancel()
	out := &cancelOnRecord{cancel: cancel} // cancelled once step 0's record is out: step 1's evaluation sees it
	_, err := Train(ctx, c, out, false)
	var interrupted *InterruptedError
	require.ErrorAs(t, err, &interrupted, out.String())
	require.Equal(t, 1, interrupted.Step)
	saved, err := filepath.Glob(interrupted.Checkpoint + "*")
	require.NoError(t, err)
	require.NotEmpty(t, saved, "step 1's checkpoint %s", interrupted.Checkpoint)
	require.Contains(t, notices.String(), "Evaluation of step 1 cut short")
	records, err := ReadRecords(filepath.Join(c.OutDir, "metrics.jsonl"))
	require.NoError(t, err)
	require.Len(t, records, 2)
	require.NotNil(t, records[0].TestTop1, "step 0 was evaluated whole")
	require.Equal(t, 1, records[1].Step)
	require.Nil(t, records[1].TestTop1, "step 1's evaluation was cut short")
	require.NotEmpty(t, records[1].Layers, "step 1's alignment is measured")

	c.Notices = nil
	res, err := Train(gocontext.Background(), c, nil, true)
	require.NoError(t, err)
	require.Equal(t, c.Steps, res.Steps)
	records, err = ReadRecords(filepath.Join(c.OutDir, "metrics.jsonl"))
	require.NoError(t, err)
	require.Len(t, records, 5)
	for _, rec := range records[2:] {
		require.NotNil(t, rec.TestTop1, "step %d after the resume", rec.Step)
	}
}
