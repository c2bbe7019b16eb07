package input

import (
	"bytes"
	"image"
	"image/color"
	"image/gif"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDecodeFormatsIndependentOfRegistry: nowt reads JPEG and PNG and nothing else, even in a program that links
// other decoders into image.Decode's registry (this test's import of image/gif does; the nowt binary links GIF and
// TIFF through its plotting libraries), so the examples of an image folder do not depend on the entry point.
func TestDecodeFormatsIndependentOfRegistry(t *testing.T) {
	img := solidImage(6, 4, color.RGBA{200, 10, 10, 255})
	var gifData bytes.Buffer
	require.NoError(t, gif.Encode(&gifData, img, nil))
	_, _, err := image.Decode(bytes.NewReader(gifData.Bytes()))
	require.NoError(t, err, "image/gif is registered in this test binary")

	for _, tc := range []struct {
		name, file string
		data       []byte
		wantErr    string
	}{
		{"png", "x.png", encodePNG(t, img), ""},
		{"jpeg", "x.jpg", encodeJPEG(t, img), ""},
		{"png named .jpg", "x.jpg", encodePNG(t, img), ""},
		{"gif", "x.gif", gifData.Bytes(), "x.gif: corrupt image: not a JPEG or PNG image (a GIF image)"},
		{"truncated png", "t.png", encodePNG(t, img)[:20], "t.png: corrupt image: reading png header"},
		{"empty", "e.jpg", nil, "the file is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pix, w, h, err := decodeRGBGo(tc.file, tc.data)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.ErrorIs(t, err, errCorrupt)
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, []int{6, 4}, []int{w, h})
			assert.InDelta(t, 200, float64(pix[0]), 8)
		})
	}
}

// TestDecodeIgnoresAlpha: a semi-transparent pixel decodes to its stored colour whatever the PNG's pixel format,
// as the 8-bit RGBA fast path does (not premultiplied by alpha for 16-bit or paletted PNGs).
func TestDecodeIgnoresAlpha(t *testing.T) {
	stored := color.NRGBA{200, 100, 50, 128}
	nrgba := image.NewNRGBA(image.Rect(0, 0, 2, 1))
	nrgba64 := image.NewNRGBA64(image.Rect(0, 0, 2, 1))
	paletted := image.NewPaletted(image.Rect(0, 0, 2, 1), color.Palette{stored})
	gray16 := image.NewGray16(image.Rect(0, 0, 2, 1))
	for x := range 2 {
		nrgba.SetNRGBA(x, 0, stored)
		nrgba64.Set(x, 0, stored)
		gray16.SetGray16(x, 0, color.Gray16{Y: 150 * 257})
	}
	for _, tc := range []struct {
		name string
		img  image.Image
		want []uint8
	}{
		{"8-bit rgba", nrgba, []uint8{200, 100, 50}},
		{"16-bit rgba", nrgba64, []uint8{200, 100, 50}},
		{"paletted with transparency", paletted, []uint8{200, 100, 50}},
		{"16-bit gray", gray16, []uint8{150, 150, 150}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pix, w, h, err := decodeRGBGo("a.png", encodePNG(t, tc.img))
			require.NoError(t, err)
			require.Equal(t, []int{2, 1}, []int{w, h})
			assert.Equal(t, tc.want, pix[:3])
			assert.Equal(t, tc.want, pix[3:])
		})
	}
}
