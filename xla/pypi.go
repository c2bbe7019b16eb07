package xla

import (
	"archive/zip"
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pkg/errors"
)

// CPUPluginPyPIPackage is the Python package index requirement that carries the OpenXLA CPU PJRT plugin used
// when go-xla's own download (GitHub) is not reachable: the wheel holds xla_plugins/xla_cpu_pjrt/xla_cpu_pjrt.so,
// which exports GetPjrtApi (PJRT C API 0.81). Only the wheel is downloaded (`pip download --no-deps`) and the
// shared object copied out of it: nothing is installed into Python and nothing imports Python at run time.
const CPUPluginPyPIPackage = "xla-cpu-pjrt==0.0.1"

// pjrtEntryPoint is the symbol every PJRT plugin exports.
const pjrtEntryPoint = "GetPjrtApi"

// pipCommand returns the command line that runs pip: pip3, pip, or python3 -m pip, whichever is found first.
func pipCommand() ([]string, error) {
	for _, name := range []string{"pip3", "pip"} {
		if p, err := exec.LookPath(name); err == nil {
			return []string{p}, nil
		}
	}
	for _, name := range []string{"python3", "python"} {
		if p, err := exec.LookPath(name); err == nil {
			if exec.Command(p, "-m", "pip", "--version").Run() == nil {
				return []string{p, "-m", "pip"}, nil
			}
		}
	}
	return nil, errors.New("no pip found (looked for pip3, pip and python3 -m pip on $PATH): install pip " +
		"(Debian: apt-get install python3-pip), or put a PJRT plugin file in one of the folders `nowt devices` searches")
}

// installFromPyPI downloads the wheel of requirement (e.g. CPUPluginPyPIPackage) with `pip download --no-deps`,
// finds the shared object in it that exports GetPjrtApi, and installs it atomically as dir/fileName.
// It returns the installed path and the wheel's file name.
func installFromPyPI(ctx context.Context, requirement, dir, fileName string, w io.Writer) (installed, wheel string, err error) {
	pip, err := pipCommand()
	if err != nil {
		return "", "", err
	}
	tmp, err := os.MkdirTemp("", "nowt-pjrt-wheel-")
	if err != nil {
		return "", "", errors.Wrap(err, "creating a temporary folder for the wheel")
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	args := append(slices.Clone(pip[1:]), "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
		"--quiet", "--dest", tmp, requirement)
	_, _ = fmt.Fprintf(w, "nowt: %s %s\n", filepath.Base(pip[0]), strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, pip[0], args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", "", errors.Errorf("pip could not download %s (%v): %s", requirement, err, lastLines(out.String(), 5))
	}
	wheels, _ := filepath.Glob(filepath.Join(tmp, "*.whl"))
	if len(wheels) != 1 {
		return "", "", errors.Errorf("pip download of %s left %d wheels in %s, want 1", requirement, len(wheels), tmp)
	}
	installed, err = installPluginFromWheel(wheels[0], dir, fileName)
	if err != nil {
		return "", "", err
	}
	return installed, filepath.Base(wheels[0]), nil
}

// installPluginFromWheel copies the PJRT plugin (a .so exporting GetPjrtApi) out of a wheel into dir/fileName:
// written to a temporary file in dir first and renamed, so a reader never sees a partial plugin.
func installPluginFromWheel(wheelPath, dir, fileName string) (string, error) {
	zr, err := zip.OpenReader(wheelPath)
	if err != nil {
		return "", errors.Wrapf(err, "opening wheel %s", wheelPath)
	}
	defer func() { _ = zr.Close() }()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", errors.Wrapf(err, "creating the plugin folder %s", dir)
	}
	var tried []string
	for _, f := range zr.File {
		if !strings.HasSuffix(f.Name, ".so") || f.FileInfo().IsDir() {
			continue
		}
		tried = append(tried, f.Name)
		tmpPath, err := extractTemp(f, dir)
		if err != nil {
			return "", errors.WithMessagef(err, "extracting %s from wheel %s", f.Name, filepath.Base(wheelPath))
		}
		if !exportsSymbol(tmpPath, pjrtEntryPoint) {
			_ = os.Remove(tmpPath)
			continue
		}
		target := filepath.Join(dir, fileName)
		if err := os.Rename(tmpPath, target); err != nil {
			_ = os.Remove(tmpPath)
			return "", errors.Wrapf(err, "installing %s as %s", f.Name, target)
		}
		return target, nil
	}
	if len(tried) == 0 {
		return "", errors.Errorf("wheel %s holds no shared object (.so): it carries no PJRT plugin", filepath.Base(wheelPath))
	}
	return "", errors.Errorf("wheel %s: none of its shared objects (%s) exports %s, so none is a PJRT plugin",
		filepath.Base(wheelPath), strings.Join(tried, ", "), pjrtEntryPoint)
}

// extractTemp writes one zip entry to a new temporary file in dir (mode 0755) and returns its path.
func extractTemp(f *zip.File, dir string) (string, error) {
	rc, err := f.Open()
	if err != nil {
		return "", err
	}
	defer func() { _ = rc.Close() }()
	tmp, err := os.CreateTemp(dir, ".installing-"+path.Base(f.Name)+"-*")
	if err != nil {
		return "", err
	}
	_, err = io.Copy(tmp, rc)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o755)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return "", err
	}
	return tmp.Name(), nil
}

// exportsSymbol reports whether the ELF shared object at p defines the dynamic symbol name.
func exportsSymbol(p, name string) bool {
	f, err := elf.Open(p)
	if err != nil {
		return false
	}
	defer func() { _ = f.Close() }()
	syms, err := f.DynamicSymbols()
	if err != nil {
		return false
	}
	for _, s := range syms {
		if s.Name == name && s.Section != elf.SHN_UNDEF {
			return true
		}
	}
	return false
}

// lastLines returns the last n non-empty lines of s, joined by " | ".
func lastLines(s string, n int) string {
	lines := slices.DeleteFunc(strings.Split(strings.TrimSpace(s), "\n"), func(l string) bool { return strings.TrimSpace(l) == "" })
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if len(lines) == 0 {
		return "(no output)"
	}
	return strings.Join(lines, " | ")
}
