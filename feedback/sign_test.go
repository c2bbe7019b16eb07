package feedback

import (
	"math"
	"testing"

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
	// brsf: |R_t|∘sign(W) with R_t a fresh draw of the initialiser: the kernel used must have W's signs and
	// magnitudes of the initialiser's scale, and not be W's.
	ruleReferences["brsf"] = ruleReference{kernel: func(t *testing.T, in refInput) []float64 {
		require.Len(t, in.used, len(in.w))
		for i := range in.w {
			require.Equal(t, sign(in.w[i]), sign(in.used[i]), "brsf's kernel has W's signs [%d]", i)
		}
		require.InEpsilon(t, math.Sqrt(2/float64(in.fanIn)), rms(in.used), 0.35, "|R_t| has the initialiser's scale")
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
