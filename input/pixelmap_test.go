package input

import (
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/stretchr/testify/require"
)

// TestPixelMapMatchesFloatPath checks that the lookup tables give, bit for bit, what toFloat followed by
// normalizeChannels gives, for every 8-bit value in every channel of every known normalisation and without one.
func TestPixelMapMatchesFloatPath(t *testing.T) {
	type tc struct {
		name      string
		c         int
		mean, std []float32
	}
	cases := []tc{{name: "none-1", c: 1}, {name: "none-3", c: 3}}
	for name := range normalization {
		mean, std, _ := Normalization(name)
		cases = append(cases, tc{name, len(mean), mean, std})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := make([]uint8, 259*tc.c) // every value in every channel, and a length no multiple of 8
			for i := range src {
				src[i] = uint8(i / tc.c % 256)
			}
			want := make([]float32, len(src))
			toFloat(src, want)
			if tc.mean != nil {
				normalizeChannels(want, tc.mean, tc.std)
			}
			got := make([]float32, len(src))
			newPixelMap(tc.c, tc.mean, tc.std).convert(src, got)
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("value %d channel %d: lookup %v, float path %v", src[i], i%tc.c, got[i], want[i])
				}
			}
		})
	}
}

// TestInMemoryPixelsPath checks that a source's in-memory pixels, converted in Yield itself, give the same
// batches as its load function through the worker pool, with and without normalisation, shuffling, a limit and
// a dropped remainder, and that augmentation still goes through load.
func TestInMemoryPixelsPath(t *testing.T) {
	newSource := func(inMemory bool) *source { return randomPixelSource(37, 4, 5, 3, inMemory) }
	batches := func(src *source, opts Options) [][]float32 {
		ds, err := newDataset("test", src, opts)
		require.NoError(t, err)
		defer ds.Close()
		var out [][]float32
		for {
			_, inputs, _, err := ds.Yield()
			if errors.Is(err, io.EOF) {
				return out
			}
			require.NoError(t, err)
			out = append(out, tensors.MustCopyFlatData[float32](inputs[0]))
		}
	}
	for _, opts := range []Options{
		{BatchSize: 8, Normalize: true},
		{BatchSize: 8, Shuffle: true, Seed: 3, Workers: 3},
		{BatchSize: 8, Shuffle: true, Seed: 2, Limit: 20, DropRemainder: true, Normalize: true},
		{BatchSize: 8, Normalize: true, Augment: true, Seed: 5},
	} {
		want, got := batches(newSource(false), opts), batches(newSource(true), opts)
		require.Equal(t, len(want), len(got))
		for b := range want {
			require.Equal(t, want[b], got[b], "batch %d with %+v", b, opts)
		}
	}
}

// randomPixelSource is a source of n random h×w×c 8-bit images (labels i mod 7, CIFAR-10's normalisation) that
// loads them through the float path (toFloat, or padCropFlip when augmenting) and, when inMemory, also offers its
// pixels, which sends Datasets without augmentation down the inline path.
func randomPixelSource(n, h, w, c int, inMemory bool) *source {
	rng := rand.New(rand.NewPCG(1, 2))
	pix := make([]uint8, n*h*w*c)
	for i := range pix {
		pix[i] = uint8(rng.IntN(256))
	}
	labels := make([]int32, n)
	for i := range labels {
		labels[i] = int32(i % 7)
	}
	mean, std, _ := Normalization("cifar10")
	sz := h * w * c
	src := &source{n: n, h: h, w: w, c: c, numClasses: 7, labels: labels, mean: mean, std: std,
		load: func(i int, dst []float32, rng *rand.Rand) error {
			if rng != nil {
				padCropFlip(pix[i*sz:(i+1)*sz], h, w, c, 1, 1.0/255, dst, rng)
				return nil
			}
			toFloat(pix[i*sz:(i+1)*sz], dst)
			return nil
		}}
	if inMemory {
		src.pixels = func(i int) []uint8 { return pix[i*sz : (i+1)*sz] }
	}
	return src
}

