package feedback

import (
	"runtime"
	"testing"
	"weak"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/nowt-ml/nowt/internal/testutil"
	"github.com/stretchr/testify/require"
)

// TestReleaseGraph: a graph's layer records (captures) are freed by ReleaseGraph while the context that built the
// graph lives on, they are per graph (releasing one graph leaves another's), and a released graph's gradient
// and alignment no longer see its layers.
func TestReleaseGraph(t *testing.T) {
	backend := testutil.Backend(t)
	for _, rule := range []string{"bp", "kp", "dfa"} {
		t.Run(rule, func(t *testing.T) {
			ctx := context.New().Checked(false) // the second graph reuses the first's variables
			ctx.SetParam(ParamRule, rule)
			ctx.SetParam(ParamOutputDim, 3)
			build := func(name string) (*Graph, weak.Pointer[capture]) {
				g := NewGraph(backend, name)
				x := Parameter(g, "x", shapes.Make(dtypes.Float64, 4, 5))
				logits := OutputError(ctx, Dense(ctx.In("d2"), Tanh(Dense(ctx.In("d1"), x, 6, true)), 3, true))
				_, grads := Gradients(ctx, ReduceAllSum(Square(logits)))
				require.NotEmpty(t, grads)
				captures := graphCaptures(ctx, g)
				require.Len(t, captures, 3, "two layers and the output error")
				return g, weak.Make(captures[1])
			}
			g1, kept := build("g1")
			g2, freed := build("g2")
			require.NotNil(t, AlignmentGraph(ctx, g2)[0].DeltaAngle, "the alignment reads g2's records")

			ReleaseGraph(ctx, g2)
			ReleaseGraph(ctx, g2) // twice is harmless
			g2.Finalize()
			runtime.GC()
			runtime.GC()
			require.Nil(t, freed.Value(), "g2's records are still reachable after ReleaseGraph")
			require.NotNil(t, kept.Value(), "releasing g2 freed g1's records")
			require.Empty(t, graphCaptures(ctx, g2))
			require.Len(t, graphCaptures(ctx, g1), 3)

			ReleaseGraph(ctx, g1)
			require.Empty(t, graphCaptures(ctx, g1))
			runtime.KeepAlive(ctx)
		})
	}
}
