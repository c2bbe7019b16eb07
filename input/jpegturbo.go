package input

import (
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
)

// JPEG decoding with libjpeg-turbo.
//
// JPEG files are decoded with libjpeg-turbo's TurboJPEG library when it can be loaded, and with the
// standard library's pure-Go image/jpeg otherwise. The library is opened at run time (dlopen of
// libturbojpeg.so.0, Debian/Ubuntu package libturbojpeg0; libturbojpeg.dylib from Homebrew's
// jpeg-turbo on macOS), so building needs neither its headers nor the library: a machine without it
// builds, tests and trains with the pure-Go decoder, only slower. Builds without cgo, on non-Unix
// systems or with `-tags nojpegturbo` always use the pure-Go decoder.
//
// With libjpeg-turbo, the ImageNet transforms decode at a reduced DCT scale (1/2, 1/4 or 1/8, the
// largest reduction that keeps the crop window at least as large as the output on both sides): crops of
// at least twice the output size skip part of the IDCT, upsampling and colour conversion (not the entropy
// decoding, often most of the time). The crop window is drawn from the full-size header, so the
// augmentation's random draws are the same at every scale.
//
// The environment variable NOWT_JPEG chooses the decoder: "go" (pure Go), "noscale" (libjpeg-turbo at
// full size only) or "auto" (the default: libjpeg-turbo with DCT scaling, pure Go if not loadable).
// NOWT_TURBOJPEG names the library file to try first. [JPEGDecoder] says which decoder is in use.
//
// Files that libjpeg-turbo rejects or only decodes with a warning (truncated, corrupt), and CMYK/YCCK
// JPEGs (which the TurboJPEG 2 API does not convert to RGB), are decoded again by the pure-Go decoder,
// whose verdict stands: an image is readable exactly when the pure-Go decoder reads it or libjpeg-turbo
// reads it without complaint. PNG files always use the pure-Go decoder.

// imageDecoder is the decoder configuration: libjpeg-turbo (nil: pure Go) and whether to use DCT scaling.
type imageDecoder struct {
	turbo    *turboLib
	dctScale bool
	desc     string // for JPEGDecoder
}

var (
	decoderOverride atomic.Pointer[imageDecoder] // set by tests and benchmarks
	defaultDecoder  = sync.OnceValue(newDefaultDecoder)
)

// turboLibNames lists the shared-library names tried, in order.
func turboLibNames() []string {
	var names []string
	if p := os.Getenv("NOWT_TURBOJPEG"); p != "" {
		names = append(names, p)
	}
	if runtime.GOOS == "darwin" {
		return append(names, "libturbojpeg.0.dylib", "libturbojpeg.dylib",
			"/opt/homebrew/opt/jpeg-turbo/lib/libturbojpeg.dylib", "/usr/local/opt/jpeg-turbo/lib/libturbojpeg.dylib")
	}
	return append(names, "libturbojpeg.so.0", "libturbojpeg.so")
}

// turboOrError loads libjpeg-turbo once per process.
var turboOrError = sync.OnceValues(func() (*turboLib, error) { return openTurboLib(turboLibNames()) })

func newDefaultDecoder() *imageDecoder { return selectDecoder(os.Getenv("NOWT_JPEG"), turboOrError) }

// selectDecoder chooses the decoder for a NOWT_JPEG mode, loading libjpeg-turbo with open when needed.
func selectDecoder(mode string, open func() (*turboLib, error)) *imageDecoder {
	switch mode {
	case "go":
		return &imageDecoder{desc: "pure Go (image/jpeg), chosen by NOWT_JPEG=go"}
	case "", "auto", "noscale":
	default:
		return &imageDecoder{desc: fmt.Sprintf("pure Go (image/jpeg): NOWT_JPEG=%q is none of auto, noscale, go", mode)}
	}
	lib, err := open()
	if err != nil {
		return &imageDecoder{desc: "pure Go (image/jpeg): " + err.Error()}
	}
	if mode == "noscale" {
		return &imageDecoder{turbo: lib, desc: "libjpeg-turbo (" + lib.name + "), full-size decoding (NOWT_JPEG=noscale)"}
	}
	return &imageDecoder{turbo: lib, dctScale: true, desc: "libjpeg-turbo (" + lib.name + ") with DCT scaling"}
}

// currentDecoder is the decoder in use.
func currentDecoder() *imageDecoder {
	if d := decoderOverride.Load(); d != nil {
		return d
	}
	return defaultDecoder()
}

