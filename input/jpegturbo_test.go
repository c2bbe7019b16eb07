package input

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// needTurbo returns the loaded libjpeg-turbo or skips the test, naming why.
func needTurbo(t testing.TB) *turboLib {
	t.Helper()
	lib, err := turboOrError()
	if err != nil {
		t.Skipf("libjpeg-turbo not loadable, only the pure-Go decoder is tested: %v", err)
	}
	return lib
}

// useDecoder makes d the decoder of the package for the rest of the test.
func useDecoder(t testing.TB, d *imageDecoder) {
	t.Helper()
	prev := decoderOverride.Swap(d)
	t.Cleanup(func() { decoderOverride.Store(prev) })
}

// smoothImage is a w×h RGB image of low-frequency colour waves (for comparisons across scales).
func smoothImage(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			fx, fy := float64(x)/float64(w), float64(y)/float64(h)
			img.SetRGBA(x, y, color.RGBA{
				uint8(128 + 100*math.Sin(6*fx+2*fy)),
				uint8(128 + 100*math.Cos(5*fy-3*fx)),
				uint8(128 + 90*math.Sin(4*fx*fy+1)), 255})
		}
	}
	return img
}

// packed returns the image's pixels packed as RGB (or CMYK with an inverted-RGB K=0 encoding).
func packed(img *image.RGBA, cmyk bool) []uint8 {
	b := img.Bounds()
	n := 3
	if cmyk {
		n = 4
	}
	out := make([]uint8, 0, b.Dx()*b.Dy()*n)
	for i := 0; i < len(img.Pix); i += 4 {
		r, g, bb := img.Pix[i], img.Pix[i+1], img.Pix[i+2]
		if cmyk {
			c, m, y, k := color.RGBToCMYK(r, g, bb)
			out = append(out, c, m, y, k)
		} else {
			out = append(out, r, g, bb)
		}
	}
	return out
}

// pixelDiff returns the largest and the mean absolute difference of two equally long pixel arrays.
func pixelDiff[T uint8 | float32](a, b []T, scale float64) (maxDiff, meanDiff float64) {
	for i := range a {
		d := math.Abs(float64(a[i])-float64(b[i])) * scale
		maxDiff = max(maxDiff, d)
		meanDiff += d
	}
	return maxDiff, meanDiff / float64(len(a))
}

// psnr is the peak signal-to-noise ratio in dB of two images with values in [0,1].
func psnr(a, b []float32) float64 {
	var se float64
	for i := range a {
		d := float64(a[i] - b[i])
		se += d * d
	}
	return 10 * math.Log10(1/(se/float64(len(a))))
}

// TestTurboMatchesGo decodes the same JPEGs with libjpeg-turbo and with the pure-Go decoder: the pixels
// agree within the IDCT's rounding (and, for 4:2:0, libjpeg-turbo's smoother chroma upsampling).
func TestTurboMatchesGo(t *testing.T) {
	lib := needTurbo(t)
	img := patternImage(67, 45, 3)
	gray := image.NewGray(img.Bounds())
	for i := range gray.Pix {
		gray.Pix[i] = img.Pix[4*i+1]
	}
	// Chroma-subsampled JPEGs are compared on a smooth image: on sharp colour edges, libjpeg-turbo's
	// interpolating chroma upsampling and image/jpeg's replication differ by tens of levels.
	smooth := smoothImage(67, 45)
	turboJPEG := func(pix []uint8, pf, samp int) []byte {
		data, err := lib.encode(pix, 67, 45, pf, samp, 92)
		require.NoError(t, err)
		return data
	}
	for _, c := range []struct {
		name          string
		data          []byte
		maxD, meanD   float64 // bounds on the absolute difference, in 8-bit levels
		viaGoFallback bool    // CMYK: decoded by the pure-Go decoder, so identical
	}{
		{"gray (image/jpeg)", encodeJPEG(t, gray), 2, 0.5, false},
		{"YCbCr 4:2:0 (image/jpeg)", encodeJPEG(t, smooth), 12, 3, false},
		{"YCbCr 4:2:0 (libjpeg-turbo)", turboJPEG(packed(smooth, false), tjPixelRGB, tjSamp420), 12, 3, false},
		{"YCbCr 4:4:4 (libjpeg-turbo)", turboJPEG(packed(img, false), tjPixelRGB, tjSamp444), 3, 0.5, false},
		{"gray (libjpeg-turbo)", turboJPEG(gray.Pix, tjPixelGray, tjSampGray), 2, 0.5, false},
		{"CMYK/YCCK (libjpeg-turbo)", turboJPEG(packed(img, true), tjPixelCMYK, tjSamp444), 0, 0, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			want, w, h, err := decodeRGBGo("go.jpg", c.data)
			require.NoError(t, err)
			require.Equal(t, [2]int{67, 45}, [2]int{w, h})
			got, gw, gh, err := (&imageDecoder{turbo: lib}).decodeRGB("turbo.jpg", c.data, 1)
			require.NoError(t, err)
			require.Equal(t, [2]int{w, h}, [2]int{gw, gh})
			maxD, meanD := pixelDiff(got, want, 1)
			t.Logf("max |turbo-go| = %.0f, mean %.3f levels", maxD, meanD)
			require.LessOrEqual(t, maxD, c.maxD)
			require.LessOrEqual(t, meanD, c.meanD)
			_, _, cmyk, err := lib.header(c.data)
			require.NoError(t, err)
			require.Equal(t, c.viaGoFallback, cmyk, "CMYK/YCCK is what falls back to pure Go")
		})
	}
}

