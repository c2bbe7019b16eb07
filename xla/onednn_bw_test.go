//go:build linux && amd64 && cgo && !noxla

package xla

import (
	"math/rand/v2"
	"os"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/nowt-ml/nowt/xla/onednnbw"
	"github.com/pkg/errors"
	"github.com/stretchr/testify/require"
)

// TestWithBackwardWeights: the option is added beside "onednn_conv" where the binary has the handler, never
// without "onednn_conv" nor against "noonednn_bwd_weights" (nowt's, taken out); asked for where it cannot work,
// it is an error naming what is missing.
func TestWithBackwardWeights(t *testing.T) {
	require.True(t, gomlxHasBackwardWeights(), "nowt builds with the GoMLX of third_party/, which has the option")
	cpuPluginOrSkip(t)
	plugin, ok := findPlugin(Plugins(), "cpu")
	require.True(t, ok)
	path := plugin.Path
	has := onednnbw.Handler() != nil
	for _, tc := range []struct {
		opts      []string
		want      []string
		wantAdded bool
	}{
		{[]string{OneDNNConvOption}, map[bool][]string{true: {OneDNNConvOption, OneDNNBackwardWeightsOption},
			false: {OneDNNConvOption}}[has], has},
		{[]string{OneDNNConvOption, NoOneDNNBackwardWeightsOption}, []string{OneDNNConvOption}, false},
		{[]string{"shared_buffers"}, []string{"shared_buffers"}, false},
	} {
		got, added, err := withBackwardWeights(tc.opts, path)
		require.NoError(t, err)
		require.Equal(t, tc.want, got, "%v", tc.opts)
		require.Equal(t, tc.wantAdded, added, "%v", tc.opts)
	}
	_, _, err := withBackwardWeights([]string{OneDNNBackwardWeightsOption}, path)
	require.ErrorContains(t, err, `needs option "onednn_conv"`)
}

// TestOneDNNBackwardWeights: where the binary has the handler (built with the onednn tag), a CPU-plugin backend
// runs weight gradients of BackwardWeightsForm through it — its probe compared two with a plain-Go reference —
// and says so; "noonednn_bwd_weights" keeps oneDNN's forward convolution. A handler the plugin refuses makes the
// backend fall back to the forward convolution. With NOWT_REQUIRE_ONEDNN=1 (.ci/run, where libdnnl-dev is
// installed) a binary without the handler fails.
func TestOneDNNBackwardWeights(t *testing.T) {
	cpuPluginOrSkip(t)
	if onednnbw.Handler() == nil {
		if os.Getenv("NOWT_REQUIRE_ONEDNN") == "1" {
			t.Fatal("NOWT_REQUIRE_ONEDNN=1 but this test binary has no backward-weights handler: build with -tags onednn")
		}
		t.Skip("built without the onednn tag")
	}
	b, err := New("xla:cpu", nil)
	require.NoError(t, err)
	defer b.Finalize()
	require.True(t, OneDNNBackwardWeights(b), Engine(b))
	require.Contains(t, Engine(b), "oneDNN convolutions and backward weights")
	off, err := New("xla:cpu,"+NoOneDNNBackwardWeightsOption, nil)
	require.NoError(t, err)
	defer off.Finalize()
	require.True(t, OneDNNConvolutions(off))
	require.False(t, OneDNNBackwardWeights(off))

	// The same weight gradient through the handler and through oneDNN's forward convolution.
	rng := rand.New(rand.NewPCG(1, 2))
	xs, ds := make([]float32, 2*6*6*3), make([]float32, 2*3*3*4)
	for i := range xs {
		xs[i] = rng.Float32()*2 - 1
	}
	for i := range ds {
		ds[i] = rng.Float32()*2 - 1
	}
	grad := func(b backends.Backend) []float32 {
		// Stride 2 with the bottom and right padding cut, as weightGrad writes it for a 6×6 image.
		out := graph.MustExecOnce(b, func(x, delta *graph.Node) *graph.Node {
			return graph.ConvGeneral(graph.Reshape(x, 1, 2, 6, 6, 3), graph.Reshape(delta, 2, 3, 3, 1, 4),
				graph.ConvolveAxesConfig{InputBatch: 0, InputChannels: 1, InputSpatial: []int{2, 3, 4},
					KernelInputChannels: 0, KernelOutputChannels: 4, KernelSpatial: []int{1, 2, 3},
					OutputBatch: 0, OutputChannels: 4, OutputSpatial: []int{1, 2, 3}}, []int{1, 1, 1},
				[][2]int{{1, 0}, {1, 0}, {0, 0}}, nil, []int{2, 2, 1}, 1, 1)
		}, tensors.FromFlatDataAndDimensions(xs, 2, 6, 6, 3), tensors.FromFlatDataAndDimensions(ds, 2, 3, 3, 4))
		require.Equal(t, []int{1, 3, 3, 3, 4}, out.Shape().Dimensions)
		return tensors.MustCopyFlatData[float32](out)
	}
	byHandler, byForward := grad(b), grad(off)
	require.InDeltaSlice(t, byForward, byHandler, 1e-4)

	// A refused handler (the probe fails): the backend is made without the option.
	saved := oneDNNBackwardWeightsProbe
	defer func() { oneDNNBackwardWeightsProbe = saved }()
	oneDNNBackwardWeightsProbe = func(backends.Backend) error { return errors.New("refused") }
	fallback, err := New("xla:cpu", nil)
	require.NoError(t, err)
	defer fallback.Finalize()
	require.True(t, OneDNNConvolutions(fallback))
	require.False(t, OneDNNBackwardWeights(fallback))
}