// JPEGDecoder describes the JPEG decoder that image folders use: libjpeg-turbo (with the library file
// name) or pure Go, with the reason why libjpeg-turbo is not used.
func JPEGDecoder() string { return currentDecoder().desc }

// isJPEG reports whether data starts with a JPEG start-of-image marker.
func isJPEG(data []byte) bool { return len(data) >= 2 && data[0] == 0xFF && data[1] == 0xD8 }

// scaledSize is a dimension after DCT scaling by 1/denom (TurboJPEG's TJSCALED: rounded up).
func scaledSize(n, denom int) int { return (n + denom - 1) / denom }

// dctDenom is the largest DCT scale reduction (8, 4 or 2; 1 for none) that keeps the crop window b at
// least size pixels wide and high.
func dctDenom(b box, size int) int {
	for _, d := range []int{8, 4, 2} {
		if b.w >= float64(d*size) && b.h >= float64(d*size) {
			return d
		}
	}
	return 1
}

// decodeRGB decodes a JPEG or PNG image (the format is sniffed from the content, not the file name)
// into packed 8-bit RGB with the current decoder. Any failure, including a truncated file, is reported
// as errCorrupt with the file name and the decoder's message.
func decodeRGB(name string, data []byte) (pix []uint8, w, h int, err error) {
	return currentDecoder().decodeRGB(name, data, 1)
}

// decodeRGB decodes data at 1/denom scale where libjpeg-turbo is used (denom 1 otherwise); the returned
// size is the decoded one.
func (d *imageDecoder) decodeRGB(name string, data []byte, denom int) (pix []uint8, w, h int, err error) {
	if d.turbo == nil || !isJPEG(data) {
		return decodeRGBGo(name, data)
	}
	fw, fh, cmyk, herr := d.turbo.header(data)
	if herr == nil && !cmyk && fw > 0 && fh > 0 && fw <= maxImagePixels/fh {
		var terr error
		if pix, w, h, terr = d.turbo.decode(data, fw, fh, denom); terr == nil {
			return pix, w, h, nil
		}
		herr = terr
	}
	pix, w, h, err = decodeRGBGo(name, data)
	if err != nil && herr != nil {
		err = fmt.Errorf("%w (%v)", err, herr)
	}
	return pix, w, h, err
}

// decodeTransform decodes one image file and applies the transform of the style (training with a
// non-nil rng, evaluation otherwise), writing size×size×3 values in [0,1] to dst. It draws the same
// random numbers as decodeRGB followed by transformImage, and gives the same result unless
// libjpeg-turbo decodes the ImageNet crop at a reduced DCT scale.
func decodeTransform(name string, data []byte, size int, style folderStyle, dst []float32, rng *rand.Rand) error {
	d := currentDecoder()
	if style != styleImageNet || d.turbo == nil || !isJPEG(data) {
		pix, w, h, err := d.decodeRGB(name, data, 1)
		if err != nil {
			return err
		}
		transformImage(pix, w, h, size, style, dst, rng)
		return nil
	}
	fw, fh, _, err := d.turbo.header(data)
	if err != nil || fw <= 0 || fh <= 0 || fw > maxImagePixels/fh {
		// Let the full decoder (and its pure-Go fallback) report or overcome the problem.
		pix, w, h, err := d.decodeRGB(name, data, 1)
		if err != nil {
			return err
		}
		transformImage(pix, w, h, size, style, dst, rng)
		return nil
	}
	b, flip := imageNetCrop(fw, fh, rng)
	denom := 1
	if d.dctScale {
		denom = dctDenom(b, size)
	}
	pix, w, h, err := d.decodeRGB(name, data, denom)
	if err != nil {
		return err
	}
	// The image is w×h: the DCT-scaled size, or the full size after a fallback to pure Go.
	fx, fy := float64(w)/float64(fw), float64(h)/float64(fh)
	resizeBilinear(pix, w, h, box{b.x * fx, b.y * fy, b.w * fx, b.h * fy}, size, size, flip, dst)
	return nil
}

// imageNetCrop draws the ImageNet crop window of a w×h image and whether to flip it: random-resized
// crop and a coin flip for training (rng != nil), the centre crop for evaluation. It draws what
// transformImage draws, in the same order.
func imageNetCrop(w, h int, rng *rand.Rand) (b box, flip bool) {
	if rng == nil {
		return centerCropBox(w, h), false
	}
	b = randomResizedCropBox(w, h, rng)
	return b, rng.IntN(2) == 1
}