// TestInlineBatchMadeAheadFollowsSeekAndReset checks that the inline path, which makes each next batch in the
// background, yields exactly what the worker pool yields when the caller moves around: Seek back and forward,
// Reset in the middle of an epoch, the end of an epoch, and Close while a batch is being made ahead; also under
// ReuseBatches, where batches are written into the tensors of earlier ones (each batch is read before the next).
func TestInlineBatchMadeAheadFollowsSeekAndReset(t *testing.T) {
	type op struct {
		name         string
		seek         bool
		epoch, batch int  // for seek
		reset        bool // else a Yield
	}
	yield := op{name: "yield"}
	ops := []op{
		yield, yield, // batch 1's ahead is ready
		{name: "seek back", seek: true, epoch: 0, batch: 0}, yield, yield, yield,
		{name: "seek forward", seek: true, epoch: 0, batch: 4}, yield,
		{name: "reset mid-epoch", reset: true}, yield, yield,
		{name: "seek to another epoch", seek: true, epoch: 3, batch: 2}, yield, yield, yield, yield, // to EOF
		{name: "reset at the end", reset: true}, yield, yield,
	}
	record := func(src *source, reuse bool) []string {
		ds, err := newDataset("test", src, Options{BatchSize: 8, Shuffle: true, Seed: 4, Normalize: true,
			ReuseBatches: reuse})
		require.NoError(t, err)
		defer ds.Close() // with a batch being made ahead
		var out []string
		for i, o := range ops {
			switch {
			case o.seek:
				require.NoError(t, ds.Seek(o.epoch, o.batch), "op %d %s", i, o.name)
			case o.reset:
				ds.Reset()
			default:
				epoch, batch := ds.Position()
				_, inputs, labels, err := ds.Yield()
				if errors.Is(err, io.EOF) {
					out = append(out, fmt.Sprintf("op %d at %d/%d: EOF", i, epoch, batch))
					continue
				}
				require.NoError(t, err, "op %d", i)
				out = append(out, fmt.Sprintf("op %d at %d/%d: images %v labels %v", i, epoch, batch,
					tensors.MustCopyFlatData[float32](inputs[0]), tensors.MustCopyFlatData[int32](labels[0])))
			}
		}
		return out
	}
	const n, h, w, c = 37, 4, 5, 3 // 5 batches, the last of 5 examples
	want := record(randomPixelSource(n, h, w, c, false), false)
	for _, reuse := range []bool{false, true} {
		got := record(randomPixelSource(n, h, w, c, true), reuse)
		require.Len(t, got, len(want))
		for i := range want {
			require.Equal(t, want[i], got[i], "ReuseBatches %v", reuse)
		}
	}
	require.True(t, slices.ContainsFunc(want, func(s string) bool { return strings.HasSuffix(s, "EOF") }),
		"the sequence reaches the end of an epoch")
}

// TestWorkerBatchesSkipCorruptInOrder checks the worker pool's batches when an example is skipped as corrupt: the
// batch holds the other examples in order, bit for bit as without the corrupt one, and with DropRemainder it is
// refilled to its size by repeating them from its first.
func TestWorkerBatchesSkipCorruptInOrder(t *testing.T) {
	const n, h, w, c, bs, bad = 12, 3, 4, 3, 4, 5 // example 5 sits at position 1 of batch 1
	clean := randomPixelSource(n, h, w, c, false)
	corrupt := randomPixelSource(n, h, w, c, false)
	load := corrupt.load
	corrupt.load = func(i int, dst []float32, rng *rand.Rand) error {
		if i == bad {
			return fmt.Errorf("example %d: %w: made up", i, errCorrupt)
		}
		return load(i, dst, rng)
	}
	sz := h * w * c
	example := func(i int) []float32 { // example i as the clean pipeline yields it
		ds, err := newDataset("clean", clean, Options{BatchSize: bs, Normalize: true, Workers: 3})
		require.NoError(t, err)
		defer ds.Close()
		require.NoError(t, ds.Seek(0, i/bs))
		_, inputs, _, err := ds.Yield()
		require.NoError(t, err)
		return tensors.MustCopyFlatData[float32](inputs[0])[(i%bs)*sz : (i%bs+1)*sz]
	}
	for _, tc := range []struct {
		name          string
		dropRemainder bool
		want          []int // the examples of batch 1
	}{
		{"shorter batch", false, []int{4, 6, 7}},
		{"refilled batch", true, []int{4, 6, 7, 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds, err := newDataset("corrupt", corrupt, Options{BatchSize: bs, Normalize: true, Workers: 3,
				SkipCorrupt: true, DropRemainder: tc.dropRemainder})
			require.NoError(t, err)
			defer ds.Close()
			require.NoError(t, ds.Seek(0, 1))
			_, inputs, labels, err := ds.Yield()
			require.NoError(t, err)
			require.Equal(t, []int{len(tc.want), h, w, c}, inputs[0].Shape().Dimensions)
			images, labs := tensors.MustCopyFlatData[float32](inputs[0]), tensors.MustCopyFlatData[int32](labels[0])
			for k, i := range tc.want {
				require.Equal(t, example(i), images[k*sz:(k+1)*sz], "position %d holds example %d", k, i)
				require.Equal(t, int32(i%7), labs[k], "position %d's label", k)
			}
			require.Equal(t, 1, ds.Skipped())
		})
	}
}

