package xla

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gomlx/gomlx/backends"
	"github.com/pkg/errors"
)

// InstallCommand is the nowt command that installs PJRT plugins; it is named in notices and errors.
const InstallCommand = "nowt setup"

// BackendEnv is GoMLX's environment variable with the backend configuration (backends.ConfigEnvVar),
// used by Select when the spec is empty.
const BackendEnv = backends.ConfigEnvVar

// Spec values accepted by Select (besides the "go:<options>" and "xla:<plugin>[,<options>]" forms).
const (
	SpecAuto    = "auto"
	SpecGo      = "go"
	SpecXLACPU  = "xla:cpu"
	SpecXLACUDA = "xla:cuda"
	SpecXLATPU  = "xla:tpu"
)

// ValidSpecs lists the valid spec strings, for flag help.
// Select also accepts "go:<options>" (GoMLX's SimpleGo options, e.g. "go:ops_sequential" or "go:parallelism=4"),
// "xla" (the best plugin found), "xla:<plugin name or absolute path>" and PJRT options after a comma
// (e.g. "xla:cuda,tf32"; "xla:cpu,devices=<n>" exposes n host devices, whatever -devices asks for).
func ValidSpecs() []string {
	return []string{SpecAuto, SpecGo, SpecXLACPU, SpecXLACUDA, SpecXLATPU}
}

// SpecHelp is a one-line description of the spec syntax, for flag help.
const SpecHelp = `backend: "auto" (XLA if a PJRT plugin is installed, else pure Go), "go" (or "go:<options>"), ` +
	`"xla:cpu", "xla:cuda" or "xla:tpu" (xla:cpu has as many host devices as -devices uses; "xla:cpu,devices=<n>": n); ` +
	`empty means $GOMLX_BACKEND, then "auto"`

// autoPreference is the order in which "auto" (and a bare "xla") picks a plugin; a plugin is only picked
// if its hardware is present (see hasHardware).
var autoPreference = []string{"tpu", "cuda", "cpu"}

// goOptions are the options GoMLX v0.26's SimpleGo backend accepts (backends/simplego/simplego.go);
// "parallelism" takes "=<int>".
var goOptions = []string{"parallelism", "dotgeneral_small", "dotgeneral_large", "dotgeneral_check",
	"ops_sequential", "ops_parallel"}

// hasHardware reports whether the hardware a plugin drives seems present. A variable so tests can fake it.
var hasHardware = defaultHasHardware

// defaultHasHardware checks device files: /dev/nvidia* for CUDA (as go-xla does), /dev/accel* or /dev/vfio/<n>
// for TPU (Cloud TPU VMs). Other plugins (cpu, ...) are assumed usable.
func defaultHasHardware(plugin string) bool {
	globs := map[string][]string{
		"cuda": {"/dev/nvidia[0-9]*", "/dev/nvidiactl"},
		"tpu":  {"/dev/accel[0-9]*", "/dev/vfio/[0-9]*"},
	}[plugin]
	if globs == nil {
		return true
	}
	for _, g := range globs {
		if m, _ := filepath.Glob(g); len(m) > 0 {
			return true
		}
	}
	return false
}

