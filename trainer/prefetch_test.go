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
	owned              bool
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
func (s *countingSource) IsOwnershipTransferred() bool { return !s.owned }

func prefetchBackend(t *testing.T) backends.Backend {
	t.Setenv("GOMLX_BACKEND", xla.TestBackendSpec())
	b, err := newRunBackend("auto", 1, io.Discard)
	require.NoError(t, err)
	t.Cleanup(b.Finalize)
	return b
}

// TestDevicePrefetch: batches come in the source's order, on the device, one taken ahead; the source's error comes
// in its turn and nothing is read after it; Reset drops the batch in flight and resets the source; stop leaves no
// Yield running in the source (the run closes it next), frees the batch in flight where the source gave its
// ownership away, and refuses a later Yield.
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

	// stop: the batch in flight (2) is waited for and, owned by the consumer, freed.
	p.stop()
	require.False(t, src.inYield.Load(), "no Yield running in the source after stop")
	require.False(t, src.last.Ok(), "the batch in flight, the consumer's, is freed")
	_, _, _, err = p.Yield()
	require.ErrorContains(t, err, "after the run stopped")

	// A source that keeps its batches' ownership (input.Options.ReuseBatches) has the batch in flight left alone.
	kept := &countingSource{n: 5, owned: true}
	q := newDevicePrefetch(backend, kept)
	require.False(t, q.IsOwnershipTransferred())
	_, _, _, err = q.Yield()
	require.NoError(t, err)
	q.stop()
	require.Equal(t, 2, kept.yielded)
	require.True(t, kept.last.Ok(), "the batch in flight, the source's, is left alone")
}
