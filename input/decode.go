package input

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
)

// maxImagePixels bounds the size of a decoded image (guards against huge headers in corrupt files).
const maxImagePixels = 1 << 26

// imageCodec is one image format nowt reads: its name and the standard library's pure-Go decoders.
type imageCodec struct {
	format       string
	decodeConfig func(io.Reader) (image.Config, error)
	decode       func(io.Reader) (image.Image, error)
}

// sniffCodec returns the codec of data by its magic bytes: JPEG or PNG, whatever the file is called. It does
// not use image.Decode's registry, whose formats depend on what else the program links (a binary that also links
// image/gif would otherwise read GIFs that a program importing only this package rejects).
func sniffCodec(data []byte) (imageCodec, bool) {
	switch {
	case bytes.HasPrefix(data, []byte("\xff\xd8")):
		return imageCodec{"jpeg", jpeg.DecodeConfig, jpeg.Decode}, true
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		return imageCodec{"png", png.DecodeConfig, png.Decode}, true
	}
	return imageCodec{}, false
}

// decodeRGBGo decodes a JPEG or PNG image (the format is sniffed from the content, not the file name)
// into packed 8-bit RGB with the standard library's pure-Go decoders. Any decoding failure, including a
// truncated file, is reported as errCorrupt with the file name and the decoder's message.
func decodeRGBGo(name string, data []byte) (pix []uint8, w, h int, err error) {
	codec, ok := sniffCodec(data)
	if !ok {
		return nil, 0, 0, fmt.Errorf("%s: %w: not a JPEG or PNG image (%s): nowt reads only JPEG and PNG; convert or remove it",
			name, errCorrupt, describeContent(data))
	}
	format := codec.format
	cfg, err := codec.decodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, 0, 0, fmt.Errorf("%s: %w: reading %s header: %v", name, errCorrupt, format, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width > maxImagePixels/cfg.Height {
		return nil, 0, 0, fmt.Errorf("%s: %w: bad %s dimensions %dx%d", name, errCorrupt, format, cfg.Width, cfg.Height)
	}
	img, err := codec.decode(bytes.NewReader(data))
	if err != nil {
		return nil, 0, 0, fmt.Errorf("%s: %w: %s: %v", name, errCorrupt, format, err)
	}
	b := img.Bounds()
	if b.Dx() <= 0 || b.Dy() <= 0 || b.Dx() > maxImagePixels/b.Dy() {
		return nil, 0, 0, fmt.Errorf("%s: %w: bad decoded %s bounds %v", name, errCorrupt, format, b)
	}
	pix, w, h = toRGB(img)
	return pix, w, h, nil
}

// describeContent names what data holds, for an error: empty, a known unsupported image format (by its magic
// bytes), or unknown content.
func describeContent(data []byte) string {
	if len(data) == 0 {
		return "the file is empty"
	}
	for _, f := range []struct{ magic, name string }{
		{"GIF8", "GIF"}, {"BM", "BMP"}, {"II*\x00", "TIFF"}, {"MM\x00*", "TIFF"}, {"\x00\x00\x00\x0cjP  ", "JPEG 2000"},
	} {
		if bytes.HasPrefix(data, []byte(f.magic)) {
			return "a " + f.name + " image"
		}
	}
	if len(data) >= 12 && string(data[:4]) == "RIFF" && string(data[8:12]) == "WEBP" {
		return "a WebP image"
	}
	if len(data) >= 12 && string(data[4:8]) == "ftyp" {
		return "an HEIF/AVIF image or other ISO media"
	}
	return "unknown content"
}

// toRGB converts any image to packed 8-bit RGB, with fast paths for the types the JPEG and PNG decoders
// return most often. Alpha is ignored (colours are taken as stored): the same for an 8-bit RGBA PNG as for a
// 16-bit one or a paletted one with transparent entries, whose colours are not premultiplied either.
func toRGB(img image.Image) (pix []uint8, w, h int) {
	b := img.Bounds()
	w, h = b.Dx(), b.Dy()
	pix = make([]uint8, w*h*3)
	switch m := img.(type) {
	case *image.YCbCr:
		if m.SubsampleRatio == image.YCbCrSubsampleRatio420 {
			ycbcr420ToRGB(m, w, h, pix)
			break
		}
		for y := range h {
			out := pix[y*w*3 : (y+1)*w*3]
			sy := y + b.Min.Y
			for x := range w {
				sx := x + b.Min.X
				yi, ci := m.YOffset(sx, sy), m.COffset(sx, sy)
				r, g, bb := color.YCbCrToRGB(m.Y[yi], m.Cb[ci], m.Cr[ci])
				out[3*x], out[3*x+1], out[3*x+2] = r, g, bb
			}
		}
	case *image.Gray:
		for y := range h {
			row := m.Pix[y*m.Stride : y*m.Stride+w]
			out := pix[y*w*3 : (y+1)*w*3]
			for x, v := range row {
				out[3*x], out[3*x+1], out[3*x+2] = v, v, v
			}
		}
	case *image.RGBA:
		rgbaToRGB(m.Pix, m.Stride, w, h, pix)
	case *image.NRGBA:
		rgbaToRGB(m.Pix, m.Stride, w, h, pix)
	default:
		for y := range h {
			for x := range w {
				i := (y*w + x) * 3
				pix[i], pix[i+1], pix[i+2] = storedRGB(img.At(x+b.Min.X, y+b.Min.Y))
			}
		}
	}
	return pix, w, h
}

// storedRGB is the 8-bit colour of c as stored, without alpha: non-premultiplied colours (16-bit RGBA PNGs,
// palette entries of PNGs with transparency) are not multiplied by their alpha as color.Color's RGBA does.
func storedRGB(c color.Color) (r, g, b uint8) {
	switch c := c.(type) {
	case color.NRGBA:
		return c.R, c.G, c.B
	case color.NRGBA64:
		return uint8(c.R >> 8), uint8(c.G >> 8), uint8(c.B >> 8)
	}
	r32, g32, b32, _ := c.RGBA()
	return uint8(r32 >> 8), uint8(g32 >> 8), uint8(b32 >> 8)
}

func rgbaToRGB(src []uint8, stride, w, h int, pix []uint8) {
	for y := range h {
		row := src[y*stride : y*stride+4*w]
		out := pix[y*w*3 : (y+1)*w*3]
		for x := range w {
			out[3*x], out[3*x+1], out[3*x+2] = row[4*x], row[4*x+1], row[4*x+2]
		}
	}
}

// ycbcr420ToRGB is the fast path of toRGB for 4:2:0 JPEGs (the most common), with inlined offsets.
func ycbcr420ToRGB(m *image.YCbCr, w, h int, pix []uint8) {
	r := m.Rect
	for y := range h {
		sy := y + r.Min.Y
		yrow := m.Y[(sy-r.Min.Y)*m.YStride:]
		crow := (sy/2 - r.Min.Y/2) * m.CStride
		out := pix[y*w*3 : (y+1)*w*3]
		for x := range w {
			sx := x + r.Min.X
			ci := crow + sx/2 - r.Min.X/2
			cr, cg, cb := color.YCbCrToRGB(yrow[x], m.Cb[ci], m.Cr[ci])
			out[3*x], out[3*x+1], out[3*x+2] = cr, cg, cb
		}
	}
}
