package trainer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"time"
)

// provenanceFileName holds, in a run folder, one JSON line per [Train] invocation that trained into it: which
// build of nowt ran it, on which engine, from which step. A run resumed by another build (or on another engine)
// shows it there; a results page can name the commit each of its runs was made from.
const provenanceFileName = "provenance.jsonl"

// Provenance is one [Train] invocation's line in a run's provenance.jsonl.
type Provenance struct {
	// Started is when the invocation started (UTC); FromStep the step it started from (0 for a fresh run).
	Started  time.Time `json:"started"`
	FromStep int       `json:"from_step"`
	// Commit is the VCS revision the nowt binary was built from, and Modified whether its checkout had
	// uncommitted changes. Both are empty when the build carries no VCS information (go test, go run, or a
	// build outside a checkout).
	Commit   string `json:"commit,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	// GoVersion is the Go toolchain of the build; Engine the backend as the run's first line names it
	// (plugin, version, devices); CPUs the host's logical CPUs and CPUModel their model as the operating system
	// names it (Linux's /proc/cpuinfo; empty elsewhere). XLA's CPU kernels depend on the processor (AVX-512 or
	// not, for one), so the same run on another CPU model agrees only to rounding.
	GoVersion string `json:"go"`
	Engine    string `json:"engine"`
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model,omitempty"`
	// JPEGDecoder is the JPEG decoder of a dataset that decodes image files ([input.JPEGDecoder]): libjpeg-turbo
	// and Go's decoder give slightly different pixels, so a run resumed on another one is not bit-exact.
	JPEGDecoder string `json:"jpeg_decoder,omitempty"`
}

// Build is what the running nowt binary knows about its own build.
type Build struct {
	// Module and Version are the main module's path and version ("" and "(devel)" as the toolchain records them
	// for a local build).
	Module, Version string
	// Commit is the VCS revision built from, CommitTime its time, and Modified whether the checkout had
	// uncommitted changes; all empty without VCS information (go test, go run, or -buildvcs=false).
	Commit, CommitTime string
	Modified           bool
	// GoVersion is the Go toolchain that built the binary.
	GoVersion string
}

// ReadBuild reads the running binary's build information; fields it does not carry are left empty.
func ReadBuild() Build {
	b := Build{GoVersion: runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	b.Module, b.Version = info.Main.Path, info.Main.Version
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Commit = s.Value
		case "vcs.time":
			b.CommitTime = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// newProvenance describes an invocation starting now from fromStep on engine.
func newProvenance(fromStep int, engine, jpegDecoder string, started time.Time) Provenance {
	b := ReadBuild()
	return Provenance{Started: started.UTC().Truncate(time.Second), FromStep: fromStep, Commit: b.Commit,
		Modified: b.Modified, GoVersion: b.GoVersion, Engine: engine, CPUs: runtime.NumCPU(), CPUModel: hostCPUModel(),
		JPEGDecoder: jpegDecoder}
}

// hostCPUModel is the host's CPU model from /proc/cpuinfo, or "" where there is none (not Linux) or it names none.
func hostCPUModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	return cpuModelName(data)
}

// cpuModelName reads the CPU model from the text of /proc/cpuinfo: the first "model name" (x86, and arm64 kernels
// that know the part), else the first "Hardware", "cpu" (ppc64) or "uarch" (riscv) line; "" if none.
func cpuModelName(cpuinfo []byte) string {
	found := map[string]string{}
	for line := range strings.Lines(string(cpuinfo)) {
		key, value, ok := strings.Cut(line, ":")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if !ok || value == "" {
			continue
		}
		if _, seen := found[key]; !seen {
			found[key] = value
		}
	}
	for _, key := range []string{"model name", "Hardware", "cpu", "uarch"} {
		if v := found[key]; v != "" {
			return v
		}
	}
	return ""
}

// recordProvenance writes p into dir's provenance.jsonl atomically: after the lines already there when resumed,
// alone otherwise (a fresh run replaces what an earlier run in the folder left).
func recordProvenance(dir string, p Provenance, resumed bool) error {
	var data []byte
	if resumed {
		old, err := os.ReadFile(filepath.Join(dir, provenanceFileName))
		if err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("reading the run's provenance: %w", err)
		}
		data = old
		if len(data) > 0 && data[len(data)-1] != '\n' {
			data = append(data, '\n')
		}
	}
	line, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encoding the run's provenance: %w", err)
	}
	return writeFileAtomic(filepath.Join(dir, provenanceFileName), append(append(data, line...), '\n'))
}

// ReadProvenance reads dir/provenance.jsonl: one entry per invocation that trained the run, oldest first. A run
// made before nowt recorded provenance has none: the error then wraps [os.ErrNotExist].
func ReadProvenance(dir string) ([]Provenance, error) {
	entries, err := readJSONLines[Provenance](filepath.Join(dir, provenanceFileName))
	if err != nil {
		return entries, fmt.Errorf("reading the run's provenance: %w", err)
	}
	return entries, nil
}
