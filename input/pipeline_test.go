package input

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOpenErrors(t *testing.T) {
	_, err := Open("imagenet", "", "train", Options{BatchSize: 1})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `unknown dataset "imagenet", valid names are: `+strings.Join(Names(), ", "))
	assert.Equal(t, []string{"cifar10", "cifar10-jpeg", "cifar100", "fashion-mnist", "imagefolder", "mnist", "synthetic"}, Names())

	_, err = Open("synthetic", "", "train", Options{})
	assert.ErrorContains(t, err, "BatchSize must be > 0")
	// A negative option is named, with its value.
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{BatchSize: 1, Limit: -1}, `input: dataset "synthetic": Limit must be >= 0, got -1`},
		{Options{BatchSize: 1, Workers: -2}, `input: dataset "synthetic": Workers must be >= 0, got -2`},
		{Options{BatchSize: 1, Prefetch: -3}, `input: dataset "synthetic": Prefetch must be >= 0, got -3`},
		{Options{BatchSize: 1, ImageSize: -4}, `input: dataset "synthetic": ImageSize must be >= 0, got -4`},
		{Options{BatchSize: 1, BatchMultiple: -5}, `input: dataset "synthetic": BatchMultiple must be >= 0, got -5`},
		{Options{BatchSize: 1, BatchMultiple: 2}, `input: dataset "synthetic": BatchMultiple (2) needs DropRemainder: an epoch of whole multiples has no partial batch`},
	} {
		_, err = Open("synthetic", "", "train", tc.opts)
		assert.EqualError(t, err, tc.want)
	}
	_, err = Open("synthetic", "", "dev", Options{BatchSize: 1})
	assert.ErrorContains(t, err, `unknown split "dev"`)
	_, err = Open("synthetic", "colour=3", "train", Options{BatchSize: 1})
	assert.ErrorContains(t, err, `unknown key "colour"`)
	_, err = Open("synthetic", "examples=3", "train", Options{BatchSize: 4, DropRemainder: true})
	assert.ErrorContains(t, err, "fewer than one batch")
	for _, name := range []string{"mnist", "fashion-mnist", "cifar10", "cifar100"} {
		_, err = Open(name, "/nonexistent", "train", Options{BatchSize: 1, ImageSize: 64})
		assert.ErrorContains(t, err, `dataset "`+name+`" has images of one fixed size: ImageSize (64) applies only to`)
	}
}

func TestSynthetic(t *testing.T) {
	ds := openT(t, "synthetic", "examples=10,height=5,width=7,channels=2,classes=4", "train", Options{BatchSize: 4})
	h, w, c := ds.ImageShape()
	assert.Equal(t, []int{5, 7, 2}, []int{h, w, c})
	assert.Equal(t, 4, ds.NumClasses())
	bs := epoch(t, ds)
	require.Len(t, bs, 3)
	assert.Equal(t, []int{2, 5, 7, 2}, bs[2].dims)
	for _, b := range bs {
		for _, l := range b.labels {
			assert.True(t, l >= 0 && l < 4)
		}
		for _, v := range b.images {
			assert.True(t, v >= 0 && v < 1)
		}
	}
	// Same seed: same data; another seed: other data.
	again := epoch(t, openT(t, "synthetic", "examples=10,height=5,width=7,channels=2,classes=4", "train", Options{BatchSize: 4}))
	assert.Equal(t, bs, again)
	other := epoch(t, openT(t, "synthetic", "examples=10,height=5,width=7,channels=2,classes=4", "train", Options{BatchSize: 4, Seed: 1}))
	assert.NotEqual(t, bs[0].images, other[0].images)
}

// datasetsForDeterminism opens, for each format, a shuffled, augmented pipeline with the given workers.
func determinismCases(t *testing.T) map[string]func(workers int) *Dataset {
	cifarDir, folderDir := t.TempDir(), t.TempDir()
	writeCIFAR10(t, cifarDir)
	writeFolderTree(t, folderDir)
	base := Options{BatchSize: 3, Seed: 42, Shuffle: true, Augment: true, Normalize: true, Prefetch: 1}
	with := func(workers int, f func(*Options)) Options {
		o := base
		o.Workers = workers
		if f != nil {
			f(&o)
		}
		return o
	}
	return map[string]func(int) *Dataset{
		"synthetic": func(w int) *Dataset {
			return openT(t, "synthetic", "examples=20,size=8", "train", with(w, nil))
		},
		"cifar10": func(w int) *Dataset { return openT(t, "cifar10", cifarDir, "train", with(w, nil)) },
		"imagefolder": func(w int) *Dataset {
			return openT(t, "imagefolder", folderDir, "train", with(w, func(o *Options) { o.ImageSize = 12 }))
		},
	}
}

