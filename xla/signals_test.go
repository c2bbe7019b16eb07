//go:build linux && amd64 && cgo && !noxla

package xla

import (
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/stretchr/testify/require"
)

// blockedSignals reads which signals the thread of /proc/self/task/<tid> blocks (the SigBlk mask of its status).
func blockedSignals(t *testing.T, task string) uint64 {
	status, err := os.ReadFile(filepath.Join(task, "status"))
	require.NoError(t, err)
	for _, line := range strings.Split(string(status), "\n") {
		if mask, ok := strings.CutPrefix(line, "SigBlk:"); ok {
			v, err := strconv.ParseUint(strings.TrimSpace(mask), 16, 64)
			require.NoError(t, err)
			return v
		}
	}
	t.Fatalf("%s/status has no SigBlk line", task)
	return 0
}

// TestPluginThreadsBlockAsyncSignals: the XLA CPU plugin's own threads (named tf_... by XLA) block SIGPROF,
// SIGINT and SIGTERM, and a run of matrix products under Go's CPU profiler survives. Without the blocking
// (withAsyncSignalsBlocked) the plugin corrupts its heap when SIGPROF interrupts a product: every such run
// aborted within a second ("corrupted size vs. prev_size while consolidating"), which fails this test by killing
// the test binary.
func TestPluginThreadsBlockAsyncSignals(t *testing.T) {
	cpuPluginOrSkip(t)
	b, err := New("xla:cpu", nil)
	require.NoError(t, err)
	defer b.Finalize()
	exec, err := graph.NewExec(b, func(x, w *graph.Node) *graph.Node { return graph.Tanh(graph.Dot(x, w)) })
	require.NoError(t, err)
	const m, k, n = 128, 784, 500 // the demo MLP's first layer at batch 128
	x := tensors.FromFlatDataAndDimensions(make([]float32, m*k), m, k)
	w := tensors.FromFlatDataAndDimensions(make([]float32, k*n), k, n)
	product := func() {
		outs, err := exec.Exec(x, w)
		require.NoError(t, err)
		require.NoError(t, outs[0].FinalizeAll())
	}
	product()

	tasks, err := filepath.Glob("/proc/self/task/*")
	require.NoError(t, err)
	want := uint64(1)<<(syscall.SIGPROF-1) | uint64(1)<<(syscall.SIGINT-1) | uint64(1)<<(syscall.SIGTERM-1)
	pluginThreads := 0
	for _, task := range tasks {
		comm, err := os.ReadFile(filepath.Join(task, "comm"))
		if err != nil {
			continue // the thread has exited
		}
		name := strings.TrimSpace(string(comm))
		if !strings.HasPrefix(name, "tf_") {
			continue
		}
		pluginThreads++
		require.Equal(t, want, blockedSignals(t, task)&want,
			"plugin thread %s (%s) takes SIGPROF, SIGINT or SIGTERM", name, filepath.Base(task))
	}
	require.NotZero(t, pluginThreads, "no thread named tf_... after running a product on the XLA CPU plugin")

	if err := pprof.StartCPUProfile(io.Discard); err == nil { // else a profile is already running (go test -cpuprofile)
		defer pprof.StopCPUProfile()
	}
	for range 1000 {
		product()
	}
}
