//go:build !(linux && amd64 && cgo && !noxla) || nohostblocks

package xla

// keepLargeBlocks does nothing in this build: the large-block cache needs glibc, cgo and the XLA backend, and the
// build tag nohostblocks leaves it out (for a program that links an allocator of its own, which would define
// malloc twice).
func keepLargeBlocks() {}
