package trainer

import (
	"errors"
	"io"
	"sync/atomic"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/nowt-ml/nowt/xla"
	"github.com/stretchr/testify/require"
)

// countingSource yields batches whose one input holds the batch's number, then fails with err after n batches;
// it records whether a Yield was running when the test looked, and how often it was reset.
type countingSource struct {
	n, yielded, resets int
	err                error
	inYield            atomic.Bool
	last               *tensors.Tensor // the input of the last batch yielded
}

func (s *countingSource) Name() string { return "counting" }
func (s *countingSource) Reset()       { s.yielded, s.resets = 0, s.resets+1 }
func (s *countingSource) Yield() (any, []*tensors.Tensor, []*tensors.Tensor, error) {
	s.inYield.Store(true)
	defer s.inYield.Store(false)
	if s.yielded == s.n {
		return nil, nil, nil, s.err
	}
	s.yielded++
	s.last = tensors.FromValue([]float32{float32(s.yielded)})
	return nil, []*tensors.Tensor{s.last}, []*tensors.Tensor{tensors.FromValue([]int32{1})}, nil
}

func prefetchBackend(t *testing.T) backends.Backend {
	t.Setenv("GOMLX_BACKEND", xla.TestBackendSpec())
	b, err := newRunBackend("auto", 1, io.Discard)
	require.NoError(t, err)
	t.Cleanup(b.Finalize)
	return b
}

// TestDevicePrefetch: batches come in the source's order, on the device, one taken ahead; the source's error comes
// in its turn and nothing is read after it; Reset drops the batch in flight and resets the source; stop leaves no
// Yield running in the source (the run closes it next), frees the batch in flight, and refuses a later Yield.
func TestDevicePrefetch(t *testing.T) {
	backend := prefetchBackend(t)
	bad := errors.New("a corrupt image")
	src := &countingSource{n: 3, err: bad}
	p := newDevicePrefetch(backend, src)
	require.Zero(t, src.yielded, "nothing read before the first Yield")
	for want := 1; want <= 3; want++ {
		_, inputs, labels, err := p.Yield()
		require.NoError(t, err)
		require.True(t, inputs[0].IsOnDevice(0) && labels[0].IsOnDevice(0), "batch %d on the device", want)
		require.Equal(t, []float32{float32(want)}, tensors.MustCopyFlatData[float32](inputs[0]))
	}
	_, _, _, err := p.Yield()
	require.ErrorIs(t, err, bad, "the source's error, in its turn")
	require.False(t, p.inFlight, "nothing read ahead after an error")

	p.Reset()
	require.Equal(t, 1, src.resets)
	_, inputs, _, err := p.Yield()
	require.NoError(t, err)
	require.Equal(t, []float32{1}, tensors.MustCopyFlatData[float32](inputs[0]), "after Reset, the source's first batch")
	require.True(t, p.inFlight, "the next batch is being taken ahead")
	p.Reset() // drops the batch in flight (batch 2)
	require.Equal(t, 2, src.resets)
	_, inputs, _, err = p.Yield()
	require.NoError(t, err)
	require.Equal(t, []float32{1}, tensors.MustCopyFlatData[float32](inputs[0]), "the dropped batch is not handed over")

	// stop: the batch in flight (2) is waited for and freed.
	p.stop()
	require.False(t, src.inYield.Load(), "no Yield running in the source after stop")
	require.False(t, src.last.Ok(), "the batch in flight is freed")
	_, _, _, err = p.Yield()
	require.ErrorContains(t, err, "after the run stopped")
}

// TestTrainingBatchesPrefetch: on XLA a training set that hands its batches over (the worker pool: synthetic
// images) reaches the step through devicePrefetch; one that writes its batches again (MNIST's in-memory pixels,
// ReuseBatches) does not, since the prefetch would call its Yield during a step; the pure-Go backend has nothing to
// transfer. The run stops the prefetch when it closes.
func TestTrainingBatchesPrefetch(t *testing.T) {
	for _, tc := range []struct {
		dataset, data string
		wantPrefetch  bool
	}{
		{"synthetic", "examples=64,size=8,channels=3,classes=4", xla.TestBackendIsXLA()},
		{"mnist", "", false},
	} {
		t.Run(tc.dataset, func(t *testing.T) {
			cfg := tinyConfig(t, "bp")
			cfg.Dataset, cfg.DataPath, cfg.TestLimit = tc.dataset, tc.data, 32
			r, err := setup(cfg, io.Discard, "", true)
			require.NoError(t, err)
			ds, err := r.trainingBatches()
			require.NoError(t, err)
			p, isPrefetch := ds.(*devicePrefetch)
			require.Equal(t, tc.wantPrefetch, isPrefetch, "%T", ds)
			_, _, _, err = ds.Yield()
			require.NoError(t, err)
			r.close()
			if isPrefetch {
				require.True(t, p.stopped, "the run stopped its prefetch")
				require.False(t, p.inFlight, "no batch left in flight")
			}
		})
	}
}
