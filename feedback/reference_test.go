package feedback

// Plain-Go reference implementations of dense and convolution forward/backward, independent of GoMLX.

// refConv holds a channels-last convolution's static geometry.
type refConv struct {
	n, h, w, c, kh, kw, co, stride int
	padTop, padLeft                int
	outH, outW                     int
}

func newRefConv(n, h, w, c, kh, kw, co, stride int, same bool) refConv {
	r := refConv{n: n, h: h, w: w, c: c, kh: kh, kw: kw, co: co, stride: stride}
	padH, padW := 0, 0
	if same {
		r.padTop, r.padLeft = (kh-1)/2, (kw-1)/2
		padH, padW = kh-1, kw-1
	}
	r.outH = (h+padH-kh)/stride + 1
	r.outW = (w+padW-kw)/stride + 1
	return r
}

// each calls fn for every (input index, kernel index, output index) triple that the convolution multiplies.
func (r refConv) each(fn func(xi, ki, yi int)) {
	for b := 0; b < r.n; b++ {
		for oy := 0; oy < r.outH; oy++ {
			for ox := 0; ox < r.outW; ox++ {
				for ky := 0; ky < r.kh; ky++ {
					iy := oy*r.stride + ky - r.padTop
					if iy < 0 || iy >= r.h {
						continue
					}
					for kx := 0; kx < r.kw; kx++ {
						ix := ox*r.stride + kx - r.padLeft
						if ix < 0 || ix >= r.w {
							continue
						}
						for ci := 0; ci < r.c; ci++ {
							for co := 0; co < r.co; co++ {
								xi := ((b*r.h+iy)*r.w+ix)*r.c + ci
								ki := ((ky*r.kw+kx)*r.c+ci)*r.co + co
								yi := ((b*r.outH+oy)*r.outW+ox)*r.co + co
								fn(xi, ki, yi)
							}
						}
					}
				}
			}
		}
	}
}

func (r refConv) forward(x, k []float64) []float64 {
	y := make([]float64, r.n*r.outH*r.outW*r.co)
	r.each(func(xi, ki, yi int) { y[yi] += x[xi] * k[ki] })
	return y
}

// inputGrad is the transposed convolution of delta with kernel k.
func (r refConv) inputGrad(delta, k []float64) []float64 {
	dx := make([]float64, r.n*r.h*r.w*r.c)
	r.each(func(xi, ki, yi int) { dx[xi] += delta[yi] * k[ki] })
	return dx
}

func (r refConv) weightGrad(x, delta []float64) []float64 {
	dk := make([]float64, r.kh*r.kw*r.c*r.co)
	r.each(func(xi, ki, yi int) { dk[ki] += x[xi] * delta[yi] })
	return dk
}

// A dense layer [n, in]·[in, out] is a 1×1 convolution over n "images" of 1×1 pixels.
func denseRef(n, in, out int) refConv { return newRefConv(n, 1, 1, in, 1, 1, out, 1, false) }
