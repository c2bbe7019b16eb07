package feedback

import (
	"fmt"
	"math/rand"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
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
