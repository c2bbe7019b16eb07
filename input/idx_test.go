package input

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestIDXReader(t *testing.T) {
	for _, tc := range []struct {
		name     string
		split    string
		prefix   string
		compress bool
	}{
		{"gz-train", "train", "train", true},
		{"raw-train", "train", "train", false},
		{"gz-test", "test", "t10k", true},
		{"raw-test", "test", "t10k", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeMNIST(t, dir, tc.prefix, 13, 4, 3, tc.compress)
			ds := openT(t, "mnist", dir, tc.split, Options{BatchSize: 5, Workers: 2})
			assert.Equal(t, 13, ds.NumExamples())
			assert.Equal(t, 10, ds.NumClasses())
			h, w, c := ds.ImageShape()
			assert.Equal(t, []int{4, 3, 1}, []int{h, w, c})
			batches := epoch(t, ds)
			require.Len(t, batches, 3) // 5 + 5 + 3
			assert.Equal(t, []int{5, 4, 3, 1}, batches[0].dims)
			assert.Equal(t, []int{3, 4, 3, 1}, batches[2].dims)
			i := 0
			for _, b := range batches {
				for k, l := range b.labels {
					assert.Equal(t, int32(i%10), l)
					for p := range 12 {
						assert.InDelta(t, float32(mnistPixel(i, p))/255, b.images[k*12+p], 1e-6)
					}
					i++
				}
			}
		})
	}
}

func TestIDXDotNamesAndFashion(t *testing.T) {
	dir := t.TempDir()
	writeMNIST(t, dir, "train", 4, 2, 2, false)
	require.NoError(t, os.Rename(filepath.Join(dir, "train-images-idx3-ubyte"), filepath.Join(dir, "train-images.idx3-ubyte")))
	ds := openT(t, "fashion-mnist", dir, "train", Options{BatchSize: 4})
	assert.Equal(t, "Ankle boot", ds.ClassNames()[9])
	assert.Len(t, epoch(t, ds), 1)
}

func TestIDXErrors(t *testing.T) {
	good := func(dir string, t *testing.T) { writeMNIST(t, dir, "train", 4, 2, 2, false) }
	for _, tc := range []struct {
		name    string
		setup   func(dir string, t *testing.T)
		file    string // expected in the error (relative to dir); "" = dir itself
		message string
	}{
		{"missing folder", func(string, *testing.T) {}, "nope", "idx folder missing: stat"},
		{"data is a file", func(dir string, t *testing.T) {
			writeMNIST(t, dir, "train", 4, 2, 2, true)
		}, "train-images-idx3-ubyte.gz", "is a file, not a folder: -data must name the folder holding train-images-idx3-ubyte"},
		{"missing labels", func(dir string, t *testing.T) {
			good(dir, t)
			require.NoError(t, os.Remove(filepath.Join(dir, "train-labels-idx1-ubyte")))
		}, "", "no train labels file found"},
		{"bad magic", func(dir string, t *testing.T) {
			good(dir, t)
			writeFile(t, filepath.Join(dir, "train-images-idx3-ubyte"), []byte{0x12, 0x34, 8, 3, 0, 0, 0, 0})
		}, "train-images-idx3-ubyte", "bad magic 0x12340803"},
		{"bad type", func(dir string, t *testing.T) {
			good(dir, t)
			writeFile(t, filepath.Join(dir, "train-images-idx3-ubyte"), []byte{0, 0, 0x0d, 3, 0, 0, 0, 0})
		}, "train-images-idx3-ubyte", "unsupported data type 0x0d"},
		{"size mismatch", func(dir string, t *testing.T) {
			good(dir, t)
			writeFile(t, filepath.Join(dir, "train-images-idx3-ubyte"), idxBytes([]int{4, 2, 2}, make([]byte, 15)))
		}, "train-images-idx3-ubyte", "truncated idx file: dimensions [4 2 2] need 16 data bytes, the file has 15"},
		{"truncated MNIST", func(dir string, t *testing.T) {
			good(dir, t)
			writeFile(t, filepath.Join(dir, "train-images-idx3-ubyte"), idxBytes([]int{60000, 28, 28}, make([]byte, 999985)))
		}, "train-images-idx3-ubyte", "dimensions [60000 28 28] need 47040000 data bytes, the file has 999985"},
		{"too long", func(dir string, t *testing.T) {
			good(dir, t)
			writeFile(t, filepath.Join(dir, "train-images-idx3-ubyte"), idxBytes([]int{4, 2, 2}, make([]byte, 17)))
		}, "train-images-idx3-ubyte", "idx size mismatch: dimensions [4 2 2] need 16 data bytes, the file has 17"},
		{"corrupt header", func(dir string, t *testing.T) {
			good(dir, t)
			writeFile(t, filepath.Join(dir, "train-images-idx3-ubyte"), idxBytes([]int{1 << 31, 1 << 31, 1 << 31}, make([]byte, 8)))
		}, "train-images-idx3-ubyte", "need more than 1073741824 data bytes: the header is corrupt"},
		{"truncated gzip", func(dir string, t *testing.T) {
			writeMNIST(t, dir, "train", 4, 2, 2, true)
			p := filepath.Join(dir, "train-images-idx3-ubyte.gz")
			data, _ := os.ReadFile(p)
			writeFile(t, p, data[:len(data)-10])
		}, "train-images-idx3-ubyte.gz", "corrupt or truncated gzip data"},
		{"label out of range", func(dir string, t *testing.T) {
			good(dir, t)
			writeFile(t, filepath.Join(dir, "train-labels-idx1-ubyte"), idxBytes([]int{4}, []byte{1, 2, 10, 3}))
		}, "train-labels-idx1-ubyte", "label 10 of example 2 out of range [0, 10)"},
		{"count mismatch", func(dir string, t *testing.T) {
			good(dir, t)
			writeFile(t, filepath.Join(dir, "train-labels-idx1-ubyte"), idxBytes([]int{3}, []byte{1, 2, 3}))
		}, "train-labels-idx1-ubyte", "3 labels but"},
		{"wrong rank", func(dir string, t *testing.T) {
			good(dir, t)
			writeFile(t, filepath.Join(dir, "train-images-idx3-ubyte"), idxBytes([]int{16}, make([]byte, 16)))
		}, "train-images-idx3-ubyte", "images must have 3 dimensions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(dir, t)
			path := dir
			switch tc.name {
			case "missing folder":
				path = filepath.Join(dir, "nope")
			case "data is a file":
				path = filepath.Join(dir, "train-images-idx3-ubyte.gz")
			}
			_, err := Open("mnist", path, "train", Options{BatchSize: 2})
			require.Error(t, err)
			assert.Contains(t, err.Error(), filepath.Join(dir, tc.file))
			assert.Contains(t, err.Error(), tc.message)
			if tc.name == "missing folder" {
				assert.Contains(t, err.Error(), "-data must name the folder holding train-images-idx3-ubyte", "what to do")
			}
		})
	}
}

