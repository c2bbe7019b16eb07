package feedback

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/gomlx/gomlx/pkg/ml/context"
)

// paramRange is the valid range of one setting ([Setting]), as ValidateParams checks and describes it.
type paramRange struct {
	// oneOf lists the valid values of a string parameter (nil: any, for a numeric or boolean one).
	oneOf []string
	// boolean marks a true/false setting.
	boolean bool
	// min and max bound a numeric parameter; minOpen excludes min itself; integer requires a whole number.
	min, max float64
	minOpen  bool
	integer  bool
	// special are valid values outside [min, max] (sentinels such as -1 for "the default").
	special []float64
	// doc describes the valid range for error messages.
	doc string
}

// rangeOf derives a setting's valid range and its description from its declaration.
func rangeOf(s Setting) paramRange {
	r := paramRange{oneOf: s.Choices, min: math.Inf(-1), max: math.Inf(1), special: s.Special}
	switch s.Default.(type) {
	case bool:
		r.boolean = true
		return r
	case string:
		return r
	case int:
		r.integer = true
	}
	if s.HasRange {
		r.min, r.max, r.minOpen = s.Min, s.Max, s.MinExclusive
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
	if r.integer {
		doc = "a whole number " + doc
	}
	for _, v := range s.Special {
		doc += fmt.Sprintf(", or %v", v)
	}
	r.doc = doc
	return r
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
	return fmt.Sprintf("%s=%v%s is not valid: must be %s", e.Param, e.Value, where, e.Valid)
}

// ValidateParams checks every value, at every scope of ctx, of the hyperparameters read by the rules and layers
// ([DefaultParams]): the rule names, the string choices, and the numeric ranges. It returns a [*ParamError] for
// the first invalid one (in name order), so that a program can reject it before building any graph, where the
// rules would panic or silently train badly.
func ValidateParams(ctx *context.Context) error {
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
	}
	return nil
}

func validateParam(key string, value any) *ParamError {
	setting, known := settingByName(key)
	if !known {
		return nil
	}
	r := rangeOf(setting)
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
	if r.boolean {
		if _, ok := value.(bool); !ok {
			return fail("true or false")
		}
		return nil
	}
	if r.oneOf != nil {
		s, ok := value.(string)
		if !ok || !contains(r.oneOf, s) {
			return fail("one of " + strings.Join(r.oneOf, ", "))
		}
		return nil
	}
	var v float64
	switch x := value.(type) {
	case float64:
		v = x
	case float32:
		v = float64(x)
	case int:
		v = float64(x)
	case int64:
		v = float64(x)
	case int32:
		v = float64(x)
	default:
		return fail("a number " + r.doc)
	}
	if slices.Contains(r.special, v) {
		return nil
	}
	switch {
	case math.IsNaN(v), v < r.min, r.minOpen && v == r.min, v > r.max, r.integer && v != math.Trunc(v):
		return fail(r.doc)
	}
	return nil
}

func contains(list []string, s string) bool { return slices.Contains(list, s) }

// settingByName finds a declared setting ([AllSettings]) by its parameter name.
func settingByName(name string) (Setting, bool) {
	for _, s := range AllSettings() {
		if s.Name == name {
			return s, true
		}
	}
	return Setting{}, false
}