// TestReuseBatchesKeepsTheLastTwo checks ReuseBatches' contract on the inline path: a batch's tensors keep its
// values until Yield is asked for the second batch after it (checked once the batch made ahead is written), over
// epochs whose last batch is shorter and a Seek; tensors are in fact reused (a handful for forty batches, against one
// pair per batch without the option); a batch whose tensors the consumer freed is written into new ones; and the
// Dataset tells GoMLX's training loop whether the batches it yields are its to free.
func TestReuseBatchesKeepsTheLastTwo(t *testing.T) {
	const n, h, w, c = 37, 4, 5, 3 // 5 batches of 8, the last of 5 examples
	type batch struct {
		images, labels *tensors.Tensor
		imageValues    []float32
		labelValues    []int32
	}
	run := func(reuse bool) (yielded []batch, distinct int) {
		ds, err := newDataset("test", randomPixelSource(n, h, w, c, true), Options{BatchSize: 8, Shuffle: true, Seed: 4,
			Normalize: true, ReuseBatches: reuse})
		require.NoError(t, err)
		defer ds.Close()
		require.Equal(t, !reuse, ds.IsOwnershipTransferred())
		seen := map[*tensors.Tensor]bool{}
		for len(yielded) < 40 {
			if len(yielded) == 17 {
				require.NoError(t, ds.Seek(5, 1)) // the batch made ahead is dropped, the next made on the spot
			}
			_, inputs, labels, err := ds.Yield()
			if errors.Is(err, io.EOF) {
				ds.Reset()
				continue
			}
			require.NoError(t, err)
			if ds.ahead != nil {
				<-ds.ahead.done // the next batch is written: where it went, it went
			}
			b := batch{images: inputs[0], labels: labels[0], imageValues: tensors.MustCopyFlatData[float32](inputs[0]),
				labelValues: tensors.MustCopyFlatData[int32](labels[0])}
			if k := len(yielded); k > 0 {
				prev := yielded[k-1] // Yield was asked for the batch after it, not yet for the second after it
				require.Equal(t, prev.imageValues, tensors.MustCopyFlatData[float32](prev.images), "batch %d", k-1)
				require.Equal(t, prev.labelValues, tensors.MustCopyFlatData[int32](prev.labels), "batch %d", k-1)
			}
			seen[b.images] = true
			yielded = append(yielded, b)
		}
		return yielded, len(seen)
	}
	want, all := run(false)
	require.Equal(t, len(want), all, "without ReuseBatches every batch has its own tensors")
	got, distinct := run(true)
	require.LessOrEqual(t, distinct, 8, "tensors are reused")
	for k := range want {
		require.Equal(t, want[k].imageValues, got[k].imageValues, "batch %d", k)
		require.Equal(t, want[k].labelValues, got[k].labelValues, "batch %d", k)
	}

	// A consumer that frees its batches anyway gets new tensors, not an error or a panic.
	ds, err := newDataset("test", randomPixelSource(n, h, w, c, true), Options{BatchSize: 8, Shuffle: true, Seed: 4,
		Normalize: true, ReuseBatches: true})
	require.NoError(t, err)
	defer ds.Close()
	for k := range 4 {
		_, inputs, labels, err := ds.Yield()
		require.NoError(t, err)
		require.Equal(t, want[k].imageValues, tensors.MustCopyFlatData[float32](inputs[0]), "batch %d", k)
		require.Equal(t, want[k].labelValues, tensors.MustCopyFlatData[int32](labels[0]), "batch %d", k)
		require.NoError(t, inputs[0].FinalizeAll())
		require.NoError(t, labels[0].FinalizeAll())
	}

	// The worker pool's batches are always new: the training loop may free them.
	pool, err := newDataset("test", randomPixelSource(n, h, w, c, false), Options{BatchSize: 8, ReuseBatches: true})
	require.NoError(t, err)
	defer pool.Close()
	require.True(t, pool.IsOwnershipTransferred())
}

