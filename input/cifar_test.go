package input

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeCIFAR10 writes 5 training batches of 2 records and a test batch of 3 into dir/cifar-10-batches-bin.
func writeCIFAR10(t testing.TB, dir string) {
	base := filepath.Join(dir, "cifar-10-batches-bin")
	i := 0
	for _, f := range cifar10Format.train {
		var b bytes.Buffer
		for range 2 {
			b.Write(cifarRecord([]byte{byte(i % 10)}, i))
			i++
		}
		writeFile(t, filepath.Join(base, f), b.Bytes())
	}
	var b bytes.Buffer
	for k := range 3 {
		b.Write(cifarRecord([]byte{byte(k)}, 100+k))
	}
	writeFile(t, filepath.Join(base, "test_batch.bin"), b.Bytes())
}

func TestCIFAR10(t *testing.T) {
	dir := t.TempDir()
	writeCIFAR10(t, dir)
	ds := openT(t, "cifar10", dir, "train", Options{BatchSize: 4})
	assert.Equal(t, 10, ds.NumExamples())
	assert.Equal(t, "truck", ds.ClassNames()[9])
	assert.Equal(t, KnownClasses("cifar10"), ds.NumClasses())
	assert.Equal(t, []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, ds.ClassCounts(), "labels 0…9, one example each")
	h, w, c := ds.ImageShape()
	assert.Equal(t, []int{32, 32, 3}, []int{h, w, c})
	bs := epoch(t, ds)
	require.Len(t, bs, 3)
	b := bs[1] // examples 4..7
	assert.Equal(t, []int32{4, 5, 6, 7}, b.labels)
	// Example 5, pixel (row 2, column 3), channel 1: plane byte = 5 + (2*32+3) + 50.
	assert.InDelta(t, float32(byte(5+67+50))/255, b.images[1*3072+(2*32+3)*3+1], 1e-6)

	test := openT(t, "cifar10", filepath.Join(dir, "cifar-10-batches-bin"), "test", Options{BatchSize: 3})
	assert.Equal(t, 3, test.NumExamples())
}

func TestCIFAR100(t *testing.T) {
	dir := t.TempDir()
	var b bytes.Buffer
	for i := range 3 {
		b.Write(cifarRecord([]byte{byte(i), byte(90 + i)}, i)) // coarse, fine
	}
	writeFile(t, filepath.Join(dir, "cifar-100-binary", "train.bin"), b.Bytes())
	ds := openT(t, "cifar100", dir, "train", Options{BatchSize: 3})
	assert.Equal(t, 100, ds.NumClasses())
	assert.Equal(t, KnownClasses("cifar100"), ds.NumClasses())
	assert.Nil(t, ds.ClassNames())
	bs := epoch(t, ds)
	require.Len(t, bs, 1)
	assert.Equal(t, []int32{90, 91, 92}, bs[0].labels) // fine labels
	assert.InDelta(t, float32(byte(2+10+100))/255, bs[0].images[2*3072+10*3+2], 1e-6)
}

func TestCIFARErrors(t *testing.T) {
	for _, tc := range []struct {
		name, dataset, file string
		data                []byte
		message             string
	}{
		{"truncated", "cifar10", "test_batch.bin", append(cifarRecord([]byte{1}, 0), 1, 2, 3), "truncated CIFAR record 1: file size 3076 is not a multiple of the 3073-byte record"},
		{"label", "cifar10", "test_batch.bin", cifarRecord([]byte{10}, 0), "record 0: label byte 0 is 10, out of range [0, 10)"},
		{"fine label", "cifar100", "test.bin", cifarRecord([]byte{3, 100}, 0), "record 0: label byte 1 is 100, out of range [0, 100)"},
		{"coarse label", "cifar100", "test.bin", cifarRecord([]byte{20, 1}, 0), "record 0: label byte 0 is 20, out of range [0, 20)"},
		{"empty", "cifar10", "test_batch.bin", nil, "empty CIFAR file"},
		{"data is a file", "cifar10", "cifar-10-binary.tar.gz", []byte("an archive"), "is a file, not a folder: -data must name the cifar-10-batches-bin folder of the binary version (or the folder holding it), extracted from https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"},
		{"missing", "cifar10", "", nil, "no such file or directory: -data must name the cifar-10-batches-bin folder of the binary version (or the folder holding it), with data_batch_1.bin, data_batch_2.bin, data_batch_3.bin, data_batch_4.bin, data_batch_5.bin and test_batch.bin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.file != "" {
				writeFile(t, filepath.Join(dir, tc.file), tc.data)
			}
			path := dir
			if tc.name == "data is a file" {
				path = filepath.Join(dir, tc.file)
			}
			_, err := Open(tc.dataset, path, "test", Options{BatchSize: 1})
			require.Error(t, err)
			if tc.file == "" {
				tc.file = "test_batch.bin"
			}
			assert.Contains(t, err.Error(), filepath.Join(dir, tc.file))
			assert.Contains(t, err.Error(), tc.message)
		})
	}
}
