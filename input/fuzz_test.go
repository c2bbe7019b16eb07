package input

import (
	"bytes"
	"image/color"
	"math/rand/v2"
	"testing"
)

func FuzzIDX(f *testing.F) {
	f.Add(idxBytes([]int{2, 2, 2}, make([]byte, 8)))
	f.Add(idxBytes([]int{3}, []byte{1, 2, 3}))
	f.Add(gz(idxBytes([]int{1, 2, 2}, []byte{1, 2, 3, 4})))
	f.Add([]byte{0, 0, 8, 4, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Add([]byte{0, 0, 8, 2, 0x80, 0, 0, 0, 0x80, 0, 0, 0})
	f.Add([]byte{0x1f, 0x8b})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := readIDX("fuzz", bytes.NewReader(data))
		if err != nil {
			return
		}
		size := 1
		for _, d := range m.dims {
			size *= d
		}
		if size != len(m.data) {
			t.Fatalf("dims %v but %d data bytes", m.dims, len(m.data))
		}
	})
}

func FuzzCIFAR(f *testing.F) {
	f.Add(cifarRecord([]byte{3}, 0), false)
	f.Add(cifarRecord([]byte{3, 99}, 0), true)
	f.Add(append(cifarRecord([]byte{3}, 1), 7), false)
	f.Add([]byte{}, true)
	f.Fuzz(func(t *testing.T, data []byte, hundred bool) {
		format := cifar10Format
		if hundred {
			format = cifar100Format
		}
		labels, pix, err := parseCIFAR(format, "fuzz", data)
		if err != nil {
			return
		}
		if len(pix) != len(labels)*cifarPixel {
			t.Fatalf("%d labels but %d pixel bytes", len(labels), len(pix))
		}
		for _, l := range labels {
			if l < 0 || int(l) >= format.numClasses {
				t.Fatalf("label %d out of range", l)
			}
		}
	})
}

func FuzzDecodeImage(f *testing.F) {
	f.Add(encodeJPEG(f, patternImage(17, 9, 1)))
	f.Add(encodePNG(f, patternImage(5, 7, 2)))
	f.Add(encodePNG(f, solidImage(3, 3, color.RGBA{1, 2, 3, 4})))
	j := encodeJPEG(f, patternImage(20, 20, 3))
	f.Add(j[:len(j)/2])
	f.Add([]byte("\x89PNG\r\n\x1a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pix, w, h, err := decodeRGB("fuzz", data)
		if err != nil {
			return
		}
		if len(pix) != w*h*3 {
			t.Fatalf("%dx%d image with %d bytes", w, h, len(pix))
		}
		dst := make([]float32, 8*8*3)
		for _, style := range []folderStyle{styleImageNet, styleCIFAR} {
			transformImage(pix, w, h, 8, style, dst, nil)
			transformImage(pix, w, h, 8, style, dst, rand.New(rand.NewPCG(1, 2)))
		}
		for _, v := range dst {
			if v < 0 || v > 1 {
				t.Fatalf("pixel %v out of [0,1]", v)
			}
		}
	})
}
