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

// storedReference is the kernel of rules that send through their stored B, drawn independently of W.
func storedReference(t *testing.T, in refInput) []float64 {
	require.NotNil(t, in.b, "the rule must store B")
	require.Greater(t, angleBetween(in.b, in.w), 60.0, "B must be drawn independently of W")
	return in.b
}

func rms(a []float64) float64 { return norm(a) / math.Sqrt(float64(len(a))) }

// scaledSigns is scale·sign(w).
func scaledSigns(w []float64, scale float64) []float64 {
	out := make([]float64, len(w))
	for i, v := range w {
		out[i] = scale * sign(v)
	}
	return out
}
