package feedback

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func init() {
	// dfa: the stored B, towards the classes ([in, classes] or [kh, kw, cin, classes]), sent e.
	ruleReferences["dfa"] = ruleReference{fromOutput: true, kernel: func(t *testing.T, in refInput) []float64 {
		require.Equal(t, in.fanIn*testClasses, len(in.b), "B maps the %d classes to the layer's input", testClasses)
		return in.b
	}}
}
