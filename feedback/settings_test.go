package feedback

import (
	"testing"

	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/stretchr/testify/require"
)

// TestSettingsDeclared: every rule's settings are complete (name, doc, a default of a supported type that is
// itself valid), a name declared by two rules means the same setting, and DefaultParams has them all.
func TestSettingsDeclared(t *testing.T) {
	seen := map[string]Setting{}
	defaults := DefaultParams()
	for _, r := range Rules() {
		for _, s := range append(r.Settings(), layerSettings...) {
			require.NotEmpty(t, s.Name, "rule %s", r.Name())
			require.NotEmpty(t, s.Doc, "setting %s", s.Name)
			switch s.Default.(type) {
			case float64, int, bool, string:
			default:
				t.Fatalf("setting %s: default %v has unsupported type %T", s.Name, s.Default, s.Default)
			}
			require.NoError(t, s.Validate(s.Default), "the default of %s must be valid", s.Name)
			if prev, found := seen[s.Name]; found {
				require.Equal(t, prev.Default, s.Default, "setting %s declared twice with different defaults", s.Name)
			}
			seen[s.Name] = s
			require.Contains(t, defaults, s.Name)
			require.Equal(t, s.Default, defaults[s.Name])
		}
	}
	require.Len(t, AllSettings(), len(seen))
}

// TestCheckSettings: values out of range, of the wrong type or not among the choices, at the root or in a layer's
// scope, are errors naming the setting, the scope and what is valid; defaults and good values pass.
func TestCheckSettings(t *testing.T) {
	ctx := context.New()
	for k, v := range DefaultParams() {
		ctx.SetParam(k, v)
	}
	require.NoError(t, CheckSettings(ctx))
	ctx.In("model").In("fc").SetParam(ParamRule, "kp")
	ctx.SetParam(ParamWMLearningRate, 0.5)
	ctx.SetParam(ParamWMBatch, 3.0) // a whole float64 (from JSON) is an integer
	require.NoError(t, CheckSettings(ctx))

	for _, tc := range []struct {
		scope, name string
		value       any
		errHas      []string
	}{
		{"", ParamWMDecay, 1.5, []string{"wm_decay=1.5", "[0, 1]", `scope "/"`}},
		{"", ParamWMNoise, "laplace", []string{`wm_noise="laplace"`, "uniform, gaussian"}},
		{"", ParamWMBatch, 2.5, []string{"wm_batch", "integer"}},
		{"", ParamInitScale, "big", []string{"feedback_init_scale", "number"}},
		{"model/fc", ParamIANull, -0.1, []string{"ia_null=-0.1", `scope "/model/fc"`}},
		{"model/fc", ParamRule, "dfa2", []string{`unknown feedback rule "dfa2"`, `scope "/model/fc"`}},
		{"", ParamConvImpl, "fft", []string{"feedback_conv_impl", "auto, native, patches"}},
		{"", ParamConvImpl, "Native", []string{"feedback_conv_impl", "auto, native, patches"}}, // conv.go compares exactly
		{"", ParamWMNoiseScale, 0.0, []string{"wm_noise_scale=0", "(0, ∞]"}},
	} {
		c := context.New()
		scoped := c
		if tc.scope != "" {
			scoped = c.InAbsPath("/" + tc.scope)
		}
		scoped.SetParam(tc.name, tc.value)
		err := CheckSettings(c)
		require.Error(t, err, "%s=%v", tc.name, tc.value)
		for _, s := range tc.errHas {
			require.ErrorContains(t, err, s)
		}
	}
}
