package input

import (
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

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
			src := make([]uint8, 256*tc.c) // every value in every channel
			for i := range src {
				src[i] = uint8(i / tc.c)
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
// Reset in the middle of an epoch, the end of an epoch, and Close while a batch is being made ahead.
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
	record := func(src *source) []string {
		ds, err := newDataset("test", src, Options{BatchSize: 8, Shuffle: true, Seed: 4, Normalize: true})
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
	want, got := record(randomPixelSource(n, h, w, c, false)), record(randomPixelSource(n, h, w, c, true))
	require.Len(t, got, len(want))
	for i := range want {
		require.Equal(t, want[i], got[i])
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