func TestDeterminism(t *testing.T) {
	for name, open := range determinismCases(t) {
		t.Run(name, func(t *testing.T) {
			ds := open(1)
			e0 := epoch(t, ds)
			ds.Reset()
			e1 := epoch(t, ds)
			assert.Equal(t, 1, ds.Epoch())
			assert.NotEqual(t, e0, e1, "a new epoch has a new order and augmentation")

			// Same seed, other worker counts, prefetch: identical batches.
			for _, w := range []int{2, 3} {
				other := open(w)
				assert.Equal(t, e0, epoch(t, other), "workers=%d epoch 0", w)
				other.Reset()
				assert.Equal(t, e1, epoch(t, other), "workers=%d epoch 1", w)
			}

			// Seek into the middle of epoch 1 reproduces the rest of it, and the position is reported.
			sk := open(2)
			_, err := yieldBatch(t, sk) // start a run to be interrupted
			require.NoError(t, err)
			require.NoError(t, sk.Seek(1, 1))
			e, b := sk.Position()
			assert.Equal(t, []int{1, 1}, []int{e, b})
			assert.Equal(t, e1[1:], epoch(t, sk))
			e, b = sk.Position()
			assert.Equal(t, []int{1, len(e1)}, []int{e, b})
			_, err = yieldBatch(t, sk)
			assert.ErrorIs(t, err, io.EOF, "EOF again until Reset")
			assert.Error(t, sk.Seek(0, len(e1)+1))
		})
	}
}

func TestNoShuffleOrderAndLimit(t *testing.T) {
	dir := t.TempDir()
	writeMNIST(t, dir, "train", 20, 2, 2, false)
	ds := openT(t, "mnist", dir, "train", Options{BatchSize: 4, Limit: 10, DropRemainder: true})
	assert.Equal(t, 10, ds.NumExamples())
	assert.Equal(t, 2, ds.NumBatches())
	bs := epoch(t, ds)
	require.Len(t, bs, 2)
	assert.Equal(t, []int32{0, 1, 2, 3}, bs[0].labels)
	ds.Reset()
	assert.Equal(t, bs, epoch(t, ds), "no shuffle: same order every epoch")

	// Shuffled subsets draw from the same first 10 examples whatever the seed.
	for seed := range int64(3) {
		sh := openT(t, "mnist", dir, "train", Options{BatchSize: 10, Limit: 10, Shuffle: true, Seed: seed})
		b := epoch(t, sh)[0]
		assert.ElementsMatch(t, []int32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, b.labels)
	}
}

func TestNormalize(t *testing.T) {
	dir := t.TempDir()
	writeMNIST(t, dir, "train", 2, 2, 2, false)
	ds := openT(t, "mnist", dir, "train", Options{BatchSize: 2, Normalize: true})
	mean, std := ds.Normalization()
	assert.Equal(t, []float32{0.3081}, std)
	assert.Equal(t, []float32{0.1307}, mean)
	b := epoch(t, ds)[0]
	assert.InDelta(t, (float32(mnistPixel(1, 3))/255-0.1307)/0.3081, b.images[7], 1e-5)
}

func TestCloseAndResetMidEpoch(t *testing.T) {
	ds, err := Open("synthetic", "examples=50,size=4", "train", Options{BatchSize: 2, Shuffle: true, Workers: 2, Prefetch: 4})
	require.NoError(t, err)
	_, err = yieldBatch(t, ds)
	require.NoError(t, err)
	ds.Reset() // mid-epoch: next epoch
	assert.Equal(t, 1, ds.Epoch())
	assert.Len(t, epoch(t, ds), 25)
	ds.Close()
	ds.Close()
	require.NotPanics(t, func() { (*Dataset)(nil).Close() }, "what a failed Open returns can be closed")
	_, _, _, err = ds.Yield()
	assert.True(t, err != nil && !errors.Is(err, io.EOF))
}
