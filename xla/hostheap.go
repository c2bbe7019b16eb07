//go:build linux && amd64 && cgo && !noxla

package xla

/*
#include <stdlib.h>
#include <features.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

// nowt_keep_host_heap fixes glibc malloc's mmap and trim thresholds (see keepHostHeap); 1 when both were set, 0
// when glibc refused one, -1 without glibc.
static int nowt_keep_host_heap(int mmap_threshold, int trim_threshold) {
#ifdef __GLIBC__
	return mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1 && mallopt(M_TRIM_THRESHOLD, trim_threshold) == 1;
#else
	return -1;
#endif
}
*/
import "C"

import (
	"os"
	"sync"

	"github.com/pkg/errors"
)

// Host heap thresholds for the CPU plugin (see keepHostHeap): blocks under 32 MiB (glibc's largest allowed mmap
// threshold on 64 bits) come from the heap, and up to 256 MiB freed at the heap's top stay there.
const (
	hostHeapMmapThreshold = 32 << 20
	hostHeapTrimThreshold = 256 << 20
)

// keepHostHeapOnce applies keepHostHeap once per process; hostHeapErr is its outcome.
var (
	keepHostHeapOnce sync.Once
	hostHeapErr      error
)

// keepHostHeap makes glibc's malloc keep the memory the XLA CPU plugin allocates and frees at every execution (its
// buffers for a step's intermediate values) in the process's heap, instead of mapping it from the kernel and
// giving it back each time: mallopt(M_MMAP_THRESHOLD, 32 MiB) and mallopt(M_TRIM_THRESHOLD, 256 MiB). glibc's
// default thresholds move with what the process has freed so far, so the same training step paid 100 or more
// page faults a step in some processes and few in others: the 784-500-10 MLP's step at batch 128, its batch on
// the device, took 0.73–1.10 ms from one process to the next, and 0.74–0.79 ms with the thresholds fixed (eight
// alternations; page faults a step 130 → 0; docs/perf-analysis.md §14). NOWT_HOST_HEAP=default leaves glibc's
// defaults. It does nothing without glibc. Blocks of 32 MiB and more are keepLargeBlocks's (hostblocks.go).
func keepHostHeap() error {
	keepHostHeapOnce.Do(func() {
		if os.Getenv("NOWT_HOST_HEAP") == "default" {
			return
		}
		switch C.nowt_keep_host_heap(C.int(hostHeapMmapThreshold), C.int(hostHeapTrimThreshold)) {
		case 0:
			hostHeapErr = errors.Errorf("glibc refused malloc thresholds of %d and %d bytes (mallopt)", hostHeapMmapThreshold, hostHeapTrimThreshold)
		}
	})
	return hostHeapErr
}
