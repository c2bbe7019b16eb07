package feedback

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/nowt-ml/nowt/internal/param"
)

// validDescription says, for error messages, which values of a setting are valid: "true or false", "one of a,
// b", or a numeric range such as "> 0", "in [0, 1]" or "a whole number ≥ 0, or -1". Whether a value is valid is
// decided by [Setting.Validate] alone.
func validDescription(s Setting) string {
	switch s.Default.(type) {
	case bool:
		return "true or false"
	case string:
		if len(s.Choices) > 0 {
			return "one of " + strings.Join(s.Choices, ", ")
		}
		return "a string"
	}
	var doc string
	switch {
	case !s.HasRange:
		doc = "any number"
	case math.IsInf(s.Max, 1) && s.MinExclusive:
		doc = fmt.Sprintf("> %v", s.Min)
	case math.IsInf(s.Max, 1):
		doc = fmt.Sprintf("≥ %v", s.Min)
	default:
		doc = "in " + Setting{HasRange: true, Min: s.Min, Max: s.Max, MinExclusive: s.MinExclusive}.Range()
	}
	if _, isInt := s.Default.(int); isInt {
		doc = "a whole number " + doc
	}
	for _, v := range s.Special {
		doc += fmt.Sprintf(", or %v", v)
	}
	return doc
}

// ParamError reports a rule hyperparameter whose value is out of its valid range.
type ParamError struct {
	// Param is the hyperparameter's name (e.g. "wm_noise"); Scope the context scope where it was set ("/" at
	// the root).
	Param, Scope string
	// Value is the value found; Valid describes the valid values.
	Value any
	Valid string
}

// Error implements error.
func (e *ParamError) Error() string {
	where := ""
	if e.Scope != context.RootScope && e.Scope != "" {
		where = " (scope " + e.Scope + ")"
	}
	value := fmt.Sprint(e.Value)
	if str, isString := e.Value.(string); isString {
		value = strconv.Quote(str) // wm_batch="64", not wm_batch=64, when a number is wanted
	}
	return fmt.Sprintf("%s=%s%s is not valid: must be %s", e.Param, value, where, e.Valid)
}

// ValidateParams checks every value, at every scope of ctx, of the hyperparameters read by the rules and layers
// ([DefaultParams]): the rule names, the string choices, and the numeric ranges. It returns a [*ParamError] for
// the first invalid one (in name order), so that a program can reject it before building any graph, where the
// rules would panic or silently train badly.
func ValidateParams(ctx *context.Context) error {
	if ctx == nil {
		return fmt.Errorf("feedback.ValidateParams: nil context")
	}
	type setting struct {
		scope, key string
		value      any
	}
	var settings []setting
	ctx.EnumerateParams(func(scope, key string, value any) {
		settings = append(settings, setting{scope, key, value})
	})
	sort.Slice(settings, func(i, j int) bool {
		if settings[i].key != settings[j].key {
			return settings[i].key < settings[j].key
		}
		return settings[i].scope < settings[j].scope
	})
	for _, s := range settings {
		if err := validateParam(s.key, s.value); err != nil {
			err.Scope = s.scope
			return err
		}
		if setting, known := settingByName(s.key); known && setting.Global && s.scope != context.RootScope && s.scope != "" {
			return &ParamError{Param: s.key, Scope: s.scope, Value: s.value,
				Valid: "set for the whole model (at the root scope: " + s.key + "=…): it is read once, not per layer"}
		}
	}
	return nil
}

func validateParam(key string, value any) *ParamError {
	setting, known := settingByName(key)
	if !known {
		return nil
	}
	fail := func(valid string) *ParamError { return &ParamError{Param: key, Value: value, Valid: valid} }
	if key == ParamRule {
		name, ok := value.(string)
		if !ok {
			return fail("a rule name: " + strings.Join(RuleNames(), ", "))
		}
		if _, err := RuleByName(name); err != nil {
			return fail("one of " + strings.Join(RuleNames(), ", "))
		}
		return nil
	}
	if setting.Validate(value) == nil {
		return nil
	}
	valid := validDescription(setting)
	if _, isFloat := setting.Default.(float64); isFloat && param.Kind(value) != param.Kind(setting.Default) {
		valid = "a number " + valid // "a number > 0"; an int setting's description starts "a whole number"
	}
	return fail(valid)
}

// settingValue returns the declared setting name ([AllSettings]) as a layer or rule at ctx's scope reads it: its
// value there or above, its declared default when unset. A value of another kind than the default's or outside
// the valid ones panics (GoMLX's graph-building convention) with the [*ParamError] [ValidateParams] returns for
// it, so that a program that built a graph without calling ValidateParams first learns which setting is wrong
// and what is valid, where GoMLX's context would read the number 64 set for a string as "@", or panic with a
// conversion error.
func settingValue[T param.Value](ctx *context.Context, name string) T {
	setting, known := settingByName(name)
	if !known {
		panic(fmt.Sprintf("feedback: %q is not a declared setting (see AllSettings)", name))
	}
	def, ok := setting.Default.(T)
	if !ok {
		panic(fmt.Sprintf("feedback: setting %q is read as a %T, but its default is %#v", name, def, setting.Default))
	}
	if v, found := ctx.GetParam(name); found && v != nil {
		if err := validateParam(name, v); err != nil {
			err.Scope = param.ScopeOf(ctx, name)
			panic(err)
		}
	}
	v, err := param.Get(ctx, name, def)
	if err != nil { // validateParam accepts only what param.Get converts: not reached
		panic(fmt.Sprintf("feedback: %v", err))
	}
	return v
}

// settingByName finds a declared setting ([AllSettings]) by its parameter name.
func settingByName(name string) (Setting, bool) {
	for _, s := range AllSettings() {
		if s.Name == name {
			return s, true
		}
	}
	return Setting{}, false
}
