package layers

import (
	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// maxPoolTaps max-pools x [N, H, W, C] from the window's k² taps, each a strided slice of x padded with the
// lowest finite value: the forward is their maximum, and the backward routes each window's δ to its first
// maximum (in row-major tap order, as XLA's select-and-scatter does), written as k² selects and s² shifted
// sums — only loops XLA fuses. On XLA's CPU plugin the backend's MaxPool gradient (select-and-scatter) took
// 65–75 ms for a ResNet-18 max-pool at batch 8 (8×112×112×64), this 11–15 ms (BenchmarkMaxPool2D).
//
// The backward reads which tap won from a tensor the forward writes ("winner", the tap's number as a value of
// x's dtype, k² where no tap equals the maximum, as with a NaN). Left to itself, XLA's CPU compiler fuses the
// comparisons that make it into every one of the backward's k² terms and recomputes them per element (23–31 ms
// in all), so winner is passed through an identity product (keptApart), which the compiler does not fuse.
func maxPoolTaps(x *Node, geom Window) *Node {
	g, dtype := x.Graph(), x.DType()
	c := x.Shape().Dim(3)
	k, s := geom.KH, geom.Stride
	xs := StopGradient(x) // the backward is written out below
	lowest := Scalar(g, dtype, lowestFinite(dtype))
	// StopGradient again on what autodiff would otherwise walk to reach xs: it marks the taps and their maximum
	// as needing no gradient, so that no Slice gradient (a Pad, which the pure-Go backend lacks) is built.
	padded := StopGradient(PadAlong(PadAlong(xs, lowest, 1, geom.PadTop, geom.PadBottom), lowest, 2, geom.PadLeft, geom.PadRight))
	tap := func(node *Node, ty, tx int) *Node { // [N, OutH, OutW, C]: the tap (ty, tx) of every window
		return Slice(node, AxisRange(), AxisRange(ty, ty+(geom.OutH-1)*s+1).Stride(s),
			AxisRange(tx, tx+(geom.OutW-1)*s+1).Stride(s), AxisRange())
	}
	taps := make([]*Node, 0, k*k)
	for t := range k * k {
		taps = append(taps, tap(padded, t/k, t%k))
	}
	y := taps[0]
	for _, t := range taps[1:] {
		y = Max(y, t)
	}
	y = StopGradient(y)
	winner := Scalar(g, dtype, k*k)
	for t := k*k - 1; t >= 0; t-- {
		winner = Where(Equal(taps[t], y), Scalar(g, dtype, t), winner)
	}
	winner = keptApart(winner)

	var delta *Node
	xh := IdentityWithCustomGradient(x, func(_, _ *Node) *Node { return routeToWinners(winner, delta, geom, c) })
	// The path to x's custom gradient: 0 times one tap of x, elementwise with y (a reduction over x would read
	// all of it once more); where the backend has no Pad (the pure-Go one), for which autodiff would build the
	// tap's own gradient before discarding it, the reduction.
	if g.Backend().Capabilities().Operations[backends.OpTypePad] {
		y = Add(y, MulScalar(tap(xh, 0, 0), 0))
	} else {
		y = Add(y, GradientPath(xh))
	}
	return IdentityWithCustomGradient(y, func(_, v *Node) *Node {
		delta = v
		return v
	})
}

// routeToWinners is max-pooling's input gradient: each window's δ added at its winning tap. The padded input's
// rows and columns are grouped by their remainder modulo the stride (s² phases of ⌈(H+pads)/s⌉ × ⌈(W+pads)/s⌉):
// tap (ty, tx) of window (oy, ox) lies in phase (ty mod s, tx mod s) at (oy + ty div s, ox + tx div s), so each
// phase is a sum of δ's selected by winner and shifted by a plain pad; the phases are then interleaved (one
// transpose that keeps C innermost) and the padding cut off.
func routeToWinners(winner, delta *Node, geom Window, c int) *Node {
	g, dtype := delta.Graph(), delta.DType()
	k, s := geom.KH, geom.Stride
	mh := (geom.H + geom.PadTop + geom.PadBottom + s - 1) / s
	mw := (geom.W + geom.PadLeft + geom.PadRight + s - 1) / s
	zeros, zero := ZerosLike(delta), ScalarZero(g, dtype)
	phases := make([]*Node, s*s)
	for t := range k * k {
		ty, tx := t/k, t%k
		dy, dx := ty/s, tx/s
		picked := Where(Equal(winner, Scalar(g, dtype, t)), delta, zeros)
		picked = PadAlong(PadAlong(picked, zero, 1, dy, mh-dy-geom.OutH), zero, 2, dx, mw-dx-geom.OutW)
		if p := &phases[(ty%s)*s+tx%s]; *p == nil {
			*p = picked
		} else {
			*p = Add(*p, picked)
		}
	}
	for i, p := range phases {
		if p == nil { // a stride larger than the window leaves phases no tap reaches
			phases[i] = Zeros(g, shapes.Make(dtype, geom.N, mh, mw, c))
		}
	}
	stacked := Reshape(Stack(phases, 0), s, s, geom.N, mh, mw, c)
	grad := Reshape(TransposeAllDims(stacked, 2, 3, 0, 4, 1, 5), geom.N, mh*s, mw*s, c)
	return Slice(grad, AxisRange(), AxisRange(geom.PadTop, geom.PadTop+geom.H), AxisRange(geom.PadLeft, geom.PadLeft+geom.W), AxisRange())
}