func TestMNISTReal(t *testing.T) {
	dir, err := MNISTDir()
	if err != nil {
		t.Skipf("MNIST not findable: %v", err)
	}
	for split, n := range map[string]int{"train": 60000, "test": 10000} {
		ds := openT(t, "mnist", "", split, Options{BatchSize: 1000, Workers: 2})
		assert.Equal(t, n, ds.NumExamples(), dir)
		assert.Equal(t, KnownClasses("mnist"), ds.NumClasses())
		counts := ds.ClassCounts()
		assert.Len(t, counts, 10)
		total := 0
		for _, c := range counts {
			total += c
		}
		assert.Equal(t, n, total)
		if split == "test" {
			assert.Equal(t, 1135, counts[1], "MNIST's most frequent test digit")
			limited := openT(t, "mnist", "", split, Options{BatchSize: 10, Limit: 10})
			assert.Equal(t, []int{1, 2, 1, 0, 2, 1, 0, 1, 0, 2}, limited.ClassCounts(), "the first ten test labels: 7 2 1 0 4 1 4 9 5 9")
		}
		h, w, c := ds.ImageShape()
		assert.Equal(t, []int{28, 28, 1}, []int{h, w, c})
		b, err := yieldBatch(t, ds)
		require.NoError(t, err)
		assert.Equal(t, []int{1000, 28, 28, 1}, b.dims)
	}
}

func TestFashionMNISTReal(t *testing.T) {
	if _, err := os.Stat(DefaultFashionMNISTDir); err != nil {
		t.Skipf("Fashion-MNIST folder absent (apt-get install dataset-fashion-mnist): %v", err)
	}
	for split, n := range map[string]int{"train": 60000, "test": 10000} {
		ds := openT(t, "fashion-mnist", "", split, Options{BatchSize: 500, Normalize: true})
		assert.Equal(t, n, ds.NumExamples())
		assert.Equal(t, KnownClasses("fashion-mnist"), ds.NumClasses())
		h, w, c := ds.ImageShape()
		assert.Equal(t, []int{28, 28, 1}, []int{h, w, c})
	}
}
