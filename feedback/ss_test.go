package feedback

import (
	"math"
	"math/rand"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/nowt-ml/nowt/internal/testutil"
	"github.com/stretchr/testify/require"
)

// TestFixScales: FixScales sets each sign-symmetry scale still waiting for its first step to the RMS of its layer's
// W, once (a second call fixes none); a graph built afterwards keeps that scale — with W changed before its first
// run, where a graph built before fixing would take the changed W's RMS; a scale given by ParamSSScale has no
// variable to fix; a scale whose weights have no value is an error naming the layer.
func TestFixScales(t *testing.T) {
	backend := testutil.Backend(t)
	rng := rand.New(rand.NewSource(3))
	x := tensors.FromFlatDataAndDimensions(testutil.RandomSlice(rng, 8*6), 8, 6)
	model := func(ctx *context.Context, x *Node) *Node {
		y := Dense(ctx.In("d2"), Tanh(Dense(ctx.In("d1"), x, 5, true)), 3, true)
		vars, grads := Gradients(ctx, ReduceAllMean(Square(y)))
		for i, v := range vars {
			v.SetValueGraph(Sub(v.ValueGraph(x.Graph()), MulScalar(grads[i], 0.1)))
		}
		return y
	}
	rms := func(w []float64) float64 {
		var s float64
		for _, v := range w {
			s += v * v
		}
		return math.Sqrt(s / float64(len(w)))
	}

	for _, fixFirst := range []bool{true, false} {
		ctx := context.New()
		ctx.SetParam(ParamRule, "ss")
		require.NoError(t, ctx.SetRNGStateFromSeed(5))
		// Variables created and initialised by a graph that is never run, as the trainer does on the host.
		require.NoError(t, context.MustNewExec(backend, ctx, model).PreCompile(x))
		require.NoError(t, ctx.InitializeVariables(backend, nil))
		layers := Layers(ctx)
		require.Len(t, layers, 2)
		if fixFirst {
			n, err := FixScales(ctx)
			require.NoError(t, err)
			require.Equal(t, 2, n)
			n, err = FixScales(ctx)
			require.NoError(t, err)
			require.Zero(t, n, "fixed once")
		}
		want := map[string]float64{}
		for _, layer := range layers {
			w := testutil.Flat64(t, layer.Weights.MustValue())
			want[layer.Scope] = rms(w)
			scale := testutil.Flat64(t, ctx.GetVariableByScopeAndName(layer.Scope, ssScaleName).MustValue())[0]
			if fixFirst {
				require.InEpsilon(t, want[layer.Scope], scale, 1e-12, "layer %s", layer.Scope)
			} else {
				require.Zero(t, scale, "layer %s: not fixed before a step", layer.Scope)
			}
			// W tripled before the first step: a scale fixed from the starting W keeps that W's RMS.
			tripled := make([]float64, len(w))
			for i, v := range w {
				tripled[i] = 3 * v
			}
			require.NoError(t, layer.Weights.SetValue(tensors.FromFlatDataAndDimensions(tripled, layer.Weights.Shape().Dimensions...)))
		}
		context.MustNewExec(backend, ctx.Reuse(), model).MustExec(x)
		for _, layer := range layers {
			scale := testutil.Flat64(t, ctx.GetVariableByScopeAndName(layer.Scope, ssScaleName).MustValue())[0]
			if fixFirst {
				require.InEpsilon(t, want[layer.Scope], scale, 1e-12, "layer %s: fixed before the graph was built", layer.Scope)
			} else {
				require.InEpsilon(t, 3*want[layer.Scope], scale, 1e-9, "layer %s: fixed by the first step", layer.Scope)
			}
		}
	}

	t.Run("given scale", func(t *testing.T) {
		ctx := context.New()
		ctx.SetParam(ParamRule, "ss")
		ctx.SetParam(ParamSSScale, 0.3)
		require.NoError(t, context.MustNewExec(backend, ctx, model).PreCompile(x))
		require.NoError(t, ctx.InitializeVariables(backend, nil))
		n, err := FixScales(ctx)
		require.NoError(t, err)
		require.Zero(t, n)
	})
	t.Run("no weights", func(t *testing.T) {
		ctx := context.New()
		ctx.In("lonely").VariableWithValue(ssScaleName, float32(0))
		_, err := FixScales(ctx)
		require.ErrorContains(t, err, `layer "/lonely"`)
		require.ErrorContains(t, err, "initialise the model's variables first")
	})
}
