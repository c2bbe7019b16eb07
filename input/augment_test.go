package input

import (
	"image"
	"image/color"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCropFlip(t *testing.T) {
	// 2 rows, 3 columns, 1 channel: values 1..6.
	src := []uint8{1, 2, 3, 4, 5, 6}
	for _, tc := range []struct {
		name   string
		dy, dx int
		flip   bool
		want   []float32
	}{
		{"identity", 0, 0, false, []float32{1, 2, 3, 4, 5, 6}},
		{"flip", 0, 0, true, []float32{3, 2, 1, 6, 5, 4}},
		{"shift right", 0, 1, false, []float32{2, 3, 0, 5, 6, 0}},
		{"shift down", 1, 0, false, []float32{4, 5, 6, 0, 0, 0}},
		{"shift left flip", 0, -1, true, []float32{2, 1, 0, 5, 4, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := make([]float32, 6)
			cropFlip(src, 2, 3, 1, tc.dy, tc.dx, tc.flip, 1, dst)
			assert.Equal(t, tc.want, dst)
		})
	}
}

func TestPadCropFlipChangesPixels(t *testing.T) {
	src := make([]uint8, 32*32*3)
	for i := range src {
		src[i] = uint8(i * 13)
	}
	plain := make([]float32, len(src))
	toFloat(src, plain)
	changed, flips, zeros := 0, 0, 0
	for seed := range uint64(40) {
		dst := make([]float32, len(src))
		rng := rand.New(rand.NewPCG(seed, 1))
		padCropFlip(src, 32, 32, 3, 4, 1.0/255, dst, rng)
		// Redo the draws to know what was applied.
		r := rand.New(rand.NewPCG(seed, 1))
		dy, dx, flip := r.IntN(9)-4, r.IntN(9)-4, r.IntN(2) == 1
		want := make([]float32, len(src))
		cropFlip(src, 32, 32, 3, dy, dx, flip, 1.0/255, want)
		require.Equal(t, want, dst)
		if dy != 0 || dx != 0 || flip {
			assert.NotEqual(t, plain, dst)
			changed++
		}
		if flip {
			flips++
		}
		if dy != 0 || dx != 0 {
			zeros++
		}
	}
	assert.Greater(t, changed, 30)
	assert.Greater(t, flips, 10)
	assert.Less(t, flips, 30)
	assert.Greater(t, zeros, 30)
}

func TestRandomResizedCropBox(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const w, h = 500, 375
	for range 2000 {
		b := randomResizedCropBox(w, h, rng)
		require.True(t, b.x >= 0 && b.y >= 0 && b.x+b.w <= w && b.y+b.h <= h, "%+v", b)
		area := b.w * b.h / (w * h)
		ratio := b.w / b.h
		assert.True(t, area >= 0.075 && area <= 1.0, "area %v", area)
		assert.True(t, ratio >= 0.74 && ratio <= 1.35, "ratio %v", ratio)
	}
	// Very elongated image: the fallback is a centred crop with a clamped ratio.
	b := randomResizedCropBox(1000, 10, rand.New(rand.NewPCG(0, 0)))
	assert.InDelta(t, 4.0/3, b.w/b.h, 0.1)
	c := centerCropBox(500, 375)
	assert.InDelta(t, 375*224.0/256, c.w, 1e-9)
	assert.InDelta(t, (500-c.w)/2, c.x, 1e-9)
}

func TestResizeBilinear(t *testing.T) {
	// 2×1 image black|white resized to 4×1: 0, 0.25, 0.75, 1 (half-pixel centres, clamped edges).
	pix := []uint8{0, 0, 0, 255, 255, 255}
	dst := make([]float32, 4*3)
	resizeBilinear(pix, 2, 1, box{0, 0, 2, 1}, 4, 1, false, dst)
	assert.InDeltaSlice(t, []float32{0, 0, 0, 0.25, 0.25, 0.25, 0.75, 0.75, 0.75, 1, 1, 1}, dst, 1e-6)
	resizeBilinear(pix, 2, 1, box{0, 0, 2, 1}, 4, 1, true, dst)
	assert.InDeltaSlice(t, []float32{1, 1, 1, 0.75, 0.75, 0.75, 0.25, 0.25, 0.25, 0, 0, 0}, dst, 1e-6)
}

func TestImageNetTransformFlipAndCrop(t *testing.T) {
	img := patternImage(60, 45, 0)
	pix, w, h := toRGB(img)
	eval := make([]float32, 16*16*3)
	transformImage(pix, w, h, 16, styleImageNet, eval, nil)
	// Training crops vary with the seed, and the flip is a mirror of the same crop.
	a := make([]float32, len(eval))
	b := make([]float32, len(eval))
	transformImage(pix, w, h, 16, styleImageNet, a, rand.New(rand.NewPCG(1, 1)))
	transformImage(pix, w, h, 16, styleImageNet, b, rand.New(rand.NewPCG(2, 2)))
	assert.NotEqual(t, a, b)
	assert.NotEqual(t, eval, a)
	r := rand.New(rand.NewPCG(3, 3))
	bx := randomResizedCropBox(w, h, r)
	flip := r.IntN(2) == 1
	got := make([]float32, len(eval))
	transformImage(pix, w, h, 16, styleImageNet, got, rand.New(rand.NewPCG(3, 3)))
	mirror := make([]float32, len(eval))
	resizeBilinear(pix, w, h, bx, 16, 16, !flip, mirror)
	for y := range 16 {
		for x := range 16 {
			for k := range 3 {
				assert.Equal(t, got[(y*16+x)*3+k], mirror[(y*16+15-x)*3+k])
			}
		}
	}
}

func TestYCbCr420FastPath(t *testing.T) {
	for _, r := range []image.Rectangle{image.Rect(0, 0, 7, 5), image.Rect(3, 1, 12, 10)} {
		m := image.NewYCbCr(r, image.YCbCrSubsampleRatio420)
		for i := range m.Y {
			m.Y[i] = uint8(i * 7)
		}
		for i := range m.Cb {
			m.Cb[i], m.Cr[i] = uint8(i*31), uint8(200-i*13)
		}
		got, w, h := toRGB(m)
		for y := range h {
			for x := range w {
				c := color.RGBAModel.Convert(m.At(x+r.Min.X, y+r.Min.Y)).(color.RGBA)
				i := (y*w + x) * 3
				require.Equal(t, []uint8{c.R, c.G, c.B}, got[i:i+3], "rect %v pixel %d,%d", r, x, y)
			}
		}
	}
}

// resizeBilinearRef is the direct form of resizeBilinear: each output pixel from its four neighbours.
func resizeBilinearRef(pix []uint8, w, h int, b box, ow, oh int, flip bool, dst []float32) {
	x0, x1, wx := bilinearTaps(b.x, b.w, w, ow)
	y0, y1, wy := bilinearTaps(b.y, b.h, h, oh)
	const s = 1.0 / 255
	for oy := range oh {
		r0 := pix[y0[oy]*w*3:]
		r1 := pix[y1[oy]*w*3:]
		fy := wy[oy]
		for ox := range ow {
			sx := ox
			if flip {
				sx = ow - 1 - ox
			}
			a, bb, fx := x0[sx]*3, x1[sx]*3, wx[sx]
			out := dst[(oy*ow+ox)*3 : (oy*ow+ox)*3+3]
			for k := range 3 {
				top := float32(r0[a+k]) + fx*(float32(r0[bb+k])-float32(r0[a+k]))
				bot := float32(r1[a+k]) + fx*(float32(r1[bb+k])-float32(r1[a+k]))
				out[k] = (top + fy*(bot-top)) * s
			}
		}
	}
}

// TestResizeBilinearMatchesDirect: the separable resize gives bit-identical values to the direct
// four-neighbour form, for up- and downscaling, flips, edge clamping and random crop windows.
func TestResizeBilinearMatchesDirect(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	for trial := range 60 {
		w, h := 1+rng.IntN(90), 1+rng.IntN(70)
		pix := make([]uint8, w*h*3)
		for i := range pix {
			pix[i] = uint8(rng.IntN(256))
		}
		ow, oh := 1+rng.IntN(50), 1+rng.IntN(50)
		b := box{rng.Float64() * float64(w) / 2, rng.Float64() * float64(h) / 2, 0, 0}
		b.w = 0.5 + rng.Float64()*(float64(w)-b.x)
		b.h = 0.5 + rng.Float64()*(float64(h)-b.y)
		flip := trial%2 == 1
		got, want := make([]float32, ow*oh*3), make([]float32, ow*oh*3)
		resizeBilinear(pix, w, h, b, ow, oh, flip, got)
		resizeBilinearRef(pix, w, h, b, ow, oh, flip, want)
		require.Equal(t, want, got, "trial %d: %dx%d window %+v to %dx%d flip %v", trial, w, h, b, ow, oh, flip)
	}
}

// TestNormalizeChannels: per-channel (v - mean) / std for 1 and 3 channels, exactly.
func TestNormalizeChannels(t *testing.T) {
	for _, c := range []int{1, 3, 4} {
		mean, std := make([]float32, c), make([]float32, c)
		for k := range c {
			mean[k], std[k] = 0.1*float32(k+1), 0.2+0.05*float32(k)
		}
		data := make([]float32, 5*c)
		for i := range data {
			data[i] = float32(i) / 17
		}
		want := make([]float32, len(data))
		for i, v := range data {
			want[i] = (v - mean[i%c]) / std[i%c]
		}
		normalizeChannels(data, mean, std)
		require.Equal(t, want, data, "%d channels", c)
	}
}