// TestOneDNNBackwardWeightsChunks: the handler splits a weight gradient's examples into parts, offers them to
// XLA's thread pool, runs what the pool has not started and sums the parts. Whatever the split — the pool's
// (0), none, two, uneven parts (5 examples in 3), more parts than the pool has threads, more asked than there are
// examples — the gradient equals the plain-Go reference, at strides 1 and 2.
func TestOneDNNBackwardWeightsChunks(t *testing.T) {
	cpuPluginOrSkip(t)
	if onednnbw.Handler() == nil {
		t.Skip("built without the onednn tag")
	}
	b, err := New("xla:cpu", nil)
	require.NoError(t, err)
	defer b.Finalize()
	require.True(t, OneDNNBackwardWeights(b), Engine(b))
	defer onednnbw.SetChunks(onednnbw.SetChunks(0))

	const n, h, c, cout, k, pad = 5, 6, 16, 8, 3, 1
	rng := rand.New(rand.NewPCG(3, 4))
	xs := make([]float32, n*h*h*c)
	for i := range xs {
		xs[i] = rng.Float32()*2 - 1
	}
	for _, stride := range []int{1, 2} {
		// The forward convolution's output size, and the padding after that leaves the weight gradient k×k: the
		// rows of the forward padding its windows never reach are cropped, as feedback's weightGrad writes it.
		out := (h+2*pad-k)/stride + 1
		padAfter := k + (out-1)*stride - h - pad
		ds := make([]float32, n*out*out*cout)
		for i := range ds {
			ds[i] = rng.Float32()*2 - 1
		}
		exec, err := graph.NewExec(b, func(x, delta *graph.Node) *graph.Node {
			return graph.ConvGeneral(graph.Reshape(x, 1, n, h, h, c), graph.Reshape(delta, n, out, out, 1, cout),
				graph.ConvolveAxesConfig{InputBatch: 0, InputChannels: 1, InputSpatial: []int{2, 3, 4},
					KernelInputChannels: 0, KernelOutputChannels: 4, KernelSpatial: []int{1, 2, 3},
					OutputBatch: 0, OutputChannels: 4, OutputSpatial: []int{1, 2, 3}}, []int{1, 1, 1},
				[][2]int{{pad, padAfter}, {pad, padAfter}, {0, 0}}, nil, []int{stride, stride, 1}, 1, 1)
		})
		require.NoError(t, err)
		want := weightGradNHWC(xs, n, h, c, ds, out, cout, k, stride, pad)
		for _, chunks := range []int{0, 1, 2, 3, 5, 8} {
			onednnbw.SetChunks(chunks)
			outs, err := exec.Exec(tensors.FromFlatDataAndDimensions(xs, n, h, h, c),
				tensors.FromFlatDataAndDimensions(ds, n, out, out, cout))
			require.NoError(t, err, "stride %d, %d chunks", stride, chunks)
			require.Equal(t, []int{1, k, k, c, cout}, outs[0].Shape().Dimensions)
			require.Empty(t, firstMismatch(outs[0], want), "stride %d, %d chunks", stride, chunks)
		}
		exec.Finalize()
	}
}
