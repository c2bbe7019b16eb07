//go:build !onednn || !cgo

package onednnbw

import "unsafe"

// Handler returns nil: this binary was built without the onednn tag (make builds with it where oneDNN's headers
// are installed: apt-get install libdnnl-dev).
func Handler() unsafe.Pointer { return nil }

// SetChunks does nothing and returns 0: this binary has no handler.
func SetChunks(n int) int { return 0 }
