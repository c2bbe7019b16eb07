package xla

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cpuPluginOrSkip skips a test where no XLA CPU plugin is installed.
func cpuPluginOrSkip(t *testing.T) {
	t.Helper()
	if _, ok := findPlugin(Plugins(), "cpu"); !ok {
		t.Skip("no XLA CPU plugin installed")
	}
}

// hermetic makes plugin discovery look only in a fresh empty folder, which it returns, with $GOMLX_BACKEND
// empty and no hardware.
func hermetic(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv(PluginPathsEnv, dir)
	t.Setenv(BackendEnv, "")
	fakeHardware(t, nil)
	return dir
}

// fakeHardware makes hasHardware report true for the given plugins and "cpu" only.
func fakeHardware(t *testing.T, present []string) {
	t.Helper()
	old := hasHardware
	t.Cleanup(func() { hasHardware = old })
	hasHardware = func(name string) bool {
		if name == "cpu" {
			return true
		}
		for _, p := range present {
			if p == name {
				return true
			}
		}
		return false
	}
}

// autoNotice is the notice "auto" gives without plugins, in this build.
func autoNotice() string {
	if xlaCompiledIn {
		return NoPluginNotice
	}
	return NoXLANotice
}

// requireXLA skips tests of the XLA path in builds without it (CGO_ENABLED=0).
func requireXLA(t *testing.T) {
	t.Helper()
	if !xlaCompiledIn {
		t.Skip("XLA backend not compiled in (cgo off)")
	}
}

// touch creates empty (fake) files in dir.
func touch(t *testing.T, dir string, names ...string) {
	t.Helper()
	for _, n := range names {
		require.NoError(t, os.WriteFile(filepath.Join(dir, n), nil, 0o644))
	}
}

func TestSelectWithoutPlugins(t *testing.T) {
	tests := []struct {
		spec       string
		want       string
		wantNotice bool
		errHas     []string
		errNot     []string
	}{
		{spec: "", want: "go", wantNotice: true},
		{spec: "auto", want: "go", wantNotice: true},
		{spec: " AUTO ", want: "go", wantNotice: true},
		{spec: "go", want: "go"},
		{spec: "Go", want: "go"},
		{spec: "go:", want: "go"},
		{spec: "go:ops_sequential", want: "go:ops_sequential"},
		{spec: "go:parallelism=4,ops_parallel", want: "go:parallelism=4,ops_parallel"},
		{spec: "go:bogus", errHas: []string{`"bogus"`, `"ops_sequential"`, `"parallelism"`}},
		{spec: "go:parallelism=x", errHas: []string{"integer"}},
		{spec: "go:ops_sequential=1", errHas: []string{"takes no value"}},
		{spec: "xla:cuda", errHas: []string{`PJRT plugin "cuda" (file pjrt_c_api_cuda_plugin.so) not found`, "pjrt_c_api_cuda_plugin.so", "searched: ", "`nowt setup -plugin cuda`",
			"NVIDIA GPU", "PJRT_PLUGIN_LIBRARY_PATH"}},
		{spec: "xla:cpu", errHas: []string{`"cpu"`, "pjrt_c_api_cpu_plugin.so", "`nowt setup`"}},
		{spec: "xla:tpu", errHas: []string{`"tpu"`, "Cloud TPU VM", "`nowt setup -plugin tpu`"}},
		{spec: "xla", errHas: []string{"no PJRT plugin found", "`nowt setup`"}},
		{spec: "xla:gpu", errHas: []string{`PJRT plugin "gpu" (file pjrt_c_api_gpu_plugin.so) not found`, "NVIDIA GPU",
			`"cuda"`, "-backend xla:cuda", "PJRT_PLUGIN_LIBRARY_PATH"}, errNot: []string{"install the CPU plugin"}},
		{spec: "xla:rocm", errHas: []string{`PJRT plugin "rocm"`, "installs only the cpu, cuda and tpu plugins",
			"PJRT_PLUGIN_LIBRARY_PATH"}, errNot: []string{"install the CPU plugin"}},
		{spec: "xla:/no/such/pjrt_c_api_cpu_plugin.so", errHas: []string{"/no/such/pjrt_c_api_cpu_plugin.so", "not found"}},
		{spec: "cuda", errHas: []string{`unknown backend spec "cuda"`, `"auto", "go", "xla:cpu", "xla:cuda", "xla:tpu"`}},
		{spec: "tpu", errHas: []string{`unknown backend spec "tpu"`}},
		{spec: "simplego", errHas: []string{"unknown backend spec"}},
		{spec: "auto:cpu", errHas: []string{"unknown backend spec"}},
		{spec: "virtual:4", errHas: []string{`unknown backend spec "virtual:4"`}},
		{spec: "xla:cpu,devices=0", errHas: []string{`"devices=<n>"`, "1 ≤ n ≤ 4096", `got "0"`}},
		{spec: "xla:cpu,devices=100000", errHas: []string{`got "100000"`}},
		{spec: "xla:cpu,devices=two", errHas: []string{`got "two"`}},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			dir := hermetic(t)
			config, notice, err := Select(tc.spec)
			if tc.errHas != nil && !xlaCompiledIn && strings.HasPrefix(strings.TrimSpace(tc.spec), "xla") {
				require.ErrorContains(t, err, "not compiled into this binary")
				return
			}
			if tc.errHas != nil {
				require.Error(t, err)
				for _, s := range tc.errHas {
					assert.Contains(t, err.Error(), s)
				}
				for _, s := range tc.errNot {
					assert.NotContains(t, err.Error(), s)
				}
				if strings.HasPrefix(strings.TrimSpace(tc.spec), "xla:") && !strings.Contains(tc.spec, "/") &&
					!strings.Contains(tc.spec, DevicesOption+"=") {
					assert.Contains(t, err.Error(), dir, "error must name the searched folder")
				}
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, config)
			if tc.wantNotice {
				assert.Equal(t, autoNotice(), notice)
			} else {
				assert.Empty(t, notice)
			}
		})
	}
}

