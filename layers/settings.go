package layers

import (
	"slices"
	"strings"
)

// Setting describes one hyperparameter of the layers or the models (a context parameter), for listings such as
// `nowt models -v` and for the flags that set it.
type Setting struct {
	// Name is the context parameter, e.g. "bn_momentum".
	Name string
	// Flag is the command-line flag that sets it, without "-" ("" for none: set it with -set name=value).
	Flag string
	// Default is its value when the context does not set it (a string, bool, int or float64: its type is the
	// setting's).
	Default any
	// Valid says which values it takes; Doc is a one-line description.
	Valid, Doc string
	// ModelWide marks a setting that nowt's models read once, at the model's top scope: set at a layer's scope it
	// would be ignored.
	ModelWide bool
}

// The batch-norm defaults: PyTorch's.
const (
	defaultBNMomentum = 0.9
	defaultBNEpsilon  = 1e-5
)

// Settings lists the layers' hyperparameters, by name.
func Settings() []Setting {
	settings := []Setting{
		{Name: ParamBNMomentum, Default: defaultBNMomentum, Valid: "[0, 1]",
			Doc: "batch norm: the old running average's weight, running ← m·running + (1−m)·batch (PyTorch's momentum is 1−m)"},
		{Name: ParamBNEpsilon, Default: defaultBNEpsilon, Valid: "(0, ∞)", Doc: "batch norm: added to the variance"},
		{Name: ParamBNSums, Default: "auto", Valid: "auto|dot|reduce",
			Doc: "batch norm: per-channel sums as products with ones or as reductions (auto: products on XLA's CPU backend for large channels)"},
		{Name: ParamPoolImpl, Default: "auto", Valid: "auto|native|gather|taps", ModelWide: true,
			Doc: "max-pooling: the backend's MaxPool, a gather over a constant index table, or the window's taps as strided slices (auto: taps on XLA's CPU plugin, else native where it can be differentiated)"},
	}
	slices.SortFunc(settings, func(a, b Setting) int { return strings.Compare(a.Name, b.Name) })
	return settings
}

// DefaultParams returns every hyperparameter of the package's layers with its default ([Settings]), so a program
// can pre-set them in a context (GoMLX's -set flag only accepts known parameters) and list them.
func DefaultParams() map[string]any {
	params := map[string]any{}
	for _, s := range Settings() {
		params[s.Name] = s.Default
	}
	return params
}
