//go:build linux && amd64 && cgo && !noxla

package xla

import (
	"fmt"
	"math"
	"reflect"
	"sync"

	"github.com/gomlx/gomlx/backends"
	xlabackend "github.com/gomlx/gomlx/backends/xla"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/pkg/errors"
)

// OneDNNConvOption is the GoMLX XLA backend option (the patched GoMLX in third_party/, see its README) that sends
// float32 2-D and 3-D convolutions (without input dilation, negative padding or grouping) to the CPU plugin's
// oneDNN convolution (the custom call "__onednn$convolution") instead of XLA's own. nowt adds it for the CPU
// plugin, checks with a probe that the plugin runs the call, and drops it where the plugin does not (NewFor).
// NoOneDNNConvOption ("xla:cpu,noonednn_conv") keeps XLA's own convolutions.
const (
	OneDNNConvOption   = "onednn_conv"
	NoOneDNNConvOption = "noonednn_conv"
)

// oneDNNProbe is the check newXLA runs on a backend created with OneDNNConvOption (a variable for tests).
var oneDNNProbe = probeOneDNNConvolution

// oneDNNBackends holds the backends created with OneDNNConvOption whose probe passed.
var oneDNNBackends sync.Map // backends.Backend → struct{}

// OneDNNConvolutions reports whether b runs convolutions through the CPU plugin's oneDNN call.
func OneDNNConvolutions(b backends.Backend) bool {
	_, ok := oneDNNBackends.Load(b)
	return ok
}

// gomlxHasOneDNNConv reports whether the GoMLX linked in knows OneDNNConvOption (its XLA backend has the
// ConvConfig the patch adds). A program that imports nowt builds with its own go.mod, where nowt's replace of
// GoMLX does not apply: there the option is not passed (GoMLX would log it as unknown) and convolutions stay XLA's.
func gomlxHasOneDNNConv() bool {
	_, ok := reflect.TypeFor[xlabackend.Backend]().FieldByName("ConvConfig")
	return ok
}

// withOneDNNConv returns the option list for a plugin: with OneDNNConvOption added for the CPU plugin with one
// host device unless the list says otherwise, and NoOneDNNConvOption (nowt's, not GoMLX's) taken out. It also tells
// whether the option was added by nowt (and may be dropped if the probe fails) rather than asked for. Only a
// one-device client gets it unasked: XLA's partitioner cannot split a custom call over devices, so with several it
// would gather each convolution's operands and run it whole on every device. Asking for the option from a GoMLX
// without it is an error.
func withOneDNNConv(opts []string, cpuPlugin, oneDevice bool) (rest []string, added bool, err error) {
	rest = withoutOption(opts, NoOneDNNConvOption)
	if hasOption(rest, OneDNNConvOption) {
		if !gomlxHasOneDNNConv() {
			return nil, false, errors.Errorf("option %q needs the GoMLX of nowt's third_party/ (build nowt from its "+
				"own module, or drop the option)", OneDNNConvOption)
		}
		return rest, false, nil
	}
	if len(rest) != len(opts) || !cpuPlugin || !oneDevice || !gomlxHasOneDNNConv() {
		return rest, false, nil
	}
	return append(rest, OneDNNConvOption), true, nil
}

// probeOneDNNConvolution runs one small convolution of each kind oneDNN's call takes (stride 1 and 2, padded,
// kernel dilated) on b and compares it with the same convolution computed here, so that a plugin without the
// call's target (compilation fails) or reading its configuration differently (wrong values) is found before a
// model is built on it.
func probeOneDNNConvolution(b backends.Backend) error {
	const n, h, w, cin, cout, k = 2, 6, 5, 3, 4, 3
	x := make([]float32, n*h*w*cin)
	kernel := make([]float32, k*k*cin*cout)
	for i := range x {
		x[i] = float32(i%7) - 3
	}
	for i := range kernel {
		kernel[i] = float32(i%5)*0.5 - 1
	}
	for _, c := range []struct{ stride, dilation int }{{1, 1}, {2, 1}, {1, 2}} {
		const pad = 1
		exec, err := graph.NewExec(b, func(x, kernel *graph.Node) *graph.Node {
			return graph.Convolve(x, kernel).Strides(c.stride).Dilations(c.dilation).
				PaddingPerDim([][2]int{{pad, pad}, {pad, pad}}).Done()
		})
		var outs []*tensors.Tensor
		if err == nil {
			outs, err = exec.Exec(tensors.FromFlatDataAndDimensions(x, n, h, w, cin),
				tensors.FromFlatDataAndDimensions(kernel, k, k, cin, cout))
			exec.Finalize()
		}
		if err != nil {
			return errors.WithMessagef(err, "a convolution through oneDNN (stride %d, dilation %d)", c.stride, c.dilation)
		}
		dims := outs[0].Shape().Dimensions
		want := convolveNHWC(x, n, h, w, cin, kernel, k, cout, c.stride, c.dilation, pad, dims[1], dims[2])
		if mismatch := firstMismatch(outs[0], want); mismatch != "" {
			return errors.Errorf("a convolution through oneDNN (stride %d, dilation %d) is wrong: %s",
				c.stride, c.dilation, mismatch)
		}
	}
	return nil
}

// firstMismatch finalizes got, a float32 probe result, and describes its first element off want by more than
// 1e-3 relative ("element 3 is 1.5, want 2"), or returns "" if none is.
func firstMismatch(got *tensors.Tensor, want []float64) string {
	mismatch := ""
	got.MustConstFlatData(func(flat any) {
		for i, v := range flat.([]float32) {
			if math.Abs(float64(v)-want[i]) > 1e-3*(1+math.Abs(want[i])) {
				mismatch = fmt.Sprintf("element %d is %g, want %g", i, v, want[i])
				return
			}
		}
	})
	_ = got.FinalizeAll()
	return mismatch
}

// convolveNHWC is the plain convolution of x [n, h, w, cin] with kernel [k, k, cin, cout] at the given stride and
// kernel dilation, with pad zeros on every side, into [n, outH, outW, cout].
func convolveNHWC(x []float32, n, h, w, cin int, kernel []float32, k, cout, stride, dilation, pad, outH, outW int) []float64 {
	out := make([]float64, n*outH*outW*cout)
	for b := range n {
		for oy := range outH {
			for ox := range outW {
				for co := range cout {
					var sum float64
					for ky := range k {
						for kx := range k {
							iy, ix := oy*stride+ky*dilation-pad, ox*stride+kx*dilation-pad
							if iy < 0 || iy >= h || ix < 0 || ix >= w {
								continue
							}
							for ci := range cin {
								sum += float64(x[((b*h+iy)*w+ix)*cin+ci]) * float64(kernel[((ky*k+kx)*cin+ci)*cout+co])
							}
						}
					}
					out[((b*outH+oy)*outW+ox)*cout+co] = sum
				}
			}
		}
	}
	return out
}