// Select resolves spec ("" means $GOMLX_BACKEND, then "auto") to a concrete backend config string
// (e.g. "go", "go:ops_sequential", "xla:cuda"), without creating the backend or loading any plugin.
//
// notice is a one-line message for when "auto" falls back to the pure-Go backend because no PJRT plugin was
// found ("" otherwise); it says how to install one.
//
// Errors: an unknown spec (the error lists the valid ones), or an "xla:<plugin>" whose plugin file is not found
// (the error names the folders searched and the install command).
func Select(spec string) (config string, notice string, err error) {
	s := strings.TrimSpace(spec)
	from := ""
	if s == "" {
		s = strings.TrimSpace(os.Getenv(BackendEnv))
		from = " (from $" + BackendEnv + ")"
		if s == "" {
			s, from = SpecAuto, ""
		}
	}
	kind, opts, hasOpts := strings.Cut(s, ":")
	kind = strings.ToLower(strings.TrimSpace(kind))
	switch {
	case kind == SpecAuto && !hasOpts:
		return selectAuto()
	case kind == "go":
		if !hasOpts || opts == "" {
			return SpecGo, "", nil
		}
		if err := checkGoOptions(opts); err != nil {
			return "", "", &InvalidSpecError{errors.WithMessagef(err, "backend spec %q%s", s, from)}
		}
		return "go:" + opts, "", nil
	case kind == "xla":
		config, err := selectXLA(opts)
		if specErr := (*InvalidSpecError)(nil); errors.As(err, &specErr) {
			return "", "", &InvalidSpecError{errors.WithMessagef(specErr.Err, "backend spec %q%s", s, from)}
		}
		if err != nil {
			return "", "", errors.WithMessagef(err, "backend spec %q%s", s, from)
		}
		return config, "", nil
	}
	return "", "", &InvalidSpecError{errors.Errorf("unknown backend spec %q%s: valid specs are %s (also \"go:<options>\", "+
		"\"xla:<plugin>[,<options>]\")", s, from, quoteList(ValidSpecs()))}
}

// selectAuto picks the XLA backend with the best plugin found, or "go" with a notice.
func selectAuto() (config, notice string, err error) {
	if !xlaCompiledIn {
		return SpecGo, NoXLANotice, nil
	}
	if name, ok := bestPlugin(Plugins()); ok {
		return "xla:" + name, "", nil
	}
	return SpecGo, NoPluginNotice, nil
}

// NoPluginNotice is the notice Select returns when "auto" falls back to the pure-Go backend.
const NoPluginNotice = "nowt: no XLA PJRT plugin found, using the pure-Go backend \"go\" (much slower); " +
	"run `" + InstallCommand + "` to install the XLA CPU plugin, or set " + PluginPathsEnv +
	" to a folder holding pjrt_c_api_<name>_plugin.so"

// NoXLANotice is the notice Select returns for "auto" in a binary built without the XLA backend.
const NoXLANotice = "nowt: the XLA backend is not compiled into this binary (it needs cgo on linux/amd64); " +
	"using the pure-Go backend \"go\" (much slower)"

// bestPlugin returns the first plugin of autoPreference that is found and whose hardware is present.
func bestPlugin(plugins []Plugin) (string, bool) {
	for _, name := range autoPreference {
		if _, ok := findPlugin(plugins, name); ok && hasHardware(name) {
			return name, true
		}
	}
	return "", false
}

// selectXLA resolves the part after "xla:" (may be empty: the best plugin found).
func selectXLA(opts string) (string, error) {
	if !xlaCompiledIn {
		return "", errors.New("the XLA backend is not compiled into this binary (it needs cgo on linux/amd64); " +
			"use \"go\" or rebuild with CGO_ENABLED=1")
	}
	name, pjrtOpts, _ := strings.Cut(opts, ",")
	name = strings.TrimSpace(name)
	for _, o := range strings.Split(pjrtOpts, ",") {
		if key, value, _ := strings.Cut(strings.TrimSpace(o), "="); key == DevicesOption {
			if _, err := parseDeviceCount(value); err != nil {
				return "", &InvalidSpecError{err}
			}
		}
	}
	suffix := ""
	if pjrtOpts != "" {
		suffix = "," + pjrtOpts
	}
	if name == "" {
		best, ok := bestPlugin(Plugins())
		if !ok {
			return "", notFoundError("", SearchPaths())
		}
		return "xla:" + best + suffix, nil
	}
	if filepath.IsAbs(name) {
		if info, err := os.Stat(name); err != nil || info.IsDir() {
			return "", errors.Errorf("PJRT plugin file %q not found", name)
		}
		return "xla:" + name + suffix, nil
	}
	name = strings.ToLower(name)
	paths := SearchPaths()
	if _, ok := findPlugin(findPlugins(paths), name); !ok {
		return "", notFoundError(name, paths)
	}
	return "xla:" + name + suffix, nil
}

