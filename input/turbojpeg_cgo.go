//go:build cgo && unix && !nojpegturbo

package input

/*
#cgo linux LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>

// The TurboJPEG 2.x API (also exported by libjpeg-turbo 3.x), declared here so that building needs no
// turbojpeg.h: the library is opened at run time with dlopen, and its absence selects the pure-Go decoder.
typedef void *nowt_tjhandle;

typedef struct {
	void *lib;
	nowt_tjhandle (*initDecompress)(void);
	nowt_tjhandle (*initCompress)(void);
	int (*decompressHeader3)(nowt_tjhandle, const unsigned char *, unsigned long, int *, int *, int *, int *);
	int (*decompress2)(nowt_tjhandle, const unsigned char *, unsigned long, unsigned char *, int, int, int, int, int);
	int (*compress2)(nowt_tjhandle, const unsigned char *, int, int, int, int, unsigned char **, unsigned long *,
		int, int, int);
	char *(*getErrorStr2)(nowt_tjhandle);
	int (*getErrorCode)(nowt_tjhandle);
	int (*destroy)(nowt_tjhandle);
	void (*tjfree)(unsigned char *);
} nowt_tj;

// nowt_tj_open loads the library and its symbols into *t; it returns NULL or the loader's message.
static const char *nowt_tj_open(const char *name, nowt_tj *t) {
	void *lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
	if (lib == NULL) {
		const char *e = dlerror();
		return e ? e : "dlopen failed";
	}
#define NOWT_SYM(field, sym) \
	if ((*(void **)(&t->field) = dlsym(lib, sym)) == NULL) { dlclose(lib); return "symbol " sym " missing"; }
	NOWT_SYM(initDecompress, "tjInitDecompress")
	NOWT_SYM(initCompress, "tjInitCompress")
	NOWT_SYM(decompressHeader3, "tjDecompressHeader3")
	NOWT_SYM(decompress2, "tjDecompress2")
	NOWT_SYM(compress2, "tjCompress2")
	NOWT_SYM(getErrorStr2, "tjGetErrorStr2")
	NOWT_SYM(getErrorCode, "tjGetErrorCode")
	NOWT_SYM(destroy, "tjDestroy")
	NOWT_SYM(tjfree, "tjFree")
#undef NOWT_SYM
	t->lib = lib;
	return NULL;
}

static nowt_tjhandle nowt_tj_init_decompress(nowt_tj *t) { return t->initDecompress(); }
static nowt_tjhandle nowt_tj_init_compress(nowt_tj *t) { return t->initCompress(); }
static int nowt_tj_destroy(nowt_tj *t, nowt_tjhandle h) { return t->destroy(h); }
static const char *nowt_tj_error(nowt_tj *t, nowt_tjhandle h) { return t->getErrorStr2(h); }
static int nowt_tj_error_code(nowt_tj *t, nowt_tjhandle h) { return t->getErrorCode(h); }

static int nowt_tj_header(nowt_tj *t, nowt_tjhandle h, const unsigned char *buf, unsigned long size,
		int *w, int *ht, int *subsamp, int *cs) {
	return t->decompressHeader3(h, buf, size, w, ht, subsamp, cs);
}

static int nowt_tj_decompress(nowt_tj *t, nowt_tjhandle h, const unsigned char *buf, unsigned long size,
		unsigned char *dst, int w, int pitch, int ht, int pf, int flags) {
	return t->decompress2(h, buf, size, dst, w, pitch, ht, pf, flags);
}

// nowt_tj_compress compresses into a library-allocated buffer; the caller copies it and frees it with
// nowt_tj_free.
static int nowt_tj_compress(nowt_tj *t, nowt_tjhandle h, const unsigned char *src, int w, int pitch, int ht,
		int pf, unsigned char **out, unsigned long *outSize, int subsamp, int quality, int flags) {
	*out = NULL;
	*outSize = 0;
	return t->compress2(h, src, w, pitch, ht, pf, out, outSize, subsamp, quality, flags);
}

static void nowt_tj_free(nowt_tj *t, unsigned char *p) { t->tjfree(p); }
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"unsafe"
)

// TurboJPEG constants (turbojpeg.h of libjpeg-turbo 2.x; the values are part of its stable ABI).
const (
	tjPixelRGB  = 0  // TJPF_RGB
	tjPixelGray = 6  // TJPF_GRAY
	tjPixelCMYK = 11 // TJPF_CMYK

	tjSamp444  = 0 // TJSAMP_444
	tjSamp420  = 2 // TJSAMP_420
	tjSampGray = 3 // TJSAMP_GRAY

	tjColorCMYK = 3 // TJCS_CMYK
	tjColorYCCK = 4 // TJCS_YCCK

	tjErrWarning = 0 // TJERR_WARNING
)

// turboAvailableInBuild reports whether this build can load libjpeg-turbo at all.
const turboAvailableInBuild = true

// turboLib is a loaded libturbojpeg. It is safe for concurrent use: each call takes a TurboJPEG
// instance from a pool (instances themselves are not thread-safe).
type turboLib struct {
	name string // the file name it was loaded from
	fn   *C.nowt_tj
	dec  sync.Pool // of *tjInstance for decompression
	enc  sync.Pool // of *tjInstance for compression
}

// tjInstance owns one TurboJPEG handle, destroyed when the instance is garbage collected.
type tjInstance struct{ h C.nowt_tjhandle }

// openTurboLib loads the first of the named shared libraries that opens and exports the TurboJPEG API.
func openTurboLib(names []string) (*turboLib, error) {
	var msgs []string
	for _, name := range names {
		fn := (*C.nowt_tj)(C.calloc(1, C.size_t(unsafe.Sizeof(C.nowt_tj{}))))
		cname := C.CString(name)
		msg := C.nowt_tj_open(cname, fn)
		C.free(unsafe.Pointer(cname))
		if msg != nil {
			msgs = append(msgs, C.GoString(msg))
			C.free(unsafe.Pointer(fn))
			continue
		}
		// The library stays loaded for the life of the process (fn is never freed).
		return &turboLib{name: name, fn: fn}, nil
	}
	return nil, fmt.Errorf("libjpeg-turbo's TurboJPEG library not loadable (install libturbojpeg0 on Debian/Ubuntu, "+
		"libjpeg-turbo on Fedora or Homebrew): %s", strings.Join(msgs, "; "))
}

func (l *turboLib) instance(pool *sync.Pool, compress bool) (*tjInstance, error) {
	if v := pool.Get(); v != nil {
		return v.(*tjInstance), nil
	}
	var h C.nowt_tjhandle
	if compress {
		h = C.nowt_tj_init_compress(l.fn)
	} else {
		h = C.nowt_tj_init_decompress(l.fn)
	}
	if h == nil {
		return nil, errors.New("libjpeg-turbo: cannot create a TurboJPEG instance (out of memory?)")
	}
	inst := &tjInstance{h: h}
	fn := l.fn
	runtime.AddCleanup(inst, func(h C.nowt_tjhandle) { C.nowt_tj_destroy(fn, h) }, h)
	return inst, nil
}

// lastError is the message of the instance's last failure and whether it was only a warning.
func (l *turboLib) lastError(inst *tjInstance) (msg string, warning bool) {
	return C.GoString(C.nowt_tj_error(l.fn, inst.h)), C.nowt_tj_error_code(l.fn, inst.h) == tjErrWarning
}

// header reads the JPEG header: dimensions and whether the colour space is CMYK or YCCK (which the
// TurboJPEG 2 API cannot convert to RGB).
func (l *turboLib) header(data []byte) (w, h int, cmyk bool, err error) {
	if len(data) == 0 {
		return 0, 0, false, errors.New("libjpeg-turbo: empty data")
	}
	inst, err := l.instance(&l.dec, false)
	if err != nil {
		return 0, 0, false, err
	}
	defer l.dec.Put(inst)
	var cw, ch, samp, cs C.int
	if C.nowt_tj_header(l.fn, inst.h, (*C.uchar)(unsafe.Pointer(&data[0])), C.ulong(len(data)), &cw, &ch, &samp, &cs) != 0 {
		msg, _ := l.lastError(inst)
		return 0, 0, false, fmt.Errorf("libjpeg-turbo: %s", msg)
	}
	return int(cw), int(ch), cs == tjColorCMYK || cs == tjColorYCCK, nil
}

// decode decodes data scaled by 1/denom (denom 1, 2, 4 or 8) into packed RGB of size
// scaledSize(w, denom)×scaledSize(h, denom), where w×h is the full size from header. Warnings (a
// truncated file, corrupt data that libjpeg-turbo papered over) are errors too.
func (l *turboLib) decode(data []byte, w, h, denom int) (pix []uint8, sw, sh int, err error) {
	if len(data) == 0 {
		return nil, 0, 0, errors.New("libjpeg-turbo: empty data")
	}
	inst, err := l.instance(&l.dec, false)
	if err != nil {
		return nil, 0, 0, err
	}
	defer l.dec.Put(inst)
	sw, sh = scaledSize(w, denom), scaledSize(h, denom)
	pix = make([]uint8, sw*sh*3)
	if C.nowt_tj_decompress(l.fn, inst.h, (*C.uchar)(unsafe.Pointer(&data[0])), C.ulong(len(data)),
		(*C.uchar)(unsafe.Pointer(&pix[0])), C.int(sw), C.int(sw*3), C.int(sh), tjPixelRGB, 0) != 0 {
		msg, warning := l.lastError(inst)
		if warning {
			return nil, 0, 0, fmt.Errorf("libjpeg-turbo warning: %s", msg)
		}
		return nil, 0, 0, fmt.Errorf("libjpeg-turbo: %s", msg)
	}
	return pix, sw, sh, nil
}

// encode compresses packed pixels (3 bytes per pixel for tjPixelRGB, 1 for tjPixelGray, 4 for
// tjPixelCMYK) with the given chroma subsampling and quality. The tests use it to make JPEGs that the
// standard library cannot write (4:4:4, CMYK).
func (l *turboLib) encode(pix []uint8, w, h, pixelFormat, subsamp, quality int) ([]byte, error) {
	bpp := map[int]int{tjPixelRGB: 3, tjPixelGray: 1, tjPixelCMYK: 4}[pixelFormat]
	if bpp == 0 || w <= 0 || h <= 0 || len(pix) != w*h*bpp {
		return nil, fmt.Errorf("libjpeg-turbo encode: %d bytes for a %dx%d image of pixel format %d", len(pix), w, h, pixelFormat)
	}
	inst, err := l.instance(&l.enc, true)
	if err != nil {
		return nil, err
	}
	defer l.enc.Put(inst)
	var out *C.uchar
	var size C.ulong
	rc := C.nowt_tj_compress(l.fn, inst.h, (*C.uchar)(unsafe.Pointer(&pix[0])), C.int(w), C.int(w*bpp), C.int(h),
		C.int(pixelFormat), &out, &size, C.int(subsamp), C.int(quality), 0)
	defer C.nowt_tj_free(l.fn, out)
	if rc != 0 {
		msg, _ := l.lastError(inst)
		return nil, fmt.Errorf("libjpeg-turbo encode: %s", msg)
	}
	return C.GoBytes(unsafe.Pointer(out), C.int(size)), nil
}
