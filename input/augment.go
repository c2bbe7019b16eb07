package input

import (
	"math"
	"math/rand/v2"
	"slices"
)

// Per-dataset normalisation constants (mean and standard deviation of each channel, of pixel values
// scaled to [0,1]), applied with Options.Normalize:
//
//   - mnist:            mean 0.1307, std 0.3081 (training set)
//   - fashion-mnist:    mean 0.2860, std 0.3530 (training set)
//   - cifar10, cifar10-jpeg: mean (0.4914, 0.4822, 0.4465), std (0.2470, 0.2435, 0.2616) (training set,
//     population std; the JPEG copy is close enough to share them)
//   - cifar100:         mean (0.5071, 0.4865, 0.4409), std (0.2673, 0.2564, 0.2762) (training set)
//   - imagefolder:      the ImageNet constants mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)
//   - synthetic:        uniform [0,1] pixels: mean 0.5, std 1/sqrt(12) ≈ 0.2887 for every channel
var normalization = map[string][2][]float32{
	"mnist":         {{0.1307}, {0.3081}},
	"fashion-mnist": {{0.2860}, {0.3530}},
	"cifar10":       {{0.4914, 0.4822, 0.4465}, {0.2470, 0.2435, 0.2616}},
	"cifar10-jpeg":  {{0.4914, 0.4822, 0.4465}, {0.2470, 0.2435, 0.2616}},
	"cifar100":      {{0.5071, 0.4865, 0.4409}, {0.2673, 0.2564, 0.2762}},
	"imagefolder":   {{0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}},
}

// Normalization returns the per-channel mean and standard deviation that Options.Normalize uses for the
// named dataset (synthetic: see the package constants above; it depends on the channel count, so it is
// not listed here and ok is false).
func Normalization(name string) (mean, std []float32, ok bool) {
	ms, ok := normalization[name]
	if !ok {
		return nil, nil, false
	}
	return slices.Clone(ms[0]), slices.Clone(ms[1]), true
}

func normalizationFor(name string) (mean, std []float32) {
	m, s, _ := Normalization(name)
	return m, s
}

// normalizeChannels sets v = (v - mean[c]) / std[c] for the values of channels-last data, whose channel
// count is len(mean).
func normalizeChannels(data, mean, std []float32) {
	c := len(mean)
	if c == 3 { // RGB, unrolled
		m0, m1, m2, s0, s1, s2 := mean[0], mean[1], mean[2], std[0], std[1], std[2]
		for i := 0; i+3 <= len(data); i += 3 {
			p := data[i : i+3 : i+3]
			p[0] = (p[0] - m0) / s0
			p[1] = (p[1] - m1) / s1
			p[2] = (p[2] - m2) / s2
		}
		return
	}
	for i := 0; i+c <= len(data); i += c {
		for k, v := range data[i : i+c] {
			data[i+k] = (v - mean[k]) / std[k]
		}
	}
}

// toFloat copies src into dst scaled by 1/255.
func toFloat(src []uint8, dst []float32) {
	for i, v := range src {
		dst[i] = float32(v) * (1.0 / 255)
	}
}

// padCropFlip is the CIFAR training augmentation: the h×w×c image src (values times scale) is padded
// with pad zeros on every side, a random h×w window is cropped from it (offsets uniform in [0, 2*pad])
// and flipped horizontally with probability 1/2. The random draws are, in order: vertical offset,
// horizontal offset, flip.
func padCropFlip[T uint8 | float32](src []T, h, w, c, pad int, scale float32, dst []float32, rng *rand.Rand) {
	dy := rng.IntN(2*pad+1) - pad
	dx := rng.IntN(2*pad+1) - pad
	flip := rng.IntN(2) == 1
	cropFlip(src, h, w, c, dy, dx, flip, scale, dst)
}

// cropFlip writes dst(y, x) = src(y+dy, x'+dx) where x' = x, or w-1-x when flipped; pixels outside src
// are zero.
func cropFlip[T uint8 | float32](src []T, h, w, c, dy, dx int, flip bool, scale float32, dst []float32) {
	for y := range h {
		row := dst[y*w*c : (y+1)*w*c]
		sy := y + dy
		if sy < 0 || sy >= h {
			clear(row)
			continue
		}
		for x := range w {
			cx := x
			if flip {
				cx = w - 1 - x
			}
			sx := cx + dx
			out := row[x*c : (x+1)*c]
			if sx < 0 || sx >= w {
				clear(out)
				continue
			}
			in := src[(sy*w+sx)*c : (sy*w+sx+1)*c]
			for k := range c {
				out[k] = float32(in[k]) * scale
			}
		}
	}
}

// box is a crop window in source pixel coordinates.
type box struct{ x, y, w, h float64 }