// notFoundError is the error for a missing plugin ("" for any plugin): it names the searched folders and the
// install command.
func notFoundError(name string, searched []string) error {
	what := "no PJRT plugin found"
	if name != "" {
		what = fmt.Sprintf("PJRT plugin %q (file %s) not found", name, PluginFileName(name))
	}
	var how string
	switch name {
	case "": // no plugin at all: the CPU plugin is the one that works everywhere
		how = "run `" + InstallCommand + "` to install the CPU plugin"
	case "cpu":
		how = "run `" + InstallCommand + "` to install it"
	case "cuda":
		how = "run `" + InstallCommand + " -plugin cuda` on a machine with an NVIDIA GPU to install it (into ~/.local/lib/go-xla/nvidia)"
	case "tpu":
		how = "run `" + InstallCommand + " -plugin tpu` on a Cloud TPU VM to install it"
	case "gpu", "nvidia":
		how = "for an NVIDIA GPU the plugin is \"cuda\": use -backend xla:cuda (installed by `" + InstallCommand +
			" -plugin cuda` on a machine with an NVIDIA GPU)"
	default: // a plugin nowt cannot install
		how = "`" + InstallCommand + "` installs only the cpu, cuda and tpu plugins (-backend xla:cpu, xla:cuda or " +
			"xla:tpu); for another, put its file in one of those folders"
	}
	searchedText := "(none)"
	if len(searched) > 0 {
		searchedText = strings.Join(searched, ", ")
	}
	return errors.Errorf("%s; searched: %s; %s, or set %s to the folder holding it",
		what, searchedText, how, PluginPathsEnv)
}

// checkGoOptions validates SimpleGo options ("a,b,parallelism=4").
func checkGoOptions(opts string) error {
	for _, part := range strings.Split(opts, ",") {
		if part == "" {
			continue
		}
		key, value, hasValue := strings.Cut(part, "=")
		known := false
		for _, o := range goOptions {
			known = known || key == o
		}
		if !known {
			return errors.Errorf("unknown option %q for the pure-Go backend: valid options are %s",
				key, quoteList(goOptions))
		}
		if key == "parallelism" {
			if _, err := strconv.Atoi(value); !hasValue || err != nil {
				return errors.Errorf("option parallelism needs an integer, as in \"go:parallelism=4\", got %q", part)
			}
		} else if hasValue {
			return errors.Errorf("option %q of the pure-Go backend takes no value", key)
		}
	}
	return nil
}

func quoteList(items []string) string {
	q := make([]string, len(items))
	for i, it := range items {
		q[i] = strconv.Quote(it)
	}
	return strings.Join(q, ", ")
}

// DevicesOption is the XLA spec option that sets how many host devices the CPU plugin exposes:
// "xla:cpu,devices=4" (PJRT create option cpu_device_count). Other plugins ignore it.
const DevicesOption = "devices"

// InvalidSpecError is Select's error for a backend spec that is malformed (an unknown kind, an unknown or
// malformed option), as opposed to one that is well formed but cannot be met here (a plugin not installed): the
// caller's setting is wrong, not the machine.
type InvalidSpecError struct{ Err error }

// Error implements error.
func (e *InvalidSpecError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *InvalidSpecError) Unwrap() error { return e.Err }

// InstallArgError is Install's error for a plugin or source it does not know, or a source that does not carry the
// plugin: the caller's setting is wrong, and nothing was downloaded. Flag names the setting as nowt setup's flag
// ("-plugin" or "-source").
type InstallArgError struct {
	Flag string
	Err  error
}

// Error implements error.
func (e *InstallArgError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *InstallArgError) Unwrap() error { return e.Err }

// parseDeviceCount parses the n of "devices=<n>".
func parseDeviceCount(value string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(value))
	if err != nil || n < 1 || n > maxDevices {
		return 0, errors.Errorf("want option \"%s=<n>\" with 1 ≤ n ≤ %d, got %q", DevicesOption, maxDevices, value)
	}
	return n, nil
}

// maxDevices bounds "devices=<n>": more than a TPU pod's chips is a typo.
const maxDevices = 4096
