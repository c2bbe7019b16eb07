package xla

import (
	"archive/zip"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// buildSharedObject compiles a tiny shared object from C source with cc, or skips the test without a C compiler.
func buildSharedObject(t *testing.T, source string) string {
	t.Helper()
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("no C compiler (cc) to build a fake plugin")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "plugin.c")
	require.NoError(t, os.WriteFile(src, []byte(source), 0o644))
	so := filepath.Join(dir, "plugin.so")
	out, err := exec.Command(cc, "-shared", "-fPIC", "-o", so, src).CombinedOutput()
	require.NoError(t, err, "cc: %s", out)
	return so
}

// writeWheel writes a zip file with the given entries (name → file to copy, or "" for a small text file).
func writeWheel(t *testing.T, path string, entries map[string]string) {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	zw := zip.NewWriter(f)
	for name, from := range entries {
		w, err := zw.Create(name)
		require.NoError(t, err)
		if from == "" {
			_, err = io.WriteString(w, "# "+name+"\n")
		} else {
			var data []byte
			data, err = os.ReadFile(from)
			require.NoError(t, err)
			_, err = w.Write(data)
		}
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	require.NoError(t, f.Close())
}

// TestInstallPluginFromWheel: the .so that exports GetPjrtApi is installed under go-xla's name, atomically (no
// temporary file left behind); wheels without one are refused with an error that says why.
func TestInstallPluginFromWheel(t *testing.T) {
	plugin := buildSharedObject(t, "void* GetPjrtApi(void) { return 0; }\n")
	other := buildSharedObject(t, "int helper(void) { return 1; }\n")
	for _, tc := range []struct {
		name    string
		entries map[string]string
		errHas  []string
	}{
		{name: "plugin", entries: map[string]string{
			"xla_plugins/xla_cpu_pjrt/__init__.py":     "",
			"xla_plugins/xla_cpu_pjrt/libhelper.so":    other,
			"xla_plugins/xla_cpu_pjrt/xla_cpu_pjrt.so": plugin,
		}},
		{name: "no-entry-point", entries: map[string]string{"pkg/libhelper.so": other},
			errHas: []string{"pkg/libhelper.so", "exports GetPjrtApi", "no-entry-point.whl"}},
		{name: "no-shared-object", entries: map[string]string{"pkg/__init__.py": ""},
			errHas: []string{"holds no shared object", "no-shared-object.whl"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wheel := filepath.Join(t.TempDir(), tc.name+".whl")
			writeWheel(t, wheel, tc.entries)
			dir := filepath.Join(t.TempDir(), "go-xla")
			got, err := installPluginFromWheel(wheel, dir, PluginFileName("cpu"))
			left, _ := filepath.Glob(filepath.Join(dir, ".installing-*"))
			require.Empty(t, left, "temporary files left in the plugin folder")
			if tc.errHas != nil {
				for _, s := range tc.errHas {
					require.ErrorContains(t, err, s)
				}
				require.NoFileExists(t, filepath.Join(dir, PluginFileName("cpu")))
				return
			}
			require.NoError(t, err)
			require.Equal(t, filepath.Join(dir, "pjrt_c_api_cpu_plugin.so"), got)
			want, err := os.ReadFile(plugin)
			require.NoError(t, err)
			data, err := os.ReadFile(got)
			require.NoError(t, err)
			require.Equal(t, want, data)
			info, err := os.Stat(got)
			require.NoError(t, err)
			require.NotZero(t, info.Mode()&0o100, "installed plugin must be executable")
			require.Equal(t, []Plugin{{Name: "cpu", Path: got}}, findPlugins([]string{dir}))
		})
	}
}

// TestInstallFromPyPIWithFakePip: installFromPyPI calls `pip download --no-deps ... <requirement>` and installs
// the plugin of the wheel pip leaves; pip's failure is reported with its own words; no pip at all says how to
// get one.
func TestInstallFromPyPIWithFakePip(t *testing.T) {
	plugin := buildSharedObject(t, "void* GetPjrtApi(void) { return 0; }\n")
	wheel := filepath.Join(t.TempDir(), "xla_cpu_pjrt-0.0.1-py3-none-manylinux_2_27_x86_64.whl")
	writeWheel(t, wheel, map[string]string{"xla_plugins/xla_cpu_pjrt/xla_cpu_pjrt.so": plugin})

	bin := t.TempDir()
	argsFile := filepath.Join(t.TempDir(), "args")
	// The fake pip writes its arguments and copies the wheel into the folder after --dest.
	fakePip := `#!/bin/sh
echo "$@" > ` + argsFile + `
if [ -n "$FAKE_PIP_FAIL" ]; then echo "ERROR: No matching distribution found for xla-cpu-pjrt" >&2; exit 1; fi
while [ $# -gt 0 ]; do if [ "$1" = "--dest" ]; then /bin/cp ` + wheel + ` "$2/"; fi; shift; done
`
	require.NoError(t, os.WriteFile(filepath.Join(bin, "pip3"), []byte(fakePip), 0o755))
	t.Setenv("PATH", bin)

	dir := filepath.Join(t.TempDir(), "go-xla")
	var out strings.Builder
	got, wheelName, err := installFromPyPI(context.Background(), CPUPluginPyPIPackage, dir, PluginFileName("cpu"), &out)
	require.NoError(t, err)
	require.Equal(t, filepath.Join(dir, "pjrt_c_api_cpu_plugin.so"), got)
	require.Equal(t, filepath.Base(wheel), wheelName)
	args, err := os.ReadFile(argsFile)
	require.NoError(t, err)
	for _, s := range []string{"download", "--no-deps", "--only-binary=:all:", "--dest", CPUPluginPyPIPackage} {
		require.Contains(t, string(args), s)
	}
	require.Contains(t, out.String(), CPUPluginPyPIPackage)

	t.Setenv("FAKE_PIP_FAIL", "1")
	_, _, err = installFromPyPI(context.Background(), CPUPluginPyPIPackage, t.TempDir(), PluginFileName("cpu"), io.Discard)
	require.ErrorContains(t, err, "pip could not download "+CPUPluginPyPIPackage)
	require.ErrorContains(t, err, "No matching distribution")

	t.Setenv("PATH", t.TempDir())
	_, _, err = installFromPyPI(context.Background(), CPUPluginPyPIPackage, t.TempDir(), PluginFileName("cpu"), io.Discard)
	require.ErrorContains(t, err, "no pip found")
	require.ErrorContains(t, err, "python3-pip")
}
