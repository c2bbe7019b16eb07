package param

import (
	"math"
	"testing"

	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/stretchr/testify/require"
)

// TestGet: a setting of its default's kind is read (numbers converted as JSON and Go code write them), an unset
// one is its default, and one of another kind is an error naming it, its value and the kind wanted, where
// GoMLX's context.GetParamOr converts 16 to "\x10" or panics.
func TestGet(t *testing.T) {
	t.Run("unset", func(t *testing.T) {
		ctx := context.New()
		s, err := Get(ctx, "s", "def")
		require.NoError(t, err)
		require.Equal(t, "def", s)
		ctx.SetParam("s", nil)
		s, err = Get(ctx, "s", "def")
		require.NoError(t, err)
		require.Equal(t, "def", s)
	})
	for _, tc := range []struct {
		name  string
		value any
		def   any
		want  any
		err   string
	}{
		{"string", "500,10", "500", "500,10", ""},
		{"int for a string", 16, "500", nil, `x=16 is a number: want a string, as its default "500"`},
		{"bool", true, false, true, ""},
		{"string for a bool", "yes", false, nil, `x="yes" is a string: want true or false, as its default false`},
		{"int", 32, 16, 32, ""},
		{"int64 for an int", int64(32), 16, 32, ""},
		{"whole float for an int (JSON)", 32.0, 16, 32, ""},
		{"fraction for an int", 32.5, 16, nil, "x=32.5 is a number: want a whole number, as its default 16"},
		{"huge float for an int", 1e300, 16, nil, "want a whole number"},
		{"string for an int", "32", 16, nil, `x="32" is a string: want a whole number, as its default 16`},
		{"float", 0.5, 0.9, 0.5, ""},
		{"int for a float", 1, 0.9, 1.0, ""},
		{"float32 for a float", float32(0.25), 0.9, 0.25, ""},
		{"string for a float", "0.9", 0.9, nil, `x="0.9" is a string: want a number, as its default 0.9`},
		{"slice for a float", []int{1}, 0.9, nil, "x=[]int{1} is a []int: want a number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.New()
			ctx.SetParam("x", tc.value)
			var got any
			var err error
			switch def := tc.def.(type) {
			case string:
				got, err = Get(ctx, "x", def)
			case bool:
				got, err = Get(ctx, "x", def)
			case int:
				got, err = Get(ctx, "x", def)
			case float64:
				got, err = Get(ctx, "x", def)
			}
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

// TestKind: the kinds errors name.
func TestKind(t *testing.T) {
	for v, want := range map[any]string{"a": "a string", true: "true or false", 3: "a number", uint8(3): "a number",
		float32(1): "a number", math.Inf(1): "a number", struct{}{}: "a struct {}"} {
		require.Equal(t, want, Kind(v), "%#v", v)
	}
}

// TestScopes: ctx itself, then every scope below ctx's where one of the names is set, once each and in path
// order; scopes above or beside ctx's and other names are left out.
func TestScopes(t *testing.T) {
	ctx := context.New()
	ctx.SetParam("m", 0.5)
	ctx.InAbsPath("/model/b/bn").SetParam("m", 0.1)
	ctx.InAbsPath("/model/b/bn").SetParam("e", 0.1)
	ctx.InAbsPath("/model/a/bn").SetParam("e", 0.1)
	ctx.InAbsPath("/model/c").SetParam("other", 1)
	ctx.InAbsPath("/modelx/bn").SetParam("m", 0.1)
	scopesOf := func(ctx *context.Context, names ...string) (scopes []string) {
		for _, c := range Scopes(ctx, names...) {
			scopes = append(scopes, c.Scope())
		}
		return scopes
	}
	require.Equal(t, []string{"/", "/model/a/bn", "/model/b/bn", "/modelx/bn"}, scopesOf(ctx, "m", "e"))
	require.Equal(t, []string{"/model", "/model/a/bn", "/model/b/bn"}, scopesOf(ctx.InAbsPath("/model"), "m", "e"))
	require.Equal(t, []string{"/model", "/model/b/bn"}, scopesOf(ctx.InAbsPath("/model"), "m"))
	require.Equal(t, []string{"/model/b"}, scopesOf(ctx.InAbsPath("/model/b"), "other"))
	// The scoped contexts read the setting as the layer there will.
	m, err := Get(Scopes(ctx.InAbsPath("/model"), "m")[1], "m", 0.9)
	require.NoError(t, err)
	require.Equal(t, 0.1, m)
}

// TestScopeOf: the scope whose value a context reads is its own or the nearest above it where the name is set,
// never one beside or below it.
func TestScopeOf(t *testing.T) {
	ctx := context.New()
	require.Equal(t, "", ScopeOf(ctx, "m"), "unset")
	ctx.SetParam("m", 0.5)
	ctx.InAbsPath("/model").SetParam("m", 0.1)
	ctx.InAbsPath("/model/fc/bn").SetParam("m", 0.2)
	ctx.InAbsPath("/modelx").SetParam("m", 0.3)
	for scope, want := range map[string]string{"/": "/", "/model": "/model", "/model/fc": "/model", "/model/fc/bn": "/model/fc/bn",
		"/modelx/a": "/modelx", "/mode": "/", "/other": "/"} {
		require.Equal(t, want, ScopeOf(ctx.InAbsPath(scope), "m"), scope)
	}
}