func TestDCTDenom(t *testing.T) {
	for _, c := range []struct {
		b    box
		size int
		want int
	}{
		{box{0, 0, 500, 375}, 224, 1},
		{box{0, 0, 448, 448}, 224, 2},
		{box{0, 0, 447.5, 900}, 224, 1},
		{box{10, 20, 1000, 900}, 224, 4},
		{box{0, 0, 1791, 1800}, 224, 4},
		{box{0, 0, 1792, 1800}, 224, 8},
		{box{0, 0, 4000, 3000}, 224, 8},
		{box{0, 0, 80, 64}, 32, 2},
	} {
		require.Equal(t, c.want, dctDenom(c.b, c.size), "%+v to %d", c.b, c.size)
	}
}

// TestDCTScaledCrop: decoding at 1/denom gives TurboJPEG's scaled size, and the ImageNet crops made
// from the DCT-scaled image match those from the full-size image.
func TestDCTScaledCrop(t *testing.T) {
	lib := needTurbo(t)
	const w, h = 1001, 753
	data := encodeJPEG(t, smoothImage(w, h))
	for _, denom := range []int{1, 2, 4, 8} {
		_, sw, sh, err := lib.decode(data, w, h, denom)
		require.NoError(t, err)
		require.Equal(t, [2]int{(w + denom - 1) / denom, (h + denom - 1) / denom}, [2]int{sw, sh}, "denom %d", denom)
	}
	full := &imageDecoder{turbo: lib}
	scaled := &imageDecoder{turbo: lib, dctScale: true}
	const size = 128
	denoms := map[int]int{}
	worst := math.Inf(1)
	for seed := range uint64(40) {
		rng := func() *rand.Rand { // seed 0: the evaluation centre crop
			if seed == 0 {
				return nil
			}
			return rand.New(rand.NewPCG(seed, 9))
		}
		b, _ := imageNetCrop(w, h, rng())
		denoms[dctDenom(b, size)]++
		want, got := make([]float32, size*size*3), make([]float32, size*size*3)
		useDecoder(t, full)
		require.NoError(t, decodeTransform("a.jpg", data, size, styleImageNet, want, rng()))
		useDecoder(t, scaled)
		require.NoError(t, decodeTransform("a.jpg", data, size, styleImageNet, got, rng()))
		p := psnr(want, got)
		worst = min(worst, p)
		require.Greater(t, p, 30.0, "seed %d crop %+v at 1/%d", seed, b, dctDenom(b, size))
	}
	t.Logf("crops per DCT scale denominator: %v; worst PSNR %.1f dB", denoms, worst)
	require.Greater(t, denoms[2], 0, "crops of 256-511 pixels are decoded at 1/2")
	require.Greater(t, denoms[4], 0, "crops of 512 pixels or more are decoded at 1/4")
}

// TestDecodeTransformMatchesTransformImage: without DCT scaling, decodeTransform is exactly decodeRGB
// followed by transformImage, for both decoders and both styles.
func TestDecodeTransformMatchesTransformImage(t *testing.T) {
	decoders := map[string]*imageDecoder{"go": {}}
	if lib, err := turboOrError(); err == nil {
		decoders["turbo"] = &imageDecoder{turbo: lib}
	}
	data := encodeJPEG(t, patternImage(120, 90, 5))
	for name, d := range decoders {
		for _, style := range []folderStyle{styleImageNet, styleCIFAR} {
			for _, train := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/style=%d/train=%v", name, style, train), func(t *testing.T) {
					useDecoder(t, d)
					rngs := [2]*rand.Rand{}
					if train {
						rngs = [2]*rand.Rand{rand.New(rand.NewPCG(4, 2)), rand.New(rand.NewPCG(4, 2))}
					}
					got, want := make([]float32, 32*32*3), make([]float32, 32*32*3)
					require.NoError(t, decodeTransform("x.jpg", data, 32, style, got, rngs[0]))
					pix, w, h, err := decodeRGB("x.jpg", data)
					require.NoError(t, err)
					transformImage(pix, w, h, 32, style, want, rngs[1])
					require.Equal(t, want, got)
				})
			}
		}
	}
}

