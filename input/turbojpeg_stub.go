//go:build !cgo || !unix || nojpegturbo

package input

import "errors"

// turboAvailableInBuild reports whether this build can load libjpeg-turbo at all.
const turboAvailableInBuild = false

// TurboJPEG constants used by the tests (see turbojpeg_cgo.go).
const (
	tjPixelRGB  = 0
	tjPixelGray = 6
	tjPixelCMYK = 11
	tjSamp444   = 0
	tjSamp420   = 2
	tjSampGray  = 3
)

// turboLib stands in for the libjpeg-turbo binding in builds without cgo (or with the nojpegturbo tag):
// it cannot be opened, so the pure-Go decoder is used.
type turboLib struct{ name string }

func openTurboLib([]string) (*turboLib, error) {
	return nil, errors.New("libjpeg-turbo support not compiled in (built without cgo, on a non-Unix system, " +
		"or with -tags nojpegturbo)")
}

func (*turboLib) header([]byte) (w, h int, cmyk bool, err error) {
	return 0, 0, false, errors.New("libjpeg-turbo not available")
}

func (*turboLib) decode([]byte, int, int, int) ([]uint8, int, int, error) {
	return nil, 0, 0, errors.New("libjpeg-turbo not available")
}

func (*turboLib) encode([]uint8, int, int, int, int, int) ([]byte, error) {
	return nil, errors.New("libjpeg-turbo not available")
}
