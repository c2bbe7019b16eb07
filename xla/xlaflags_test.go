//go:build linux && amd64 && cgo && !noxla

package xla

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/pkg/errors"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDisableXNNPACK: the CPU plugin runs with XNNPACK off unless XLA_FLAGS says otherwise; other plugins are
// left alone.
func TestDisableXNNPACK(t *testing.T) {
	for _, tc := range []struct{ before, after string }{
		{"", "--xla_cpu_use_xnnpack=false"},
		{"--xla_dump_to=/tmp/d", "--xla_dump_to=/tmp/d --xla_cpu_use_xnnpack=false"},
		{"--xla_cpu_use_xnnpack=true", "--xla_cpu_use_xnnpack=true"}, // The user's choice stands.
		{"--xla_cpu_use_xnnpack=false", "--xla_cpu_use_xnnpack=false"},
	} {
		t.Setenv("XLA_FLAGS", tc.before)
		disableXNNPACK("/lib/pjrt_c_api_cpu_plugin.so")
		assert.Equal(t, tc.after, os.Getenv("XLA_FLAGS"), "XLA_FLAGS=%q before", tc.before)
	}
	t.Setenv("XLA_FLAGS", "")
	disableXNNPACK("/lib/pjrt_c_api_cuda_plugin.so")
	assert.Empty(t, os.Getenv("XLA_FLAGS"), "only the CPU plugin")
}

// TestPreferWideVectors: on a CPU with AVX-512 the CPU plugin compiles for 512-bit vectors unless XLA_FLAGS sets a
// width; without AVX-512, or for other plugins, XLA_FLAGS is left alone.
func TestPreferWideVectors(t *testing.T) {
	saved := hostHasAVX512
	defer func() { hostHasAVX512 = saved }()
	for _, tc := range []struct {
		name, plugin, before, after string
		avx512                      bool
	}{
		{"AVX-512", "/lib/pjrt_c_api_cpu_plugin.so", "", "--xla_cpu_prefer_vector_width=512", true},
		{"after the user's other flags", "/lib/pjrt_c_api_cpu_plugin.so", "--xla_dump_to=/tmp/d",
			"--xla_dump_to=/tmp/d --xla_cpu_prefer_vector_width=512", true},
		{"the user's width stands", "/lib/pjrt_c_api_cpu_plugin.so", "--xla_cpu_prefer_vector_width=256",
			"--xla_cpu_prefer_vector_width=256", true},
		{"no AVX-512", "/lib/pjrt_c_api_cpu_plugin.so", "", "", false},
		{"not the CPU plugin", "/lib/pjrt_c_api_cuda_plugin.so", "", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hostHasAVX512 = tc.avx512
			t.Setenv("XLA_FLAGS", tc.before)
			preferWideVectors(tc.plugin)
			assert.Equal(t, tc.after, os.Getenv("XLA_FLAGS"))
		})
	}
}

// TestSetCUDADataDir: the CUDA folder go-xla's installer puts beside the CUDA plugin becomes XLA's
// --xla_gpu_cuda_data_dir, unless XLA_FLAGS names one already or the folder is not there.
func TestSetCUDADataDir(t *testing.T) {
	root := t.TempDir()
	nvidia := filepath.Join(root, "nvidia")
	require.NoError(t, os.MkdirAll(filepath.Join(nvidia, "bin"), 0o755))
	plugin := filepath.Join(nvidia, "pjrt_c_api_cuda_plugin.so")
	for _, tc := range []struct{ name, plugin, before, after string }{
		{"installed", plugin, "", "--xla_gpu_cuda_data_dir=" + nvidia},
		{"after the user's other flags", plugin, "--xla_dump_to=/tmp/d", "--xla_dump_to=/tmp/d --xla_gpu_cuda_data_dir=" + nvidia},
		{"the user's folder stands", plugin, "--xla_gpu_cuda_data_dir=/opt/cuda", "--xla_gpu_cuda_data_dir=/opt/cuda"},
		{"no folder beside the plugin", filepath.Join(root, "elsewhere", "lib", "pjrt_c_api_cuda_plugin.so"), "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("XLA_FLAGS", tc.before)
			setCUDADataDir(tc.plugin)
			assert.Equal(t, tc.after, os.Getenv("XLA_FLAGS"))
		})
	}
}

