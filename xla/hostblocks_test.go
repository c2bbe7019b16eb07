//go:build linux && amd64 && cgo && !noxla && !nohostblocks

package xla

import (
	"syscall"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// minorFaults is the process's minor page faults so far.
func minorFaults(t *testing.T) int64 {
	t.Helper()
	var u syscall.Rusage
	require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &u))
	return u.Minflt
}

// TestKeepLargeBlocks: with the cache on, a large block freed is handed out again to the next request it fits,
// already mapped (its pages take no new faults), honouring the requested alignment; a small block or one far
// larger than the request is not; and the cache never holds more than its cap.
func TestKeepLargeBlocks(t *testing.T) {
	keepLargeBlocks()
	if !largeBlocksOn() {
		t.Skip("the large-block cache is off (NOWT_HOST_HEAP=default, or no glibc)")
	}
	const size = 40<<20 + 12345 // a size no other test asks for
	pages := int64(size / 4096)

	for _, c := range []struct {
		name      string
		alignment int
	}{{"malloc", 0}, {"posix_memalign 64", 64}, {"posix_memalign 4096", 4096}} {
		t.Run(c.name, func(t *testing.T) {
			// allocateWrittenFreed allocates a block of size, writes each of its pages, checks its alignment and
			// frees it; it returns the page faults the writes took.
			allocateWrittenFreed := func(which string) int64 {
				faults := minorFaults(t)
				p := allocHostBlock(size, c.alignment, true)
				require.NotNil(t, p)
				faults = minorFaults(t) - faults
				if c.alignment > 0 {
					assert.Zero(t, uintptr(p)%uintptr(c.alignment), "alignment of the %s block", which)
				}
				freeHostBlock(p)
				return faults
			}
			before := currentLargeBlockStats()
			firstFaults := allocateWrittenFreed("first")
			againFaults := allocateWrittenFreed("second")
			after := currentLargeBlockStats()

			assert.Less(t, againFaults, pages/10, "the block handed out again is mapped already (first time: %d faults)", firstFaults)
			assert.Greater(t, after.hits, before.hits, "a hit")
			assert.LessOrEqual(t, after.held, uint64(largeBlockCap))
		})
	}

	t.Run("small blocks and much larger ones are left to glibc", func(t *testing.T) {
		small := allocHostBlock(largeBlockMin/2, 0, false)
		before := currentLargeBlockStats()
		freeHostBlock(small)
		assert.Equal(t, before.blocks, currentLargeBlockStats().blocks, "a block under largeBlockMin is not kept")

		big := allocHostBlock(3*size, 0, false) // kept when freed, but more than twice what the next request needs
		freeHostBlock(big)
		held := currentLargeBlockStats()
		p := allocHostBlock(size+4096, 0, false)
		assert.NotEqual(t, uintptr(big), uintptr(p), "a block over twice the request is not handed out")
		freeHostBlock(p)
		assert.GreaterOrEqual(t, currentLargeBlockStats().held, held.held)
	})

	t.Run("at most the cap", func(t *testing.T) {
		// 30 blocks of 40 MiB, 1.2 GiB, are live at once (never written: mapped, not resident) and then freed.
		var blocks []unsafe.Pointer
		for range 30 {
			p := allocHostBlock(size, 0, false)
			require.NotNil(t, p)
			blocks = append(blocks, p)
		}
		for _, p := range blocks {
			freeHostBlock(p)
		}
		s := currentLargeBlockStats()
		assert.LessOrEqual(t, s.held, uint64(largeBlockCap))
		assert.LessOrEqual(t, s.blocks, largeBlockCount)
		assert.Greater(t, s.held, uint64(largeBlockCap-2*size), "filled up to about the cap")
	})
}
