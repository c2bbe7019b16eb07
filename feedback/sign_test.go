package feedback

import (
	"math"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/nowt-ml/nowt/internal/testutil"
	"github.com/stretchr/testify/require"
)

func init() {
	// usf: σ_init·sign(W), σ_init measured on one draw of the layer's initialiser (He-normal here: √(2/fan_in)).
	ruleReferences["usf"] = ruleReference{kernel: func(t *testing.T, in refInput) []float64 {
		scale := in.variable(usfScaleName)[0]
		require.InEpsilon(t, math.Sqrt(2/float64(in.fanIn)), scale, 0.35, "uSF's scale is the initialiser's σ")
		require.Greater(t, math.Abs(scale-rms(in.w)), 0.0, "uSF's scale is not W's RMS (that is ss)")
		return scaledSigns(in.w, scale)
	}}
	// frsf: |R|∘sign(W), R the stored B.
	ruleReferences["frsf"] = ruleReference{kernel: func(t *testing.T, in refInput) []float64 {
		r := storedReference(t, in)
		out := make([]float64, len(r))
		for i := range r {
			out[i] = math.Abs(r[i]) * sign(in.w[i])
		}
		return out
	}}
	// brsf: |R_t|∘sign(W) with |R_t| a fresh uniform draw on [0, √3·σ), σ the initialiser's standard deviation
	// (kept in "brsf_scale"): the kernel used must have W's signs, magnitudes below √3·σ with an RMS near σ, and
	// not be W's.
	ruleReferences["brsf"] = ruleReference{kernel: func(t *testing.T, in refInput) []float64 {
		require.Len(t, in.used, len(in.w))
		scale := in.variable(brsfScaleName)[0]
		require.InEpsilon(t, math.Sqrt(2/float64(in.fanIn)), scale, 0.5, "σ is the initialiser's")
		for i := range in.w {
			require.Equal(t, sign(in.w[i]), sign(in.used[i]), "brsf's kernel has W's signs [%d]", i)
			require.Less(t, math.Abs(in.used[i]), math.Sqrt(3)*scale*(1+1e-6), "|R_t| < √3·σ [%d]", i)
		}
		require.InEpsilon(t, scale, rms(in.used), 0.35, "|R_t|'s RMS is σ")
		require.Greater(t, angleBetween(absAll(in.used), absAll(in.w)), 10.0, "|R_t| is not |W|")
		return in.used
	}}
}

func absAll(a []float64) []float64 {
	out := make([]float64, len(a))
	for i, v := range a {
		out[i] = math.Abs(v)
	}
	return out
}

// TestFastUniform: brsf's counter-hash numbers are uniform on [0, 1) (mean, variance, a 10-bin histogram),
// uncorrelated between neighbours, and new at every step.
func TestFastUniform(t *testing.T) {
	backend := testutil.Backend(t)
	ctx := context.New()
	require.NoError(t, ctx.SetRNGStateFromSeed(8))
	exec := context.MustNewExec(backend, ctx, func(ctx *context.Context, g *Graph) *Node {
		return fastUniform(ctx, g, shapes.Make(dtypes.Float32, 200, 100))
	})
	first := toF64(exec.MustExec()[0])
	second := toF64(exec.MustExec()[0])
	n := float64(len(first))
	var mean, sq, lag float64
	bins := make([]int, 10)
	for i, u := range first {
		require.True(t, u >= 0 && u < 1, "value %g out of [0, 1)", u)
		mean += u / n
		sq += u * u / n
		if i > 0 {
			lag += (u - 0.5) * (first[i-1] - 0.5) / n
		}
		bins[int(u*10)]++
	}
	require.InDelta(t, 0.5, mean, 0.01)
	require.InDelta(t, 1.0/12, sq-mean*mean, 0.003)
	require.InDelta(t, 0, lag/(1.0/12), 0.03, "neighbour correlation")
	for b, count := range bins {
		require.InDelta(t, n/10, float64(count), 5*math.Sqrt(n/10), "bin %d", b)
	}
	require.Greater(t, angleBetween(first, second), 30.0, "a new draw at every step")
}