// TestClientErrorSaysThePluginLoads: an error creating a backend from a plugin that loads (here the CPU plugin)
// says that it loads and its PJRT C API version, so that a plugin this binary cannot load (dlopen's error, where
// nothing is added) is told apart from one that found no device. (The real client errors come from a GPU-less
// machine: the CUDA plugin's "No visible GPU devices"; a CPU client given a bad option aborts the process.)
func TestClientErrorSaysThePluginLoads(t *testing.T) {
	cpu, ok := findPlugin(Plugins(), "cpu")
	if !ok {
		t.Skip("no XLA CPU plugin installed (nowt setup -plugin cpu)")
	}
	clientErr := errors.New("PJRT error (code=9): No visible GPU devices.")
	assert.Regexp(t, `^ \(the plugin loads, PJRT C API v0\.\d+; its client could not be created\)$`, loadedButNoClient(clientErr, cpu.Path))
	assert.Empty(t, loadedButNoClient(errors.New(`failed to dynamically load PJRT plugin from "x": "libcuda.so.1: cannot open"`), cpu.Path))
	assert.Empty(t, loadedButNoClient(clientErr, filepath.Join(t.TempDir(), "pjrt_c_api_cuda_plugin.so")), "no such file: nothing loads")
}

// TestTPUPluginWithoutTPU: a TPU plugin on a machine without a TPU device is refused at once, by name, without
// loading it (libtpu would query the cloud metadata server for minutes); with a TPU device, or with
// $TPU_SKIP_MDS_QUERY set, it is loaded as any plugin (here: a file that is no library, refused by the loader).
func TestTPUPluginWithoutTPU(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"pjrt_c_api_tpu_plugin.so", "libtpu.so"} {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, []byte("not a library"), 0o644))
		for _, tc := range []struct {
			name     string
			hardware []string
			skipMDS  string
			refused  bool
		}{
			{"no TPU", nil, "", true},
			{"a TPU", []string{"tpu"}, "", false},
			{"no TPU, metadata queries off", nil, "1", false},
		} {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				fakeHardware(t, tc.hardware)
				t.Setenv("TPU_SKIP_MDS_QUERY", tc.skipMDS)
				_, err := newXLA("xla:"+path, AllDevices)
				require.Error(t, err)
				noTPU := "is a TPU plugin, but this machine has no TPU device"
				if tc.refused {
					assert.ErrorContains(t, err, noTPU)
					assert.ErrorContains(t, err, "TPU_SKIP_MDS_QUERY=1")
					_, err = checkLoads(path)
					assert.ErrorContains(t, err, noTPU)
				} else {
					assert.NotContains(t, err.Error(), noTPU)
				}
			})
		}
	}
	fakeHardware(t, nil)
	for _, other := range []string{"pjrt_c_api_cuda_plugin.so", "pjrt_c_api_cpu_plugin.so", "xla_cuda_plugin.so", "output_cpu.so"} {
		assert.NoError(t, checkTPUPresent(filepath.Join(dir, other)), "other plugins pass: %s", other)
	}

	// nowt setup -plugin tpu is refused without a TPU, before any download (as the CUDA plugin is without a GPU).
	t.Setenv("HOME", t.TempDir())
	err := Install(context.Background(), "tpu", InstallOptions{}, io.Discard)
	assert.ErrorContains(t, err, `installing PJRT plugin "tpu": no TPU device found`)
}

// TestDescribeXLAFlags: Describe (`nowt devices`) shows the XLA flags the CPU plugin's compiler runs with — the
// user's $XLA_FLAGS, then the flags nowt adds — which scripts/bench-peers.sh hands to JAX on the same plugin.
func TestDescribeXLAFlags(t *testing.T) {
	cpuPluginOrSkip(t)
	t.Setenv("XLA_FLAGS", "--xla_cpu_enable_fast_min_max=false")
	b, err := New("xla:cpu", nil)
	require.NoError(t, err)
	defer b.Finalize()
	var out bytes.Buffer
	require.NoError(t, Describe(&out, b))
	want := "xla flags:   --xla_cpu_enable_fast_min_max=false " + XNNPACKFlag + "=false"
	if hostHasAVX512 {
		want += " " + VectorWidthFlag + "=512"
	}
	assert.Contains(t, out.String(), "\n"+want+"\n")
}
