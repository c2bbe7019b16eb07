// Package param reads the models' and layers' hyperparameters from a GoMLX context strictly by kind, returning an
// error where GoMLX's context.GetParamOr would convert or panic: it reads the number 16 set for a string setting
// as "\x10" (Go's integer-to-string conversion), and panics, deep inside graph building, on the string "32" set
// for a number. A setting read here is either of its default's kind or an error that names it.
package param

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/gomlx/gomlx/pkg/ml/context"
)

// Value is the kinds of value a hyperparameter with a default takes.
type Value interface {
	string | bool | int | float64
}

// Get returns the value of the hyperparameter name in ctx (searched from ctx's scope up to the root), or def when
// it is not set (or set to nil). A value of another kind than def's is an error naming the setting, the value and
// the kind wanted: a string for a string, true or false for a bool, a whole number (of any integer or float type,
// as JSON decodes them) for an int, any number for a float64.
func Get[T Value](ctx *context.Context, name string, def T) (T, error) {
	v, found := ctx.GetParam(name)
	if !found || v == nil {
		return def, nil
	}
	if got, ok := Convert(v, def); ok {
		return got, nil
	}
	return def, fmt.Errorf("%s=%#v is %s: want %s, as its default %#v", name, v, Kind(v), wantKind(def), def)
}

// Scopes returns ctx and, for every scope below ctx's where one of names is set (a setting aimed at one layer,
// "/model/stage1/block0/bn1/bn_momentum=…"), ctx at that scope, in the order of their paths: where a check must
// read each of those settings as the layer there will.
func Scopes(ctx *context.Context, names ...string) []*context.Context {
	top := ctx.Scope()
	var below []string
	ctx.EnumerateParams(func(scope, key string, _ any) {
		if scope != top && slices.Contains(names, key) && isBelow(scope, top) && !slices.Contains(below, scope) {
			below = append(below, scope)
		}
	})
	slices.Sort(below)
	scoped := []*context.Context{ctx}
	for _, scope := range below {
		scoped = append(scoped, ctx.InAbsPath(scope))
	}
	return scoped
}

// ScopeOf returns the scope whose value of name ctx reads: ctx's own scope or the nearest one above it where name
// is set ("" if none is).
func ScopeOf(ctx *context.Context, name string) string {
	found := ""
	ctx.EnumerateParams(func(scope, key string, _ any) {
		if key == name && len(scope) > len(found) && (scope == ctx.Scope() || isBelow(ctx.Scope(), scope)) {
			found = scope
		}
	})
	return found
}

// isBelow reports whether scope lies below the scope top.
func isBelow(scope, top string) bool {
	if top == context.RootScope {
		return strings.HasPrefix(scope, context.RootScope)
	}
	return strings.HasPrefix(scope, top+context.ScopeSeparator)
}

// Convert returns v as def's type, and whether v is of def's kind (see [Get]): a string, a bool, a whole number
// for an int (within int's range), any number for a float64.
func Convert[T Value](v any, def T) (T, bool) {
	var out T
	switch p := any(&out).(type) {
	case *string:
		s, ok := v.(string)
		*p = s
		return out, ok
	case *bool:
		b, ok := v.(bool)
		*p = b
		return out, ok
	case *int:
		f, ok := number(v)
		if !ok || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
			return out, false
		}
		*p = int(f)
		return out, true
	case *float64:
		f, ok := number(v)
		*p = f
		return out, ok
	}
	return out, false
}

// Kind names the kind of a hyperparameter's value as errors write it: "a string", "true or false", "a number",
// or its Go type.
func Kind(v any) string {
	if _, ok := number(v); ok {
		return "a number"
	}
	switch v.(type) {
	case string:
		return "a string"
	case bool:
		return "true or false"
	}
	return fmt.Sprintf("a %T", v)
}

// wantKind names the kind def's hyperparameter takes.
func wantKind(def any) string {
	if _, ok := def.(int); ok {
		return "a whole number"
	}
	return Kind(def)
}

// number returns v as a float64 if it has a numeric type.
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int8:
		return float64(n), true
	case int16:
		return float64(n), true
	case int32:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint:
		return float64(n), true
	case uint8:
		return float64(n), true
	case uint16:
		return float64(n), true
	case uint32:
		return float64(n), true
	case uint64:
		return float64(n), true
	case float32:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}