func TestNoticeText(t *testing.T) {
	assert.NotContains(t, NoPluginNotice, "\n", "notice must be one line")
	assert.NotContains(t, NoXLANotice, "\n", "notice must be one line")
	for _, s := range []string{"no XLA PJRT plugin found", `"go"`, "`nowt setup`", "PJRT_PLUGIN_LIBRARY_PATH"} {
		assert.Contains(t, NoPluginNotice, s)
	}
}

func TestSelectWithFakePlugins(t *testing.T) {
	tests := []struct {
		name     string
		files    []string
		hardware []string
		spec     string
		want     string
		errHas   string
	}{
		{name: "auto picks cpu", files: []string{"pjrt_c_api_cpu_plugin.so"}, spec: "auto", want: "xla:cpu"},
		{name: "empty spec picks cpu", files: []string{"pjrt_c_api_cpu_plugin.so"}, spec: "", want: "xla:cpu"},
		{name: "bare xla", files: []string{"pjrt_c_api_cpu_plugin.so"}, spec: "xla", want: "xla:cpu"},
		{name: "xla:cpu", files: []string{"pjrt_c_api_cpu_plugin.so"}, spec: "xla:cpu", want: "xla:cpu"},
		{name: "options kept", files: []string{"pjrt_c_api_cpu_plugin.so"}, spec: "xla:CPU,noshared_buffers",
			want: "xla:cpu,noshared_buffers"},
		{name: "go still go", files: []string{"pjrt_c_api_cpu_plugin.so"}, spec: "go", want: "go"},
		{name: "cuda missing", files: []string{"pjrt_c_api_cpu_plugin.so"}, spec: "xla:cuda", errHas: "pjrt_c_api_cuda_plugin.so"},
		{name: "auto cuda without GPU picks cpu", files: []string{"pjrt_c_api_cpu_plugin.so", "pjrt_c_api_cuda_plugin.so"},
			spec: "auto", want: "xla:cpu"},
		{name: "auto cuda with GPU", files: []string{"pjrt_c_api_cpu_plugin.so", "pjrt_c_api_cuda_plugin.so"},
			hardware: []string{"cuda"}, spec: "auto", want: "xla:cuda"},
		{name: "explicit cuda without GPU", files: []string{"pjrt_c_api_cuda_plugin.so"}, spec: "xla:cuda", want: "xla:cuda"},
		{name: "auto only cuda no GPU falls back", files: []string{"pjrt_c_api_cuda_plugin.so"}, spec: "auto", want: "go"},
		{name: "auto tpu first", files: []string{"pjrt_c_api_cpu_plugin.so", "pjrt_c_api_cuda_plugin.so", "pjrt_c_api_tpu_plugin.so"},
			hardware: []string{"cuda", "tpu"}, spec: "auto", want: "xla:tpu"},
		{name: "other plugin by name", files: []string{"pjrt-plugin-metal.so"}, spec: "xla:metal", want: "xla:metal"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			requireXLA(t)
			dir := hermetic(t)
			fakeHardware(t, tc.hardware)
			touch(t, dir, tc.files...)
			config, notice, err := Select(tc.spec)
			if tc.errHas != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.errHas)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, config)
			if tc.want == "go" && (tc.spec == "auto" || tc.spec == "") {
				assert.Equal(t, NoPluginNotice, notice)
			} else {
				assert.Empty(t, notice)
			}
		})
	}
}

