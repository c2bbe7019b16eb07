//go:build linux && amd64 && cgo && !noxla && !nohostblocks

package xla

/*
#include <errno.h>
#include <features.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#ifdef __GLIBC__
#include <malloc.h>

// glibc's own allocator, under the names it exports for allocators that wrap it.
extern void *__libc_malloc(size_t size);
extern void __libc_free(void *ptr);
extern void *__libc_memalign(size_t alignment, size_t size);

// The large-block cache (see keepLargeBlocks). nowt_blocks_min is 0 while it is off; then every call below is
// glibc's own. Blocks are glibc's chunks, so glibc's realloc, malloc_usable_size and free all accept them.
#define NOWT_MAX_BLOCKS 256
static size_t nowt_blocks_min;
static size_t nowt_blocks_cap;
static size_t nowt_blocks_held;
static int nowt_blocks_count;
static void *nowt_block_ptr[NOWT_MAX_BLOCKS];
static size_t nowt_block_size[NOWT_MAX_BLOCKS];
static unsigned long long nowt_blocks_hits;
static pthread_mutex_t nowt_blocks_mu = PTHREAD_MUTEX_INITIALIZER;

// nowt_large_blocks_min is the smallest block the cache keeps; 0 while it is off.
static inline size_t nowt_large_blocks_min(void) { return __atomic_load_n(&nowt_blocks_min, __ATOMIC_RELAXED); }

// nowt_blocks_on reports whether a request of size bytes is the cache's.
static inline int nowt_blocks_on(size_t size) {
	size_t min = nowt_large_blocks_min();
	return min != 0 && size >= min;
}

// nowt_blocks_take hands out the smallest cached block of at least size bytes (and at most twice that: a
// larger one is left for the request it fits) whose address is a multiple of alignment; NULL when none is.
static void *nowt_blocks_take(size_t size, size_t alignment) {
	void *p = NULL;
	pthread_mutex_lock(&nowt_blocks_mu);
	int best = -1;
	for (int i = 0; i < nowt_blocks_count; i++) {
		size_t s = nowt_block_size[i];
		if (s < size || s / 2 > size || ((uintptr_t)nowt_block_ptr[i] % alignment) != 0) {
			continue;
		}
		if (best < 0 || s < nowt_block_size[best]) {
			best = i;
		}
	}
	if (best >= 0) {
		p = nowt_block_ptr[best];
		nowt_blocks_held -= nowt_block_size[best];
		nowt_blocks_count--;
		nowt_block_ptr[best] = nowt_block_ptr[nowt_blocks_count];
		nowt_block_size[best] = nowt_block_size[nowt_blocks_count];
		nowt_blocks_hits++;
	}
	pthread_mutex_unlock(&nowt_blocks_mu);
	return p;
}

// nowt_blocks_keep caches a freed block of usable bytes; 0 when the cache is full (the caller frees it).
static int nowt_blocks_keep(void *p, size_t usable) {
	int kept = 0;
	pthread_mutex_lock(&nowt_blocks_mu);
	if (nowt_blocks_count < NOWT_MAX_BLOCKS && nowt_blocks_held + usable <= nowt_blocks_cap) {
		nowt_block_ptr[nowt_blocks_count] = p;
		nowt_block_size[nowt_blocks_count] = usable;
		nowt_blocks_count++;
		nowt_blocks_held += usable;
		kept = 1;
	}
	pthread_mutex_unlock(&nowt_blocks_mu);
	return kept;
}

void *malloc(size_t size) {
	if (nowt_blocks_on(size)) {
		void *p = nowt_blocks_take(size, 16);
		if (p != NULL) {
			return p;
		}
	}
	return __libc_malloc(size);
}

void free(void *p) {
	if (p != NULL && nowt_large_blocks_min() != 0) {
		size_t usable = malloc_usable_size(p);
		if (nowt_blocks_on(usable) && nowt_blocks_keep(p, usable)) {
			return;
		}
	}
	__libc_free(p);
}

// nowt_power_of_two reports whether alignment is a power of two (C's rule for aligned_alloc and memalign).
static inline int nowt_power_of_two(size_t alignment) {
	return alignment != 0 && (alignment & (alignment - 1)) == 0;
}

// nowt_blocks_memalign is memalign through the cache; alignment is a power of two.
static void *nowt_blocks_memalign(size_t alignment, size_t size) {
	if (nowt_blocks_on(size)) {
		void *p = nowt_blocks_take(size, alignment < 16 ? 16 : alignment);
		if (p != NULL) {
			return p;
		}
	}
	return __libc_memalign(alignment, size);
}

int posix_memalign(void **out, size_t alignment, size_t size) {
	if (!nowt_power_of_two(alignment) || alignment % sizeof(void *) != 0) {
		return EINVAL;
	}
	void *p = nowt_blocks_memalign(alignment, size);
	if (p == NULL) {
		return ENOMEM;
	}
	*out = p;
	return 0;
}

void *aligned_alloc(size_t alignment, size_t size) {
	if (!nowt_power_of_two(alignment)) {
		errno = EINVAL;
		return NULL;
	}
	return nowt_blocks_memalign(alignment, size);
}

void *memalign(size_t alignment, size_t size) {
	if (!nowt_power_of_two(alignment)) {
		return __libc_memalign(alignment, size); // glibc rounds such an alignment up; keep its answer
	}
	return nowt_blocks_memalign(alignment, size);
}

// nowt_keep_large_blocks turns the cache on for blocks of at least min bytes, holding at most cap.
static void nowt_keep_large_blocks(size_t min, size_t cap) {
	pthread_mutex_lock(&nowt_blocks_mu);
	nowt_blocks_cap = cap;
	pthread_mutex_unlock(&nowt_blocks_mu);
	__atomic_store_n(&nowt_blocks_min, min, __ATOMIC_RELAXED);
}

// nowt_large_blocks_stats reports the cache's hits, blocks and bytes held.
static void nowt_large_blocks_stats(unsigned long long *hits, int *count, size_t *held) {
	pthread_mutex_lock(&nowt_blocks_mu);
	*hits = nowt_blocks_hits;
	*count = nowt_blocks_count;
	*held = nowt_blocks_held;
	pthread_mutex_unlock(&nowt_blocks_mu);
}

// nowt_touch writes one byte in each 4 KiB page of n bytes at p.
static void nowt_touch(char *p, size_t n) {
	for (size_t i = 0; i < n; i += 4096) {
		p[i] = (char)i;
	}
}
#else
static void nowt_touch(char *p, size_t n) {}
static size_t nowt_large_blocks_min(void) { return 0; }
static void nowt_keep_large_blocks(size_t min, size_t cap) {}
static void nowt_large_blocks_stats(unsigned long long *hits, int *count, size_t *held) {
	*hits = 0;
	*count = 0;
	*held = 0;
}
#endif
*/
import "C"

