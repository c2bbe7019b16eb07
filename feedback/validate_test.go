package feedback

import (
	"errors"
	"fmt"
	"math"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/nowt-ml/nowt/internal/testutil"
	"github.com/stretchr/testify/require"
)

// TestValidateParams: the defaults are valid; each out-of-range value, at the root or at a layer's scope, is a
// *ParamError naming the parameter, the scope and the valid range.
func TestValidateParams(t *testing.T) {
	require.ErrorContains(t, ValidateParams(nil), "feedback.ValidateParams: nil context")
	require.Empty(t, Layers(nil), "a nil context holds no layer")
	withDefaults := func() *context.Context {
		ctx := context.New()
		for k, v := range DefaultParams() {
			ctx.SetParam(k, v)
		}
		return ctx
	}
	require.NoError(t, ValidateParams(withDefaults()))
	for _, tc := range []struct {
		scope, param string
		value        any
		valid        string
	}{
		{"", ParamRule, "dfa2", "one of bp, fa, ss, wm, kp, usf, frsf, brsf, dfa, ia, aa"},
		{"", ParamWMNoise, "pink", "one of uniform, gaussian, normal"},
		{"", ParamConvImpl, "xyz", "one of auto, native, patches"},
		{"", ParamWMLearningRate, -5.0, "> 0"},
		{"", ParamWMLearningRate, math.NaN(), "> 0"},
		{"", ParamWMBatch, 0, "a whole number ≥ 1"},
		{"", ParamWMSteps, -1, "a whole number ≥ 0"},
		{"", ParamWMWarmupSteps, -2, "or -1"},
		{"", ParamWMNoiseScale, -1.0, "> 0"},
		{"", ParamWMDecay, 2.0, "in [0, 1]"},
		{"", ParamInitScale, 0.0, "> 0"},
		{"", ParamSSScale, -1.0, "≥ 0"},
		{"", ParamKPDecay, -2.0, "or -1"},
		{"", ParamWMRescale, "yes", "true or false"},
		{"", ParamWMBatch, "many", "a whole number ≥ 1"},
		{"", ParamWMBatch, 2.5, "a whole number ≥ 1"},
		{"", ParamWMBatch, "64", "a whole number ≥ 1"},
		{"", ParamInitScale, "big", "a number > 0"},
		{"", ParamConvImpl, "Native", "one of auto, native, patches"}, // conv.go compares exactly
		{"", ParamWMNoiseScale, 0.0, "> 0"},
		{"/model/fc", ParamIANull, -0.1, "≥ 0"},
		{"/model/fc0", ParamWMBatch, 0, "a whole number ≥ 1"},
		{"/model/out", ParamRule, "backprop", "one of bp"},
		{"/model/fc0", ParamWMSteps, 4, "set for the whole model"}, // read at the root only: not per layer
		{"/model", ParamWMWarmupSteps, 10, "set for the whole model"},
	} {
		ctx := withDefaults()
		at := ctx
		if tc.scope != "" {
			at = ctx.InAbsPath(tc.scope)
		}
		at.SetParam(tc.param, tc.value)
		err := ValidateParams(ctx)
		var pe *ParamError
		require.True(t, errors.As(err, &pe), "%s=%v: %v", tc.param, tc.value, err)
		require.Equal(t, tc.param, pe.Param)
		require.Equal(t, at.Scope(), pe.Scope)
		require.Contains(t, pe.Valid, tc.valid)
		require.ErrorContains(t, err, tc.param+"=")
	}
	// A string where a number is wanted is quoted, so that "64" does not read as the number 64.
	ctx := withDefaults()
	ctx.SetParam(ParamWMBatch, "64")
	require.EqualError(t, ValidateParams(ctx), `wm_batch="64" is not valid: must be a whole number ≥ 1`)
	for _, ok := range []struct {
		param string
		value any
	}{{ParamKPDecay, -1.0}, {ParamWMWarmupSteps, -1}, {ParamWMBatch, 64.0}, {ParamSSScale, 0.0}, {ParamWMNoise, "gaussian"}} {
		ctx := withDefaults()
		ctx.SetParam(ok.param, ok.value)
		require.NoError(t, ValidateParams(ctx), "%s=%v", ok.param, ok.value)
	}
}

// TestSettingValue: the layers and rules read each setting as declared — its default when unset, numbers of any
// width — and a value of another kind or out of range, set on a context that ValidateParams never saw, panics
// while the graph is built with the *ParamError naming the setting and the scope it was set at (GoMLX's context
// would read the number 64 set for wm_noise as "@", and panic converting the string "2" for feedback_init_scale).
func TestSettingValue(t *testing.T) {
	ctx := context.New()
	require.Equal(t, 128, settingValue[int](ctx, ParamWMBatch))
	require.Equal(t, "uniform", settingValue[string](ctx, ParamWMNoise))
	ctx.SetParam(ParamWMBatch, 64.0) // as JSON decodes it
	ctx.SetParam(ParamWMLearningRate, float32(0.5))
	require.Equal(t, 64, settingValue[int](ctx, ParamWMBatch))
	require.Equal(t, 0.5, settingValue[float64](ctx, ParamWMLearningRate))
	require.PanicsWithValue(t, `feedback: "wm_batchsize" is not a declared setting (see AllSettings)`, func() {
		settingValue[int](ctx, "wm_batchsize")
	})
	ctx.InAbsPath("/model").SetParam(ParamWMBatch, 0)
	require.PanicsWithError(t, "wm_batch=0 (scope /model) is not valid: must be a whole number ≥ 1", func() {
		settingValue[int](ctx.InAbsPath("/model/fc"), ParamWMBatch)
	})
	require.Equal(t, 64, settingValue[int](ctx.InAbsPath("/other"), ParamWMBatch), "the root's value, beside /model")

	backend := testutil.Backend(t)
	for _, tc := range []struct {
		rule, param string
		value       any
		scope       string // where it is set, relative to the root; the layer lives at /model/fc
		want        string
	}{
		{"fa", ParamInitScale, "2", "", `feedback_init_scale="2" is not valid: must be a number > 0`},
		{"fa", ParamInitScale, -1.0, "model", "feedback_init_scale=-1 (scope /model) is not valid: must be > 0"},
		{"wm", ParamWMNoise, 64, "model/fc", "wm_noise=64 (scope /model/fc) is not valid: must be one of uniform, gaussian, normal"},
		{"kp", ParamKPDecoupled, "yes", "", `kp_decoupled="yes" is not valid: must be true or false`},
	} {
		t.Run(tc.param, func(t *testing.T) {
			ctx := context.New()
			ctx.SetParam(ParamRule, tc.rule)
			ctx.InAbsPath("/"+tc.scope).SetParam(tc.param, tc.value)
			var panicked any
			func() {
				defer func() { panicked = recover() }()
				layerCtx := ctx.InAbsPath("/model/fc")
				_ = RuleFromContext(layerCtx).Learning(layerCtx) // what the trainer reads of the rule
				context.MustExecOnce(backend, ctx.InAbsPath("/model/fc"), func(ctx *context.Context, x *Node) *Node {
					return Dense(ctx, x, 2, true)
				}, [][]float32{{1, 2, 3}})
			}()
			require.NotNil(t, panicked, "%s=%#v", tc.param, tc.value)
			err, isErr := panicked.(error)
			if !isErr {
				err = fmt.Errorf("%v", panicked)
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
}