func TestSelectAbsolutePath(t *testing.T) {
	requireXLA(t)
	dir := hermetic(t)
	p := filepath.Join(dir, "xla_cuda_plugin.so") // Not a go-xla plugin name: only usable by path.
	touch(t, dir, filepath.Base(p))
	config, _, err := Select("xla:" + p + ",tf32")
	require.NoError(t, err)
	assert.Equal(t, "xla:"+p+",tf32", config)
	assert.Empty(t, Plugins())
}

func TestGOMLXBackendEnv(t *testing.T) {
	tests := []struct {
		env, spec, want, errHas string
	}{
		{env: "go:ops_sequential", spec: "", want: "go:ops_sequential"},
		{env: "go", spec: "", want: "go"},
		{env: "  ", spec: "", want: "go"}, // Blank: auto, which finds no plugin.
		{env: "xla:cuda", spec: "", errHas: `backend spec "xla:cuda" (from $GOMLX_BACKEND)`},
		{env: "bogus", spec: "", errHas: `unknown backend spec "bogus" (from $GOMLX_BACKEND)`},
		{env: "xla:cuda", spec: "go", want: "go"}, // An explicit spec wins.
		{env: "bogus", spec: "auto", want: "go"},
	}
	for _, tc := range tests {
		t.Run(tc.env+"|"+tc.spec, func(t *testing.T) {
			hermetic(t)
			t.Setenv(BackendEnv, tc.env)
			config, _, err := Select(tc.spec)
			if tc.errHas != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.errHas)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, config)
		})
	}
}

func TestSearchPaths(t *testing.T) {
	t.Run("env", func(t *testing.T) {
		t.Setenv(PluginPathsEnv, "/a::/b:/a:rel")
		assert.Equal(t, []string{"/a", "/b", "rel"}, SearchPaths())
	})
	t.Run("env set but empty", func(t *testing.T) {
		t.Setenv(PluginPathsEnv, "")
		assert.Empty(t, SearchPaths())
		if xlaCompiledIn {
			_, _, err := Select("xla:cpu")
			require.ErrorContains(t, err, "searched: (none)")
		}
	})
	t.Run("defaults", func(t *testing.T) {
		home := t.TempDir()
		t.Setenv(PluginPathsEnv, "")
		require.NoError(t, os.Unsetenv(PluginPathsEnv)) // t.Setenv restores it afterwards.
		t.Setenv("HOME", home)
		t.Setenv("LD_LIBRARY_PATH", "/ld/one:relative::/ld/two")
		paths := SearchPaths()
		want := []string{
			filepath.Join(home, ".local/lib/go-xla"), filepath.Join(home, ".local/lib/go-xla/nvidia"),
			filepath.Join(home, ".local/lib/gomlx/pjrt"),
			"/usr/local/lib/go-xla", "/usr/local/lib/go-xla/nvidia", "/usr/local/lib/gomlx/pjrt",
			"/ld/one", "/ld/two",
		}
		require.GreaterOrEqual(t, len(paths), len(want))
		assert.Equal(t, want, paths[:len(want)])
		assert.NotContains(t, paths, "relative")
	})
}

