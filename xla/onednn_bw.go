//go:build linux && amd64 && cgo && !noxla

package xla

import (
	"reflect"
	"sync"

	"github.com/gomlx/go-xla/pkg/pjrt"
	"github.com/gomlx/gomlx/backends"
	xlabackend "github.com/gomlx/gomlx/backends/xla"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/nowt-ml/nowt/xla/onednnbw"
	"github.com/pkg/errors"
)

// OneDNNBackwardWeightsOption is the GoMLX XLA backend option (the patched GoMLX in third_party/) that sends the
// float32 convolutions that are 2-D weight gradients (xlabackend.BackwardWeightsForm: nowt's channel-axis weight
// gradient) to oneDNN's backward-weights primitive, a handler nowt registers with the CPU plugin (package
// onednnbw), instead of oneDNN's forward convolution. nowt adds it beside OneDNNConvOption when the binary has the
// handler (the onednn build tag) and a probe shows the plugin runs it; NoOneDNNBackwardWeightsOption
// ("xla:cpu,noonednn_bwd_weights") keeps the forward convolution. docs/perf-analysis.md §24.
const (
	OneDNNBackwardWeightsOption   = "onednn_bwd_weights"
	NoOneDNNBackwardWeightsOption = "noonednn_bwd_weights"
)

// oneDNNBackwardWeightsProbe is the check newXLA runs on a backend created with OneDNNBackwardWeightsOption (a
// variable for tests).
var oneDNNBackwardWeightsProbe = probeOneDNNBackwardWeights

// backwardWeightsBackends holds the backends created with OneDNNBackwardWeightsOption whose probe passed.
var backwardWeightsBackends sync.Map // backends.Backend → struct{}

// OneDNNBackwardWeights reports whether b runs the float32 weight gradients of BackwardWeightsForm through oneDNN's
// backward-weights primitive.
func OneDNNBackwardWeights(b backends.Backend) bool {
	_, ok := backwardWeightsBackends.Load(b)
	return ok
}

// registeredBackwardWeights holds, per plugin path, the error of registering onednnbw's handler with it (nil once
// registered): a plugin is registered with once per process.
var registeredBackwardWeights sync.Map // string → error

// registerBackwardWeights registers onednnbw.Handler with the plugin at path as xlabackend.BackwardWeightsTarget.
func registerBackwardWeights(path string) error {
	if v, ok := registeredBackwardWeights.Load(path); ok {
		err, _ := v.(error)
		return err
	}
	plugin, err := pjrt.GetPlugin(path)
	if err == nil {
		err = plugin.RegisterFFIHandler(xlabackend.BackwardWeightsTarget, "Host", onednnbw.Handler())
	}
	registeredBackwardWeights.Store(path, err)
	return err
}

// gomlxHasBackwardWeights reports whether the GoMLX linked in knows OneDNNBackwardWeightsOption.
func gomlxHasBackwardWeights() bool {
	f, ok := reflect.TypeFor[xlabackend.Backend]().FieldByName("ConvConfig")
	if !ok {
		return false
	}
	_, ok = f.Type.FieldByName("BackwardWeights")
	return ok
}

// withBackwardWeights returns the option list with OneDNNBackwardWeightsOption added where OneDNNConvOption is
// there, the binary has the handler and the GoMLX linked in knows the option, unless the list says
// NoOneDNNBackwardWeightsOption (nowt's, taken out); and whether it was added (and may be dropped if the probe
// fails). The handler is registered with the plugin at path before the option is added. Asking for the option
// where it cannot work is an error.
func withBackwardWeights(opts []string, path string) (rest []string, added bool, err error) {
	rest = withoutOption(opts, NoOneDNNBackwardWeightsOption)
	asked := hasOption(rest, OneDNNBackwardWeightsOption)
	usable := hasOption(rest, OneDNNConvOption) && onednnbw.Handler() != nil && gomlxHasBackwardWeights()
	if asked && !usable {
		return nil, false, errors.Errorf("option %q needs option %q, a binary built with the onednn tag (make does "+
			"where libdnnl-dev is installed) and the GoMLX of nowt's third_party/", OneDNNBackwardWeightsOption,
			OneDNNConvOption)
	}
	if !asked && (len(rest) != len(opts) || !usable) {
		return rest, false, nil
	}
	if err := registerBackwardWeights(path); err != nil {
		if asked {
			return nil, false, errors.WithMessagef(err, "option %q", OneDNNBackwardWeightsOption)
		}
		return rest, false, nil
	}
	if asked {
		return rest, false, nil
	}
	return append(rest, OneDNNBackwardWeightsOption), true, nil
}

