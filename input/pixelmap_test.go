package input

import (
	"errors"
	"io"
	"math"
	"math/rand/v2"
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
	const n, h, w, c = 37, 4, 5, 3
	rng := rand.New(rand.NewPCG(1, 2))
	pix := make([]uint8, n*h*w*c)
	for i := range pix {
		pix[i] = uint8(rng.IntN(256))
	}
	mean, std, _ := Normalization("cifar10")
	newSource := func(inMemory bool) *source {
		sz := h * w * c
		src := &source{n: n, h: h, w: w, c: c, numClasses: 2, labels: make([]int32, n), mean: mean, std: std,
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