func TestLdSoConf(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "conf.d"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ld.so.conf"),
		[]byte("# comment\ninclude conf.d/*.conf\n/opt/lib\n\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "conf.d", "x.conf"), []byte("  /x/lib  \n"), 0o644))
	assert.Equal(t, []string{"/first", "/x/lib", "/opt/lib"}, ldSoConfPaths([]string{"/first"}, filepath.Join(dir, "ld.so.conf"), 0))
}

func TestPlugins(t *testing.T) {
	first, second := t.TempDir(), t.TempDir()
	t.Setenv(PluginPathsEnv, first+":"+second)
	touch(t, first, "pjrt_c_api_cpu_plugin.so", "pjrt-plugin-foo.so", "libunrelated.so", "pjrt_c_api_cpu_v0.83.3_plugin.so")
	touch(t, second, "pjrt_c_api_cpu_plugin.so", "pjrt_c_api_cuda_plugin.so")
	require.NoError(t, os.Symlink(filepath.Join(first, "missing.so"), filepath.Join(second, "pjrt_c_api_tpu_plugin.so")))
	require.NoError(t, os.Mkdir(filepath.Join(second, "pjrt_c_api_dir_plugin.so"), 0o755))
	got := Plugins()
	assert.Equal(t, []Plugin{
		{Name: "foo", Path: filepath.Join(first, "pjrt-plugin-foo.so")},
		{Name: "cpu", Path: filepath.Join(first, "pjrt_c_api_cpu_plugin.so")},
		{Name: "cpu_v0.83.3", Path: filepath.Join(first, "pjrt_c_api_cpu_v0.83.3_plugin.so")},
		{Name: "cuda", Path: filepath.Join(second, "pjrt_c_api_cuda_plugin.so")},
	}, got)
}

func TestNewGoAndDescribe(t *testing.T) {
	hermetic(t)
	for _, spec := range []string{"go", "auto", "go:ops_sequential"} {
		t.Run(spec, func(t *testing.T) {
			var notice bytes.Buffer
			b, err := New(spec, &notice)
			require.NoError(t, err)
			defer b.Finalize()
			assert.Equal(t, "go", b.String())
			if spec == "auto" {
				assert.Equal(t, autoNotice()+"\n", notice.String())
			} else {
				assert.Empty(t, notice.String())
			}
			assert.Equal(t, 1, NumDevices(b))
			assert.Empty(t, PluginPath(b))

			var out bytes.Buffer
			require.NoError(t, Describe(&out, b))
			text := out.String()
			assert.Contains(t, text, "backend:     SimpleGo (go)\n")
			assert.Contains(t, text, "description: "+b.Description()+"\n")
			assert.Contains(t, text, "devices:     1\n")
			assert.Contains(t, text, "  #0: "+b.DeviceDescription(0)+"\n")
			assert.NotContains(t, text, "plugin:")
			assert.Contains(t, text, "data parallelism: not available")
		})
	}
	_, err := New("auto", nil) // A nil writer is fine.
	require.NoError(t, err)
	assert.Equal(t, 0, NumDevices(nil))
	require.Error(t, Describe(&bytes.Buffer{}, nil))
}

func TestNewErrors(t *testing.T) {
	dir := hermetic(t)
	_, err := New("xla:cuda", nil)
	require.Error(t, err)
	if xlaCompiledIn {
		assert.Contains(t, err.Error(), dir)
		assert.Contains(t, err.Error(), "`nowt setup -plugin cuda`")
	}

	_, err = New("nonsense", nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"xla:cpu"`)

	if xlaCompiledIn {
		// A fake plugin file: selected by name, then loading it by path fails (and nothing is downloaded).
		touch(t, dir, "pjrt_c_api_cpu_plugin.so")
		_, err = New("xla:cpu", nil)
		require.Error(t, err)
		assert.Contains(t, err.Error(), filepath.Join(dir, "pjrt_c_api_cpu_plugin.so"))
	}
}

func TestDataParallel(t *testing.T) {
	dp, err := newDataParallel(4)
	require.NoError(t, err)
	assert.Equal(t, 4, dp.NumDevices())
	assert.Equal(t, 4, dp.Mesh.NumDevices())
	assert.Equal(t, []string{BatchAxis}, dp.Mesh.AxesNames())
	assert.Equal(t, "AutoSharding", dp.Strategy.String())
	assert.False(t, dp.BatchSharding.IsReplicated())
	per, err := dp.PerDeviceBatch(128)
	require.NoError(t, err)
	assert.Equal(t, 32, per)
	_, err = dp.PerDeviceBatch(130)
	require.ErrorContains(t, err, "not a positive multiple")

	_, err = newDataParallel(1)
	require.ErrorContains(t, err, "at least 2 devices")

	hermetic(t)
	b, err := New("go", nil)
	require.NoError(t, err)
	_, err = NewDataParallel(b, 0)
	require.ErrorContains(t, err, "no distributed execution")
	_, err = NewDataParallel(nil, 2)
	require.Error(t, err)
}

func TestValidSpecs(t *testing.T) {
	hermetic(t)
	assert.Equal(t, []string{"auto", "go", "xla:cpu", "xla:cuda", "xla:tpu"}, ValidSpecs())
	for _, s := range ValidSpecs() {
		_, _, err := Select(s)
		if err != nil {
			assert.NotContains(t, err.Error(), "unknown backend spec", "valid spec %q must be known", s)
		}
	}
	assert.Contains(t, SpecHelp, "auto")
}

func TestInstallRejectsWithoutNetwork(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("Install is only supported on linux/amd64")
	}
	t.Setenv("HOME", t.TempDir())
	var out bytes.Buffer
	err := Install(context.Background(), "bogus", InstallOptions{}, &out)
	require.ErrorContains(t, err, `unknown plugin`)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, Install(ctx, "cpu", InstallOptions{}, nil), context.Canceled)
	require.ErrorContains(t, Install(context.Background(), "cpu", InstallOptions{Source: "ftp"}, nil), `unknown source "ftp"`)
	require.ErrorContains(t, Install(context.Background(), "cuda", InstallOptions{Source: SourcePyPI}, nil), `only carries the "cpu" plugin`)
}

// TestTestBackend: without $NOWT_TEST_BACKEND tests get the pure-Go backend; with it, the backend it names (each
// spec its own, whichever was named first), and an error that names the variable when that backend cannot be made
// (here: no CUDA plugin).
func TestTestBackend(t *testing.T) {
	hermetic(t)
	t.Setenv(TestBackendEnv, "")
	b, err := TestBackend()
	require.NoError(t, err)
	require.Equal(t, "go", b.String())

	// A spec named before another (here "go") does not stand in for it: each spec gets its own backend.
	t.Setenv(TestBackendEnv, "go")
	b, err = TestBackend()
	require.NoError(t, err)
	require.Equal(t, "go", b.String())

	t.Setenv(TestBackendEnv, "xla:cuda")
	_, err = TestBackend()
	require.ErrorContains(t, err, `$NOWT_TEST_BACKEND="xla:cuda"`)
	if xlaCompiledIn {
		require.ErrorContains(t, err, `PJRT plugin "cuda"`)
	}
}

// TestEngine: the one-line engine description names the pure-Go backend and, for XLA, the plugin file.
func TestEngine(t *testing.T) {
	b, err := New("go", nil)
	require.NoError(t, err)
	defer b.Finalize()
	require.Equal(t, "go (pure Go, 1 device)", Engine(b))
	require.Equal(t, "(no backend)", Engine(nil))
	if !xlaCompiledIn {
		return
	}
	cpuPluginOrSkip(t)
	xb, err := New("xla:cpu,devices=2", nil)
	require.NoError(t, err)
	defer xb.Finalize()
	e := Engine(xb)
	require.True(t, strings.HasPrefix(e, "xla:cpu (PJRT plugin /"), e)
	require.Contains(t, e, "pjrt_c_api_cpu_plugin.so")
	require.Contains(t, e, ", 2 devices)")
}

// TestNewForHostDevices: XLA on CPU exposes as many host devices as the caller will use (one by New), the
// plugin's own default for AllDevices, and what "devices=<n>" says whatever the caller asks; the pure-Go backend
// has its one device whatever is asked, and a count below 1 (other than AllDevices) is an error naming it.
func TestNewForHostDevices(t *testing.T) {
	b, err := NewFor("go", 3, nil)
	require.NoError(t, err)
	require.Equal(t, 1, NumDevices(b))
	b.Finalize()
	for _, devices := range []int{0, -2} {
		_, err = NewFor("go", devices, nil)
		require.ErrorContains(t, err, fmt.Sprintf("for %d devices: want 1 or more, or -1 for all", devices))
	}
	if !xlaCompiledIn {
		return
	}
	cpuPluginOrSkip(t)
	numDevices := func(spec string, devices int) int {
		b, err := NewFor(spec, devices, nil)
		require.NoError(t, err, spec)
		defer b.Finalize()
		return NumDevices(b)
	}
	pluginDefault := numDevices("xla:cpu", AllDevices)
	require.Greater(t, pluginDefault, 1, "the CPU plugin's own default (XLA's C API: 4)")
	for _, tc := range []struct {
		spec          string
		devices, want int
	}{
		{"xla:cpu", 1, 1},
		{"xla:cpu", 3, 3},
		{"xla:cpu,devices=2", 1, 2},
		{"xla:cpu,devices=2", 3, 2}, // the spec wins; NewDataParallel then says 3 are not there
		{"xla:cpu,devices=2", AllDevices, 2},
	} {
		require.Equal(t, tc.want, numDevices(tc.spec, tc.devices), "NewFor(%q, %d)", tc.spec, tc.devices)
	}
	xb, err := New("xla:cpu", nil)
	require.NoError(t, err)
	defer xb.Finalize()
	require.Equal(t, 1, NumDevices(xb), "New is one device")
}