// probeOneDNNBackwardWeights computes a weight gradient of each kind the handler takes (stride 1 with same
// padding, stride 2 with the bottom and right padding cut) on b, written as BackwardWeightsForm's convolution, and
// compares it with the same gradient computed here: the plugin refuses a handler it cannot call without saying so
// at registration (pjrt.Plugin.RegisterFFIHandler), and this finds that, and wrong values, before a model is built.
func probeOneDNNBackwardWeights(b backends.Backend) error {
	const n, h, c, cout, k = 2, 6, 3, 4, 3
	x := make([]float32, n*h*h*c)
	for i := range x {
		x[i] = float32(i%7) - 3
	}
	for _, s := range []struct{ stride, padAfter int }{{1, 1}, {2, 0}} {
		const padBefore = 1
		out := (h+padBefore+s.padAfter-k)/s.stride + 1
		delta := make([]float32, n*out*out*cout)
		for i := range delta {
			delta[i] = float32(i%5)*0.5 - 1
		}
		axes := graph.ConvolveAxesConfig{InputBatch: 0, InputChannels: 1, InputSpatial: []int{2, 3, 4},
			KernelInputChannels: 0, KernelOutputChannels: 4, KernelSpatial: []int{1, 2, 3},
			OutputBatch: 0, OutputChannels: 4, OutputSpatial: []int{1, 2, 3}}
		exec, err := graph.NewExec(b, func(x, delta *graph.Node) *graph.Node {
			return graph.ConvGeneral(graph.Reshape(x, 1, n, h, h, c), graph.Reshape(delta, n, out, out, 1, cout), axes,
				[]int{1, 1, 1}, [][2]int{{padBefore, s.padAfter}, {padBefore, s.padAfter}, {0, 0}}, nil,
				[]int{s.stride, s.stride, 1}, 1, 1)
		})
		var outs []*tensors.Tensor
		if err == nil {
			outs, err = exec.Exec(tensors.FromFlatDataAndDimensions(x, n, h, h, c),
				tensors.FromFlatDataAndDimensions(delta, n, out, out, cout))
			exec.Finalize()
		}
		if err != nil {
			return errors.WithMessagef(err, "a weight gradient through oneDNN's backward weights (stride %d)", s.stride)
		}
		want := weightGradNHWC(x, n, h, c, delta, out, cout, k, s.stride, padBefore)
		if mismatch := firstMismatch(outs[0], want); mismatch != "" {
			return errors.Errorf("a weight gradient through oneDNN's backward weights (stride %d) is wrong: %s",
				s.stride, mismatch)
		}
	}
	return nil
}

// weightGradNHWC is dW[th, tw, ci, co] = Σ x[b, oy·stride+th−pad, ox·stride+tw−pad, ci]·δ[b, oy, ox, co] for x
// [n, h, h, c] and δ [n, out, out, cout], into [k, k, c, cout].
func weightGradNHWC(x []float32, n, h, c int, delta []float32, out, cout, k, stride, pad int) []float64 {
	dw := make([]float64, k*k*c*cout)
	for b := range n {
		for oy := range out {
			for ox := range out {
				for th := range k {
					for tw := range k {
						iy, ix := oy*stride+th-pad, ox*stride+tw-pad
						if iy < 0 || iy >= h || ix < 0 || ix >= h {
							continue
						}
						for ci := range c {
							for co := range cout {
								dw[((th*k+tw)*c+ci)*cout+co] += float64(x[((b*h+iy)*h+ix)*c+ci]) *
									float64(delta[((b*out+oy)*out+ox)*cout+co])
							}
						}
					}
				}
			}
		}
	}
	return dw
}
