package feedback

import (
	"errors"
	"math"
	"testing"

	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/stretchr/testify/require"
)

// TestValidateParams: the defaults are valid; each out-of-range value, at the root or at a layer's scope, is a
// *ParamError naming the parameter, the scope and the valid range.
func TestValidateParams(t *testing.T) {
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
		{"", ParamWMBatch, "many", "a number"},
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
	for _, ok := range []struct {
		param string
		value any
	}{{ParamKPDecay, -1.0}, {ParamWMWarmupSteps, -1}, {ParamWMBatch, 64.0}, {ParamSSScale, 0.0}, {ParamWMNoise, "gaussian"}} {
		ctx := withDefaults()
		ctx.SetParam(ok.param, ok.value)
		require.NoError(t, ValidateParams(ctx), "%s=%v", ok.param, ok.value)
	}
}
