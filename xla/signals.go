//go:build linux && amd64 && cgo && !noxla

package xla

/*
#include <signal.h>
#include <pthread.h>

// nowt_block_async_signals blocks the asynchronous, process-directed signals on the calling thread and stores the
// mask it replaced in old. Synchronous signals (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP) stay unblocked.
static int nowt_block_async_signals(sigset_t *old) {
	static const int sigs[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF,
		SIGCHLD, SIGURG, SIGWINCH, SIGIO};
	sigset_t set;
	sigemptyset(&set);
	for (unsigned i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		sigaddset(&set, sigs[i]);
	}
	return pthread_sigmask(SIG_BLOCK, &set, old);
}

static int nowt_restore_signals(sigset_t *old) { return pthread_sigmask(SIG_SETMASK, old, NULL); }
*/
import "C"

import (
	"runtime"

	"github.com/pkg/errors"
)

// withAsyncSignalsBlocked runs f on one OS thread with the process's asynchronous signals (SIGINT, SIGTERM,
// SIGPROF, SIGCHLD, ...) blocked there, then restores the thread's mask. Threads that f starts inherit the mask:
// f creates the PJRT client, and with it the plugin's thread pools (tf_XLAEigen, ...), so that no process-directed
// signal is ever delivered to them and the Go threads, which leave these signals unblocked, take them all.
//
// Why: the XLA CPU plugin (xla-cpu-pjrt 0.0.1) corrupts its heap when a signal interrupts one of its matrix
// products (oneDNN's sgemm, "corrupted size vs. prev_size" and an abort), whoever handles the signal: Go's CPU
// profiler (SIGPROF at 100 Hz, process-directed) aborted every run within a second, and so did JAX on the same
// plugin with a SIGPROF timer (docs/upstream.md). A Ctrl-C or SIGTERM landing on such a thread risks the same.
// Threads the plugin starts later, from a Go thread (two tf_foreach threads at a multi-device run's first
// execution), keep Go's mask: the data-parallel test ran under the profiler without a crash.
func withAsyncSignalsBlocked(f func()) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var old C.sigset_t
	if rc := C.nowt_block_async_signals(&old); rc != 0 {
		return errors.Errorf("blocking signals before creating the PJRT client: pthread_sigmask returned %d", int(rc))
	}
	defer C.nowt_restore_signals(&old)
	f()
	return nil
}