// TestNextEpochMadeAhead checks that both paths start making the next epoch's first batch while the caller still
// trains on the last one of an epoch, before Reset (counted by the examples the source was asked for), and that
// the batch they make ahead is, bit for bit, the one made on the spot after a Seek.
func TestNextEpochMadeAhead(t *testing.T) {
	const n, h, w, c, batch = 12, 3, 4, 3, 4 // 3 batches an epoch
	for _, inMemory := range []bool{false, true} {
		t.Run(map[bool]string{false: "workers", true: "inline"}[inMemory], func(t *testing.T) {
			src := randomPixelSource(n, h, w, c, inMemory)
			var asked atomic.Int64
			load, pixels := src.load, src.pixels
			src.load = func(i int, dst []float32, rng *rand.Rand) error { asked.Add(1); return load(i, dst, rng) }
			if inMemory {
				src.pixels = func(i int) []uint8 { asked.Add(1); return pixels(i) }
			}
			opts := Options{BatchSize: batch, Shuffle: true, Seed: 3, Normalize: true, Workers: 2}
			ds, err := newDataset("test", src, opts)
			require.NoError(t, err)
			defer ds.Close()
			require.Equal(t, n/batch, ds.NumBatches())
			for range n / batch {
				_, _, _, err := ds.Yield()
				require.NoError(t, err)
			}
			require.Eventually(t, func() bool { return asked.Load() >= n+batch }, 10*time.Second, time.Millisecond,
				"after epoch 0's last batch, the examples of epoch 1's first are asked for before Reset")
			_, _, _, err = ds.Yield()
			require.ErrorIs(t, err, io.EOF, "the epoch still ends where it did")
			ds.Reset()
			_, ahead, aheadLabels, err := ds.Yield()
			require.NoError(t, err)

			fresh, err := newDataset("test", randomPixelSource(n, h, w, c, inMemory), opts)
			require.NoError(t, err)
			defer fresh.Close()
			require.NoError(t, fresh.Seek(1, 0))
			_, onTheSpot, labels, err := fresh.Yield()
			require.NoError(t, err)
			require.Equal(t, tensors.MustCopyFlatData[int32](labels[0]), tensors.MustCopyFlatData[int32](aheadLabels[0]))
			require.Equal(t, tensors.MustCopyFlatData[float32](onTheSpot[0]), tensors.MustCopyFlatData[float32](ahead[0]))
		})
	}
}

// TestBatchMultiple: an epoch of whole multiples of BatchMultiple batches (data parallelism) holds the batches
// of the same dataset without it, ends after the last multiple, and starts the next epoch where a fresh dataset
// sought to it does; too few examples for one multiple is a TooFewError naming the whole multiple's size.
func TestBatchMultiple(t *testing.T) {
	const n, h, w, c, batch = 22, 3, 4, 3, 4 // 5 batches an epoch; 4 in multiples of 2, 3 in multiples of 3
	flat := func(ds *Dataset) ([]float32, []int32) {
		_, in, labels, err := ds.Yield()
		require.NoError(t, err)
		return tensors.MustCopyFlatData[float32](in[0]), tensors.MustCopyFlatData[int32](labels[0])
	}
	for _, inMemory := range []bool{false, true} {
		for _, multiple := range []int{2, 3} {
			t.Run(fmt.Sprintf("%s/multiple=%d", map[bool]string{false: "workers", true: "inline"}[inMemory], multiple), func(t *testing.T) {
				opts := Options{BatchSize: batch, DropRemainder: true, Shuffle: true, Seed: 3, Normalize: true, Workers: 2}
				plain, err := newDataset("test", randomPixelSource(n, h, w, c, inMemory), opts)
				require.NoError(t, err)
				defer plain.Close()
				opts.BatchMultiple = multiple
				ds, err := newDataset("test", randomPixelSource(n, h, w, c, inMemory), opts)
				require.NoError(t, err)
				defer ds.Close()
				require.Equal(t, 5, plain.NumBatches())
				kept := 5 / multiple * multiple
				require.Equal(t, kept, ds.NumBatches())
				for b := range kept {
					wantIn, wantLabels := flat(plain)
					gotIn, gotLabels := flat(ds)
					require.Equal(t, wantLabels, gotLabels, "batch %d", b)
					require.Equal(t, wantIn, gotIn, "batch %d", b)
				}
				_, _, _, err = ds.Yield()
				require.ErrorIs(t, err, io.EOF, "the epoch ends after %d batches", kept)
				ds.Reset()
				gotIn, gotLabels := flat(ds)
				require.NoError(t, plain.Seek(1, 0))
				wantIn, wantLabels := flat(plain)
				require.Equal(t, wantLabels, gotLabels, "epoch 1's first batch")
				require.Equal(t, wantIn, gotIn, "epoch 1's first batch")
			})
		}
	}
	_, err := newDataset("test", randomPixelSource(6, h, w, c, false), Options{BatchSize: 4, BatchMultiple: 2, DropRemainder: true})
	var tooFew *TooFewError
	require.ErrorAs(t, err, &tooFew)
	require.Equal(t, 8, tooFew.Batch, "one multiple of two batches of 4")
	require.ErrorContains(t, err, "6 examples are fewer than one batch of 8")
}
