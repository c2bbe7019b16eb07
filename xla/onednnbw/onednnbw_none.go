//go:build !onednn || !cgo

package onednnbw

import "unsafe"

// Handler returns nil: this binary was built without the onednn tag (make builds with it where oneDNN's headers
// are installed: apt-get install libdnnl-dev).
func Handler() unsafe.Pointer { return nil }
