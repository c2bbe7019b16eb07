package feedback

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/nowt-ml/nowt/internal/testutil"
	"github.com/stretchr/testify/require"
)

// TestWeightMirrorComposition: WM composed from Kunin's primitives (amp on noise with coefficient 1/σ², decay
// λ_B/η_B, a plain step of rate η_B) reproduces the mirror update the rule had before the redesign,
//
//	B ← B + η_B·xᵀy/(nσ²) − λ_B·B        (rescale: B + η_B·xᵀy/(nσ²), then scaled to ‖x‖/‖y·(…)ᵀ‖),
//
// computed here in plain Go, for both noises and both modes.
func TestWeightMirrorComposition(t *testing.T) {
	backend := testutil.Backend(t)
	const n, in, out = 7, 5, 4
	for _, tc := range []struct {
		noise   string
		rescale bool
	}{{"uniform", false}, {"gaussian", false}, {"uniform", true}} {
		t.Run(fmt.Sprintf("%s/rescale=%v", tc.noise, tc.rescale), func(t *testing.T) {
			rng := rand.New(rand.NewSource(4))
			x, w, b := testutil.RandomSlice(rng, n*in), testutil.RandomSlice(rng, in*out), testutil.RandomSlice(rng, in*out)
			const eta, lambda, scale = 0.03, 0.02, 0.7
			ctx := context.New()
			ctx.SetParam(ParamWMNoise, tc.noise)
			ctx.SetParam(ParamWMNoiseScale, scale)
			ctx.SetParam(ParamWMLearningRate, eta)
			ctx.SetParam(ParamWMDecay, lambda)
			ctx.SetParam(ParamWMRescale, tc.rescale)
			learning := WeightMirror{}.Learning(ctx)
			require.NotNil(t, learning.Mirror)
			got := MustExecOnce(backend, func(x, w, b *Node) *Node {
				return learning.mirrorStep(b, w, x, Dot(x, w))
			}, tensors.FromFlatDataAndDimensions(x, n, in), tensors.FromFlatDataAndDimensions(w, in, out),
				tensors.FromFlatDataAndDimensions(b, in, out))

			// The pre-redesign update, in plain Go.
			noiseVar := scale * scale / 3
			if tc.noise == "gaussian" {
				noiseVar = scale * scale
			}
			y := denseRef(n, in, out).forward(x, w)
			corr := denseRef(n, in, out).weightGrad(x, y) // xᵀy
			want := make([]float64, len(b))
			for i := range b {
				c := eta * corr[i] / (n * noiseVar)
				if tc.rescale {
					want[i] = b[i] + c
				} else {
					want[i] = (1-lambda)*b[i] + c
				}
			}
			if tc.rescale {
				back := denseRef(n, in, out).inputGrad(y, want)
				s := norm(x) / norm(back)
				for i := range want {
					want[i] *= s
				}
			}
			testutil.RequireClose(t, want, testutil.Flat64(t, got), 1e-12, "mirror step")
		})
	}
}

// TestMirrorNoiseMoments: the mirror's noise has the distribution its settings name: uniform on [−s, s) (mean 0,
// variance s²/3, kurtosis 1.8) or gaussian (variance s², kurtosis 3), uncorrelated between inputs, and new at
// every draw.
func TestMirrorNoiseMoments(t *testing.T) {
	backend := testutil.Backend(t)
	const rows, cols, scale = 4096, 32, 0.05
	for _, tc := range []struct {
		noise              string
		variance, kurtosis float64
	}{{"uniform", scale * scale / 3, 1.8}, {"gaussian", scale * scale, 3}} {
		t.Run(tc.noise, func(t *testing.T) {
			ctx := context.New()
			ctx.SetParam(ParamWMNoise, tc.noise)
			ctx.SetParam(ParamWMNoiseScale, scale)
			exec := context.MustNewExec(backend, ctx, func(ctx *context.Context, g *Graph) *Node {
				return mirrorNoise(ctx, g, shapes.Make(dtypes.Float32, rows, cols))
			})
			first := exec.MustExec()[0].Value().([][]float32)
			second := exec.MustExec()[0].Value().([][]float32)
			require.NotEqual(t, first[0], second[0], "each draw is new")
			var sum, sum2, sum4, cross float64
			lowest, highest := math.Inf(1), math.Inf(-1)
			for _, row := range first {
				for j, v := range row {
					x := float64(v)
					sum, sum2, sum4 = sum+x, sum2+x*x, sum4+x*x*x*x
					lowest, highest = min(lowest, x), max(highest, x)
					if j > 0 {
						cross += x * float64(row[j-1])
					}
				}
			}
			n := float64(rows * cols)
			sd := math.Sqrt(tc.variance)
			require.InDelta(t, 0, sum/n, 5*sd/math.Sqrt(n), "mean")
			require.InEpsilon(t, tc.variance, sum2/n, 0.03, "variance")
			require.InEpsilon(t, tc.kurtosis, sum4/n/(tc.variance*tc.variance), 0.05, "kurtosis")
			require.InDelta(t, 0, cross/(n-rows)/tc.variance, 5/math.Sqrt(n-rows), "neighbouring inputs uncorrelated")
			if tc.noise == "uniform" {
				require.GreaterOrEqual(t, lowest, -scale)
				require.Less(t, highest, float64(scale))
				require.Greater(t, highest-lowest, 2*scale*0.999, "the whole interval is covered")
			}
		})
	}
}
