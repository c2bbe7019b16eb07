package feedback

import (
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/nowt-ml/nowt/internal/testutil"
	"github.com/stretchr/testify/require"
)

// TestUnreadFeedback: once a graph's gradient is built, the layers that sent no signal down — the first layer,
// whose input is the data — have left their B unread, and the others have read it; a first layer whose input
// depends on a trainable variable sends its signal and reads its B; an alignment graph reads every B.
func TestUnreadFeedback(t *testing.T) {
	backend := testutil.Backend(t)
	for _, tc := range []struct {
		name       string
		inputScale bool // the first layer's input is x times a trainable scalar
		alignment  bool // the alignment metrics read the kernels after the gradient
		unread     []string
	}{
		{"data into the first layer", false, false, []string{"/d1"}},
		{"a trainable input", true, false, nil},
		{"after the alignment metrics", false, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.New()
			ctx.SetParam(ParamRule, "kp")
			g := NewGraph(backend, tc.name)
			x := Parameter(g, "x", shapes.Make(dtypes.Float64, 4, 5))
			if tc.inputScale {
				x = Mul(x, ctx.In("scale").VariableWithValue("s", 2.0).ValueGraph(g))
			}
			h := Tanh(Dense(ctx.In("d1"), x, 6, true))
			logits := Dense(ctx.In("d3"), Tanh(Dense(ctx.In("d2"), h, 6, true)), 3, true)
			Gradients(ctx, ReduceAllSum(Square(logits)))
			if tc.alignment {
				AlignmentGraph(ctx, g)
			}
			var unread []string
			for _, layer := range Layers(ctx) {
				require.NotNil(t, layer.Feedback, layer.Scope)
				if UnreadFeedback(ctx, g)[layer.Feedback] {
					unread = append(unread, layer.Scope)
				}
			}
			require.Equal(t, tc.unread, unread)
			ReleaseGraph(ctx, g)
			require.Empty(t, UnreadFeedback(ctx, g), "a released graph has no layers")
		})
	}
}
