package feedback

import (
	"testing"

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