import (
	"os"
	"sync"
	"unsafe"
)

// Large-block cache settings (see keepLargeBlocks): blocks of 1 MiB and more are kept, at most 1 GiB of them, at
// most largeBlockCount (the C side's NOWT_MAX_BLOCKS) blocks.
const (
	largeBlockMin   = 1 << 20
	largeBlockCap   = 1 << 30
	largeBlockCount = C.NOWT_MAX_BLOCKS
)

var keepLargeBlocksOnce sync.Once

// keepLargeBlocks keeps the blocks of 1 MiB and more that the process frees, up to 1 GiB of them, and hands them
// out again to the next request they fit (at most twice its size), instead of giving them back to glibc, which
// returns their pages to the kernel, to be faulted in again, page by page, when next asked for. The CPU plugin asks
// for such blocks at every execution: its buffer for a step's intermediate values (104 MiB for CIFAR ResNet-20 at
// batch 64, 141 MiB for ResNet-18 at 224² and batch 8) and, for each convolution, Eigen's packed operands (36 MiB
// for each of ResNet-20's 12 first-stage convolutions and input gradients, 1–58 MiB for ResNet-18's). glibc maps
// each block over 32 MiB anew (keepHostHeap's mmap threshold is glibc's largest), and it unmaps a thread's heap
// of smaller blocks once all of them are free. Without the cache ResNet-20 took 27,000 page faults a step and
// ResNet-18 11,000 (docs/perf-analysis.md §19).
//
// nowt's binaries define malloc, free, posix_memalign, aligned_alloc and memalign (this file) as glibc's own
// (__libc_malloc, __libc_free, __libc_memalign) until this is called; the plugin, loaded later, calls them. Every
// block stays a glibc chunk, so the rest of glibc's allocator (realloc, calloc, malloc_usable_size) is unchanged.
// NOWT_HOST_HEAP=default leaves the cache off; the build tag nohostblocks leaves these definitions out (for a
// program that links an allocator of its own). It does nothing without glibc.
func keepLargeBlocks() {
	keepLargeBlocksOnce.Do(func() {
		if os.Getenv("NOWT_HOST_HEAP") == "default" {
			return
		}
		C.nowt_keep_large_blocks(C.size_t(largeBlockMin), C.size_t(largeBlockCap))
	})
}

// largeBlockStats is what the large-block cache has done: the requests it served from a kept block (hits), and
// the blocks and bytes it holds now.
type largeBlockStats struct {
	hits   uint64
	blocks int
	held   uint64
}

// largeBlocksOn reports whether the large-block cache is on.
func largeBlocksOn() bool { return C.nowt_large_blocks_min() != 0 }

// currentLargeBlockStats reads the cache's counters.
func currentLargeBlockStats() largeBlockStats {
	var hits C.ulonglong
	var count C.int
	var held C.size_t
	C.nowt_large_blocks_stats(&hits, &count, &held)
	return largeBlockStats{hits: uint64(hits), blocks: int(count), held: uint64(held)}
}

// allocHostBlock allocates size bytes aligned to alignment (posix_memalign when alignment > 0, else malloc) and,
// when touch, writes a byte in each of its pages; nil when the allocation fails. For tests.
func allocHostBlock(size, alignment int, touch bool) unsafe.Pointer {
	var p unsafe.Pointer
	if alignment > 0 {
		if C.posix_memalign(&p, C.size_t(alignment), C.size_t(size)) != 0 {
			return nil
		}
	} else {
		p = C.malloc(C.size_t(size))
	}
	if p != nil && touch {
		C.nowt_touch((*C.char)(p), C.size_t(size))
	}
	return p
}

// freeHostBlock frees a block of allocHostBlock. For tests.
func freeHostBlock(p unsafe.Pointer) { C.free(p) }
