package xla

import (
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/context/initializers"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// hostInitContext returns a context seeded with 7 that holds a variable with a value ("kept/v"), and the build
// function that creates two random variables in it ("layer/w", "layer/b") and reads the kept one.
func hostInitContext(t *testing.T) (*context.Context, func(ctx *context.Context, g *graph.Graph)) {
	t.Helper()
	ctx := context.New()
	require.NoError(t, ctx.SetRNGStateFromSeed(7))
	ctx.In("kept").VariableWithValue("v", []float32{1, 2, 3})
	build := func(ctx *context.Context, g *graph.Graph) {
		layer := ctx.In("layer")
		layer.WithInitializer(initializers.RandomNormalFn(layer, 1)).VariableWithShape("w", shapes.Make(dtypes.Float32, 4, 3)).ValueGraph(g)
		layer.WithInitializer(initializers.RandomUniformFn(layer, -1, 1)).VariableWithShape("b", shapes.Make(dtypes.Float32, 3)).ValueGraph(g)
		ctx.In("kept").GetVariable("v").ValueGraph(g)
	}
	return ctx, build
}

// values returns every variable of ctx with its values (float32 variables only; the random state is skipped).
func values(t *testing.T, ctx *context.Context) map[string][]float32 {
	t.Helper()
	out := map[string][]float32{}
	for v := range ctx.IterVariables() {
		if v.Name() == context.RNGStateVariableName {
			continue
		}
		out[v.ScopeAndName()] = tensors.MustCopyFlatData[float32](v.MustValue())
	}
	return out
}

// TestInitializeOnHost: the variables build creates get their initializers' values, the same as GoMLX's own
// initialisation gives on pure Go under the same seed; they and the random state end in host memory, so that
// another backend instance (the one the tests run on: XLA in make test's XLA pass) runs a graph on them; a
// variable with a value keeps it; a panic while building comes back as an error.
func TestInitializeOnHost(t *testing.T) {
	ctx, build := hostInitContext(t)
	require.NoError(t, InitializeOnHost(ctx, build))
	got := values(t, ctx)
	require.Len(t, got, 3)
	assert.Equal(t, []float32{1, 2, 3}, got["/kept/v"], "a variable with a value keeps it")
	for v := range ctx.IterVariables() {
		assert.True(t, v.MustValue().IsLocal(), "%s is in host memory", v.ScopeAndName())
		_, err := v.MustValue().Backend()
		assert.Error(t, err, "%s is detached from the pure-Go backend it was computed on", v.ScopeAndName())
	}
	assert.NotEqual(t, make([]float32, 12), got["/layer/w"], "w was drawn")

	// GoMLX's own initialisation, on pure Go: the values the engine that first runs a graph would give.
	want, wantBuild := hostInitContext(t)
	goBackend, err := newWithConfig(DefaultGoConfig)
	require.NoError(t, err)
	defer goBackend.Finalize()
	_, err = context.ExecOnce(goBackend, want, func(ctx *context.Context, g *graph.Graph) *graph.Node {
		wantBuild(ctx, g)
		return graph.Scalar(g, dtypes.Float32, 0)
	})
	require.NoError(t, err)
	assert.Equal(t, values(t, want), got, "the same values as GoMLX's initialisation on pure Go")

	// Another backend instance runs on the host values.
	backend, err := TestBackend()
	require.NoError(t, err)
	sum, err := context.ExecOnce(backend, ctx, func(ctx *context.Context, g *graph.Graph) *graph.Node {
		return graph.ReduceAllSum(ctx.In("layer").GetVariable("w").ValueGraph(g))
	})
	require.NoError(t, err, "a graph on %s reads the host values", backend.Name())
	var wantSum float32
	for _, x := range got["/layer/w"] {
		wantSum += x
	}
	assert.InDelta(t, wantSum, sum.Value().(float32), 1e-5)

	// The same through an Exec's function and the arguments it will run with: the same values, and the argument
	// stays usable on the other backend.
	forCtx, forBuild := hostInitContext(t)
	forCtx = forCtx.Checked(false) // fn creates its variables again when it is executed
	x := tensors.FromValue([][]float32{{1, 2, 3, 4}})
	fn := func(ctx *context.Context, x *graph.Node) *graph.Node {
		forBuild(ctx, x.Graph())
		return graph.ReduceAllSum(graph.Dot(x, ctx.In("layer").GetVariable("w").ValueGraph(x.Graph())))
	}
	require.NoError(t, InitializeOnHostFor(forCtx, fn, x))
	assert.Equal(t, got, values(t, forCtx))
	_, err = context.ExecOnce(backend, forCtx, fn, x)
	require.NoError(t, err, "the argument and the variables run on %s", backend.Name())

	// A panic while building.
	ctx, _ = hostInitContext(t)
	err = InitializeOnHost(ctx, func(ctx *context.Context, g *graph.Graph) {
		panic("no such layer")
	})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "initialising variables on the host: building the graph: no such layer")
}
