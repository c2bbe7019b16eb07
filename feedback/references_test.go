package feedback

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// refInput is what a rule's plain-Go reference sees of a layer after one forward and backward pass.
type refInput struct {
	w    []float64 // W's values
	b    []float64 // the stored B's values (nil where the rule stores none)
	used []float64 // the kernel the graph sent its signal through (for rules whose kernel is random per step)
	// fanIn is the layer's fan-in: in (dense), kh·kw·cin (conv).
	fanIn int
	// variable returns the values of the layer's variable name (failing the test if it is missing).
	variable func(name string) []float64
}

// ruleReference is a rule's plain-Go reference, checked by TestLayerGradients: the kernel the layer must send
// its signal through and what the signal is computed from. Each rule registers its own, in the test file
// beside it.
type ruleReference struct {
	kernel     func(t *testing.T, in refInput) []float64
	fromOutput bool
}

// ruleReferences holds every rule's reference, by rule name.
var ruleReferences = map[string]ruleReference{
	"bp": {kernel: func(_ *testing.T, in refInput) []float64 { return in.w }},
	"fa": {kernel: storedReference},
	"wm": {kernel: storedReference},
	"kp": {kernel: storedReference},
	"ss": {kernel: func(_ *testing.T, in refInput) []float64 { return scaledSigns(in.w, rms(in.w)) }},
}

// storedReference is the kernel of rules that send through their stored B, drawn independently of W: on layers
// of at least independentCheckSize weights, B's angle to W is over 60° (two independent draws of n values are at
// 90° ± 57°/√n; B = W would be at 0°, B = scale·sign(W) at about 37°). Smaller layers are not asked: at 12 weights
// an independent draw falls under 60° about one time in thirty.
func storedReference(t *testing.T, in refInput) []float64 {
	require.NotNil(t, in.b, "the rule must store B")
	if len(in.w) >= independentCheckSize {
		require.Greater(t, angleBetween(in.b, in.w), 60.0, "B must be drawn independently of W")
	}
	return in.b
}

// independentCheckSize is the smallest layer on which storedReference checks that B is independent of W (60° is
// 3.7 standard deviations from 90° there).
const independentCheckSize = 50

func rms(a []float64) float64 { return norm(a) / math.Sqrt(float64(len(a))) }

// scaledSigns is scale·sign(w).
func scaledSigns(w []float64, scale float64) []float64 {
	out := make([]float64, len(w))
	for i, v := range w {
		out[i] = scale * sign(v)
	}
	return out
}