// randomResizedCropBox draws the crop window of torchvision's RandomResizedCrop(scale=(0.08, 1),
// ratio=(3/4, 4/3)) for a w×h image: up to 10 tries of a random area fraction and log-uniform aspect
// ratio, falling back to the largest centred crop with the aspect ratio clamped to the range.
func randomResizedCropBox(w, h int, rng *rand.Rand) box {
	area := float64(w * h)
	logLo, logHi := math.Log(3.0/4), math.Log(4.0/3)
	for range 10 {
		target := area * (0.08 + rng.Float64()*(1-0.08))
		ratio := math.Exp(logLo + rng.Float64()*(logHi-logLo))
		cw := math.Round(math.Sqrt(target * ratio))
		ch := math.Round(math.Sqrt(target / ratio))
		if cw > 0 && ch > 0 && cw <= float64(w) && ch <= float64(h) {
			x := float64(rng.IntN(w - int(cw) + 1))
			y := float64(rng.IntN(h - int(ch) + 1))
			return box{x, y, cw, ch}
		}
	}
	inRatio := float64(w) / float64(h)
	cw, ch := float64(w), float64(h)
	if inRatio < 3.0/4 {
		ch = math.Round(cw / (3.0 / 4))
	} else if inRatio > 4.0/3 {
		cw = math.Round(ch * (4.0 / 3))
	}
	return box{(float64(w) - cw) / 2, (float64(h) - ch) / 2, cw, ch}
}

// centerCropBox is the evaluation transform "resize the shorter side to size*256/224, centre crop
// size×size", expressed as a window of the source image.
func centerCropBox(w, h int) box {
	side := float64(min(w, h)) * 224 / 256
	return box{(float64(w) - side) / 2, (float64(h) - side) / 2, side, side}
}

// resizeBilinear samples the window b of the w×h RGB image pix into an ow×oh×3 float32 image in [0,1]
// by bilinear interpolation (half-pixel centres, edges clamped), flipping horizontally if asked.
//
// It is separable: each source row that an output row needs is interpolated horizontally once (kept
// while consecutive output rows use it), then pairs of rows are blended vertically. The arithmetic per
// value is the same as interpolating each output pixel from its four neighbours.
func resizeBilinear(pix []uint8, w, h int, b box, ow, oh int, flip bool, dst []float32) {
	x0, x1, wx := bilinearTaps(b.x, b.w, w, ow)
	y0, y1, wy := bilinearTaps(b.y, b.h, h, oh)
	if flip {
		slices.Reverse(x0)
		slices.Reverse(x1)
		slices.Reverse(wx)
	}
	for i := range x0 { // to byte offsets within a row
		x0[i] *= 3
		x1[i] *= 3
	}
	n := ow * 3
	rows := [2][]float32{make([]float32, n), make([]float32, n)}
	rowOf := [2]int{-1, -1} // source row held by rows[k]
	// row returns source row y interpolated horizontally, computing it into a buffer not holding keep.
	row := func(y, keep int) []float32 {
		for k := range 2 {
			if rowOf[k] == y {
				return rows[k]
			}
		}
		k := 0
		if rowOf[0] == keep {
			k = 1
		}
		out := rows[k][:n]
		src := pix[y*w*3 : (y+1)*w*3]
		for ox, fx := range wx {
			a, c := x0[ox], x1[ox]
			o := out[ox*3 : ox*3+3 : ox*3+3]
			sa, sc := src[a:a+3:a+3], src[c:c+3:c+3]
			o[0] = float32(sa[0]) + fx*(float32(sc[0])-float32(sa[0]))
			o[1] = float32(sa[1]) + fx*(float32(sc[1])-float32(sa[1]))
			o[2] = float32(sa[2]) + fx*(float32(sc[2])-float32(sa[2]))
		}
		rowOf[k] = y
		return out
	}
	const s = 1.0 / 255
	for oy := range oh {
		top := row(y0[oy], y1[oy])
		bot := row(y1[oy], y0[oy])
		fy := wy[oy]
		out := dst[oy*n : (oy+1)*n]
		top, bot = top[:len(out)], bot[:len(out)]
		for i := range out {
			out[i] = (top[i] + fy*(bot[i]-top[i])) * s
		}
	}
}

// bilinearTaps returns, for each of the n output positions, the two source indices and the weight of
// the second, mapping the window [start, start+length) of a size-long axis.
func bilinearTaps(start, length float64, size, n int) (i0, i1 []int, frac []float32) {
	i0, i1, frac = make([]int, n), make([]int, n), make([]float32, n)
	scale := length / float64(n)
	for o := range n {
		s := start + (float64(o)+0.5)*scale - 0.5
		s = max(0, min(s, float64(size-1)))
		f := math.Floor(s)
		i0[o] = int(f)
		i1[o] = min(int(f)+1, size-1)
		frac[o] = float32(s - f)
	}
	return
}
