package trainer

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSuggestSetting: an unknown -set name is matched to the setting whose flag it spells, else to a name within two
// edits; a name far from every setting gets no suggestion.
func TestSuggestSetting(t *testing.T) {
	for _, tc := range []struct{ name, setting, flag string }{
		{"wm_lr", "wm_learning_rate", "wm-lr"},
		{"wm-lr", "wm_learning_rate", "wm-lr"},
		{"-wm-lr", "wm_learning_rate", "wm-lr"},
		{"hidden", "mlp_hidden", "hidden"},
		{"kp_decy", "kp_decay", "kp-decay"},
		{"bn_momentun", "bn_momentum", ""},
		{"bogus", "", ""},
		{"learning_rate", "", ""},
	} {
		setting, flag := suggestSetting(tc.name)
		require.Equal(t, []string{tc.setting, tc.flag}, []string{setting, flag}, tc.name)
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"abc", "", 3}, {"", "ab", 2}, {"kp_decy", "kp_decay", 1}, {"kitten", "sitting", 3}, {"ab", "ba", 2}} {
		require.Equal(t, tc.want, editDistance(tc.a, tc.b), "%q %q", tc.a, tc.b)
		require.Equal(t, tc.want, editDistance(tc.b, tc.a), "%q %q", tc.b, tc.a)
	}
}
