package trainer

import (
	gocontext "context"
	"io"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"
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
