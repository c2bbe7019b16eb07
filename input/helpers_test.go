package input

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/stretchr/testify/require"
)

// idxBytes encodes an idx file of unsigned bytes.
func idxBytes(dims []int, data []byte) []byte {
	var b bytes.Buffer
	b.Write([]byte{0, 0, 8, byte(len(dims))})
	for _, d := range dims {
		_ = binary.Write(&b, binary.BigEndian, uint32(d))
	}
	b.Write(data)
	return b.Bytes()
}

func gz(data []byte) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, _ = zw.Write(data)
	_ = zw.Close()
	return b.Bytes()
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, data, 0o644))
}

// mnistPixel is the pixel p of generated example i.
func mnistPixel(i, p int) byte { return byte(i*7 + p*3) }

// writeMNIST writes n generated h×w examples with labels i%10 as prefix-{images-idx3,labels-idx1}-ubyte.
func writeMNIST(t testing.TB, dir, prefix string, n, h, w int, compress bool) {
	t.Helper()
	pix := make([]byte, n*h*w)
	labels := make([]byte, n)
	for i := range n {
		labels[i] = byte(i % 10)
		for p := range h * w {
			pix[i*h*w+p] = mnistPixel(i, p)
		}
	}
	img, lab := idxBytes([]int{n, h, w}, pix), idxBytes([]int{n}, labels)
	suffix := ""
	if compress {
		img, lab, suffix = gz(img), gz(lab), ".gz"
	}
	writeFile(t, filepath.Join(dir, prefix+"-images-idx3-ubyte"+suffix), img)
	writeFile(t, filepath.Join(dir, prefix+"-labels-idx1-ubyte"+suffix), lab)
}

// cifarRecord makes one CIFAR record: labels, then planes where pixel p of channel ch is byte(i+p+ch*50).
func cifarRecord(labels []byte, i int) []byte {
	r := append([]byte{}, labels...)
	for ch := range 3 {
		for p := range 1024 {
			r = append(r, byte(i+p+ch*50))
		}
	}
	return r
}

// solidImage is a w×h image of one colour.
func solidImage(w, h int, c color.RGBA) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetRGBA(x, y, c)
		}
	}
	return img
}

// patternImage is a w×h image with a gradient pattern depending on seed (not symmetric).
func patternImage(w, h, seed int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetRGBA(x, y, color.RGBA{byte(x*255/w + seed), byte(y*255/h + 3*seed), byte((x*y + seed*17) % 256), 255})
		}
	}
	return img
}

func encodeJPEG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}))
	return b.Bytes()
}

func encodePNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, png.Encode(&b, img))
	return b.Bytes()
}

// batch is one yielded batch, copied to Go slices.
type batch struct {
	images []float32
	labels []int32
	dims   []int
}

func yieldBatch(t testing.TB, ds *Dataset) (batch, error) {
	t.Helper()
	spec, inputs, labels, err := ds.Yield()
	if err != nil {
		return batch{}, err
	}
	require.Nil(t, spec)
	require.Len(t, inputs, 1)
	require.Len(t, labels, 1)
	b := batch{
		images: tensors.MustCopyFlatData[float32](inputs[0]),
		labels: tensors.MustCopyFlatData[int32](labels[0]),
		dims:   inputs[0].Shape().Dimensions,
	}
	require.Equal(t, []int{len(b.labels), 1}, labels[0].Shape().Dimensions)
	return b, nil
}

// epoch yields batches until io.EOF.
func epoch(t testing.TB, ds *Dataset) []batch {
	t.Helper()
	var out []batch
	for {
		b, err := yieldBatch(t, ds)
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(t, err)
		out = append(out, b)
	}
}

func openT(t testing.TB, name, path, split string, opts Options) *Dataset {
	t.Helper()
	ds, err := Open(name, path, split, opts)
	require.NoError(t, err)
	t.Cleanup(ds.Close)
	return ds
}

func bytesReader(data []byte) io.Reader { return bytes.NewReader(data) }
