package layers

import (
	"sync"

	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// Window is the static geometry of a windowed operation over channels-last images [N, H, W, C] — a
// convolution's patches, a pooling's windows, a strided subsampling: KH×KW windows moved by Stride, on the
// input padded by PadTop/PadBottom rows and PadLeft/PadRight columns. Channels do not enter it.
type Window struct {
	N, H, W                              int
	KH, KW, Stride                       int
	PadTop, PadBottom, PadLeft, PadRight int
	OutH, OutW                           int
}

// NewWindow returns the geometry with its output size: (H + padTop + padBottom − kh)/stride + 1 rows, likewise
// columns.
func NewWindow(n, h, w, kh, kw, stride, padTop, padBottom, padLeft, padRight int) Window {
	return Window{N: n, H: h, W: w, KH: kh, KW: kw, Stride: stride,
		PadTop: padTop, PadBottom: padBottom, PadLeft: padLeft, PadRight: padRight,
		OutH: (h+padTop+padBottom-kh)/stride + 1, OutW: (w+padLeft+padRight-kw)/stride + 1}
}

// windowTables caches the index tables: Window → *tensors.Tensor.
var windowTables sync.Map

// WindowIndexTable returns, for every output position (n, oy, ox) and window tap (ky, kx), in that order, the row
// of the flattened input [N·H·W, C] that it reads, as an int32 tensor [N·OutH·OutW·KH·KW, 1] for Gather or
// ScatterSum; taps that fall in the padding read row N·H·W, which the caller appends (zeros for a convolution,
// the lowest value for a max-pool). Tables are built once per geometry and shared by every graph, pooling's and
// feedback's convolution's alike.
func WindowIndexTable(g Window) *tensors.Tensor {
	if t, ok := windowTables.Load(g); ok {
		return t.(*tensors.Tensor)
	}
	fillRow := int32(g.N * g.H * g.W)
	flat := make([]int32, 0, g.N*g.OutH*g.OutW*g.KH*g.KW)
	for b := 0; b < g.N; b++ {
		for oy := 0; oy < g.OutH; oy++ {
			for ox := 0; ox < g.OutW; ox++ {
				for ky := 0; ky < g.KH; ky++ {
					iy := oy*g.Stride + ky - g.PadTop
					for kx := 0; kx < g.KW; kx++ {
						ix := ox*g.Stride + kx - g.PadLeft
						if iy < 0 || iy >= g.H || ix < 0 || ix >= g.W {
							flat = append(flat, fillRow)
						} else {
							flat = append(flat, int32((b*g.H+iy)*g.W+ix))
						}
					}
				}
			}
		}
	}
	t := tensors.FromFlatDataAndDimensions(flat, len(flat), 1)
	actual, _ := windowTables.LoadOrStore(g, t)
	return actual.(*tensors.Tensor)
}