// TestDecodeErrorsNameFile: empty, truncated and corrupt files give errors that wrap errCorrupt and name
// the file, with every decoder, and never panic.
func TestDecodeErrorsNameFile(t *testing.T) {
	decoders := map[string]*imageDecoder{"go": {}}
	if lib, err := turboOrError(); err == nil {
		decoders["turbo"] = &imageDecoder{turbo: lib}
		decoders["turbo+dct"] = &imageDecoder{turbo: lib, dctScale: true}
	}
	good := encodeJPEG(t, patternImage(600, 480, 2))
	corrupt := append([]byte{}, good...)
	for i := len(corrupt) / 3; i < len(corrupt)-2; i += 7 {
		corrupt[i] = 0xFF // markers in the middle of the entropy-coded data
	}
	badDims := append([]byte{}, good...)
	for i := 0; i+8 < len(badDims); i++ {
		if badDims[i] == 0xFF && badDims[i+1] == 0xC0 { // SOF0: zero the height
			badDims[i+5], badDims[i+6] = 0, 0
			break
		}
	}
	for _, c := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"soi-only", []byte{0xFF, 0xD8}},
		{"header-only", good[:200]},
		{"truncated", good[:len(good)/2]},
		{"corrupt", corrupt},
		{"zero-height", badDims},
		{"not-an-image", []byte("GIF89a this is not a JPEG")},
	} {
		for dname, d := range decoders {
			t.Run(c.name+"/"+dname, func(t *testing.T) {
				useDecoder(t, d)
				file := "/data/train/n01/" + c.name + ".JPEG"
				for _, rng := range []*rand.Rand{nil, rand.New(rand.NewPCG(1, 1))} {
					err := decodeTransform(file, c.data, 56, styleImageNet, make([]float32, 56*56*3), rng)
					if c.name == "corrupt" && err == nil {
						continue // both decoders may paper over corrupt entropy data; it must not panic
					}
					require.Error(t, err)
					require.True(t, errors.Is(err, errCorrupt), "%v", err)
					require.Contains(t, err.Error(), file)
				}
			})
		}
	}
}

// TestDecoderFallback: without a loadable libjpeg-turbo (or with NOWT_JPEG=go) the pure-Go decoder is
// selected, and it decodes.
func TestDecoderFallback(t *testing.T) {
	_, err := openTurboLib([]string{"libturbojpeg-not-there.so.0"})
	require.Error(t, err)
	missing := func() (*turboLib, error) { return nil, err }
	for _, mode := range []string{"", "auto", "noscale"} {
		d := selectDecoder(mode, missing)
		require.Nil(t, d.turbo, "mode %q", mode)
		require.True(t, strings.HasPrefix(d.desc, "pure Go"), d.desc)
	}
	d := selectDecoder("go", func() (*turboLib, error) { t.Fatal("NOWT_JPEG=go must not load libjpeg-turbo"); return nil, nil })
	require.Nil(t, d.turbo)
	require.Contains(t, selectDecoder("fast", missing).desc, `"fast"`)
	if lib, err := turboOrError(); err == nil {
		ok := func() (*turboLib, error) { return lib, nil }
		require.True(t, selectDecoder("", ok).dctScale)
		require.False(t, selectDecoder("noscale", ok).dctScale)
		require.NotNil(t, selectDecoder("noscale", ok).turbo)
	}
	useDecoder(t, selectDecoder("", missing))
	data := encodeJPEG(t, patternImage(40, 30, 1))
	pix, w, h, err := decodeRGB("x.jpg", data)
	require.NoError(t, err)
	want, _, _, _ := decodeRGBGo("x.jpg", data)
	require.Equal(t, [2]int{40, 30}, [2]int{w, h})
	require.Equal(t, want, pix)
	t.Logf("decoder of this process: %s", JPEGDecoder())
}

// FuzzDecodeTransform feeds arbitrary bytes through decodeTransform with the default decoder (with
// libjpeg-turbo: DCT scaling, which an output of 4 pixels triggers on crops of 8 and more): it returns an
// error or values in [0,1], and never panics.
func FuzzDecodeTransform(f *testing.F) {
	f.Add(encodeJPEG(f, patternImage(40, 33, 1)), uint64(1))
	f.Add(encodeJPEG(f, smoothImage(70, 64)), uint64(2))
	j := encodeJPEG(f, patternImage(64, 48, 3))
	f.Add(j[:len(j)*2/3], uint64(3))
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xC0, 0, 11, 8, 0xFF, 0xFF, 0xFF, 0xFF, 1, 1, 0x11, 0}, uint64(4))
	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		dst := make([]float32, 4*4*3)
		for _, rng := range []*rand.Rand{nil, rand.New(rand.NewPCG(seed, 1))} {
			if err := decodeTransform("fuzz.jpg", data, 4, styleImageNet, dst, rng); err != nil {
				if !errors.Is(err, errCorrupt) || !strings.Contains(err.Error(), "fuzz.jpg") {
					t.Fatalf("error neither corrupt-image nor naming the file: %v", err)
				}
				return
			}
			for _, v := range dst {
				if v < 0 || v > 1 {
					t.Fatalf("pixel %v out of [0,1]", v)
				}
			}
		}
	})
}
