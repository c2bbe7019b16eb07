//go:build linux && amd64 && cgo && !noxla

package xla

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPluginKindByFileName: the CPU plugin is recognised under every name it is installed as (go-xla's link, its
// versioned file, a wheel's own name), so that XNNPACK is switched off whichever one a run loads.
func TestPluginKindByFileName(t *testing.T) {
	for _, tc := range []struct {
		path      string
		cpu, cuda bool
	}{
		{"/lib/go-xla/pjrt_c_api_cpu_plugin.so", true, false},
		{"/lib/go-xla/pjrt_c_api_cpu_v0.83.3_plugin.so", true, false},
		{"/tmp/wheel/xla_cpu_pjrt.so", true, false},
		{"/lib/go-xla/nvidia/pjrt_c_api_cuda_plugin.so", false, true},
		{"/lib/go-xla/pjrt_c_api_tpu_plugin.so", false, false},
		{"/cpu/pjrt_c_api_tpu_plugin.so", false, false}, // only the file name counts
	} {
		assert.Equal(t, tc.cpu, isCPUPlugin(tc.path), "isCPUPlugin(%s)", tc.path)
		assert.Equal(t, tc.cuda, isCUDAPlugin(tc.path), "isCUDAPlugin(%s)", tc.path)
	}
}

// TestWarnIfNotSearched: `nowt setup` says when $PJRT_PLUGIN_LIBRARY_PATH hides the folder it installs into
// (otherwise setup succeeds and the next run reports the plugin missing, and to run setup).
func TestWarnIfNotSearched(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "go-xla")
	for _, tc := range []struct {
		name     string
		env      *string
		wantWarn bool
	}{
		{"unset", nil, false},
		{"elsewhere", ptr("/opt/plugins"), true},
		{"empty", ptr(""), true},
		{"includes it", ptr("/opt/plugins:" + dir), false},
		{"includes its nvidia folder", ptr(filepath.Join(dir, "nvidia")), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env == nil {
				t.Setenv(PluginPathsEnv, "")
				require.NoError(t, os.Unsetenv(PluginPathsEnv))
			} else {
				t.Setenv(PluginPathsEnv, *tc.env)
			}
			var out bytes.Buffer
			warnIfNotSearched(dir, &out)
			if !tc.wantWarn {
				assert.Empty(t, out.String())
				return
			}
			assert.Contains(t, out.String(), "$"+PluginPathsEnv+" is set")
			assert.Contains(t, out.String(), "add "+dir)
		})
	}
}

func ptr(s string) *string { return &s }

// TestInstallKeepsLoadingPlugin: a CPU plugin already installed that loads is kept, without a download (this
// machine has none but the package registries), and the output names it. Needs an installed CPU plugin.
func TestInstallKeepsLoadingPlugin(t *testing.T) {
	var installed string
	for _, p := range Plugins() {
		if p.Name == "cpu" {
			installed = p.Path
			break
		}
	}
	if installed == "" {
		t.Skip("no CPU PJRT plugin installed (nowt setup -plugin cpu)")
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	dir, err := InstallDir()
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.Symlink(installed, filepath.Join(dir, PluginFileName("cpu"))))
	t.Setenv(PluginPathsEnv, "/nowhere")
	var out bytes.Buffer
	require.NoError(t, Install(context.Background(), "cpu", InstallOptions{Source: SourcePyPI}, &out))
	assert.Contains(t, out.String(), "the CPU plugin is already installed at "+filepath.Join(dir, PluginFileName("cpu"))+" and loads")
	assert.Contains(t, out.String(), "will not be found", "the warning about $"+PluginPathsEnv)
}
