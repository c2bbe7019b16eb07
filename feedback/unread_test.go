package feedback

import (
	"math/rand"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/nowt-ml/nowt/internal/testutil"
	"github.com/nowt-ml/nowt/xla"
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

// TestSentKernels: a training step keeps the kernel of each layer whose rule computes it (ss) and that sent a
// signal down — not the first layer's, whose input is the data, nor a kernel that is W (bp) or a stored B (kp) —
// and its value is the rule's kernel for the W of that step; SentKernels lists exactly those variables.
func TestSentKernels(t *testing.T) {
	backend := testutil.Backend(t)
	for _, tc := range []struct {
		rule string
		kept []string
	}{
		{"ss", []string{"/d2", "/d3"}},
		{"bp", nil},
		{"kp", nil},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			ctx := context.New().Checked(false)
			ctx.SetParam(ParamRule, tc.rule)
			x := tensors.FromFlatDataAndDimensions(testutil.RandomSlice(rand.New(rand.NewSource(1)), 4*5), 4, 5)
			step := func(ctx *context.Context, x *Node) *Node {
				h := Tanh(Dense(ctx.In("d1"), x, 6, true))
				logits := Dense(ctx.In("d3"), Tanh(Dense(ctx.In("d2"), h, 6, true)), 3, true)
				loss := ReduceAllSum(Square(logits))
				Gradients(ctx, loss)
				ReleaseGraph(ctx, x.Graph())
				return loss
			}
			require.NoError(t, xla.InitializeOnHostFor(ctx, step, x))
			context.MustExecOnce(backend, ctx, step, x)
			var kept []string
			for _, v := range SentKernels(ctx) {
				kept = append(kept, v.Scope())
				w := testutil.Flat64(t, ctx.GetVariableByScopeAndName(v.Scope(), WeightsName).MustValue())
				scale := testutil.Flat64(t, ctx.GetVariableByScopeAndName(v.Scope(), ssScaleName).MustValue())[0]
				require.Equal(t, scaledSigns(w, scale), testutil.Flat64(t, v.MustValue()), "the kernel kept by %s", v.Scope())
			}
			require.ElementsMatch(t, tc.kept, kept)
		})
	}
}
