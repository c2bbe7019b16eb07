package input

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
)

const (
	cifarSide  = 32
	cifarPixel = cifarSide * cifarSide * 3
)

// cifarFormat describes one of the CIFAR binary versions.
type cifarFormat struct {
	name        string
	folder      string   // folder name in the official archive
	labelBytes  int      // label bytes before the pixels of each record
	labelByte   int      // which label byte is the label (CIFAR-100: 1 = fine)
	numClasses  int      // range of the label
	train, test []string // files of each split
	namesFile   string   // class names file, one per line, if present
	names       []string // built-in class names
}

var cifar10Format = cifarFormat{
	name: "cifar10", folder: "cifar-10-batches-bin", labelBytes: 1, labelByte: 0, numClasses: 10,
	train:     []string{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"},
	test:      []string{"test_batch.bin"},
	namesFile: "batches.meta.txt",
	names:     []string{"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"},
}

var cifar100Format = cifarFormat{
	name: "cifar100", folder: "cifar-100-binary", labelBytes: 2, labelByte: 1, numClasses: 100,
	train: []string{"train.bin"}, test: []string{"test.bin"},
	namesFile: "fine_label_names.txt",
}

func openCIFAR10(path, split string, _ Options) (*source, error) {
	return openCIFAR(cifar10Format, path, split)
}

func openCIFAR100(path, split string, _ Options) (*source, error) {
	return openCIFAR(cifar100Format, path, split)
}

// parseCIFAR parses the records of one CIFAR binary file: each is labelBytes label bytes followed by
// 3072 pixel bytes (1024 red, 1024 green, 1024 blue, rows of 32). It returns the labels and the pixels
// converted to channels-last [n,32,32,3].
func parseCIFAR(f cifarFormat, name string, data []byte) (labels []int32, pix []uint8, err error) {
	rec := f.labelBytes + cifarPixel
	if len(data) == 0 {
		return nil, nil, fmt.Errorf("%s: empty CIFAR file", name)
	}
	n := len(data) / rec
	if len(data)%rec != 0 {
		return nil, nil, fmt.Errorf("%s: truncated CIFAR record %d: file size %d is not a multiple of the %d-byte record",
			name, n, len(data), rec)
	}
	labels = make([]int32, n)
	pix = make([]uint8, n*cifarPixel)
	for i := range n {
		r := data[i*rec : (i+1)*rec]
		for b := range f.labelBytes {
			if lim := f.labelLimit(b); int(r[b]) >= lim {
				return nil, nil, fmt.Errorf("%s: record %d: label byte %d is %d, out of range [0, %d)", name, i, b, r[b], lim)
			}
		}
		labels[i] = int32(r[f.labelByte])
		planes := r[f.labelBytes:]
		out := pix[i*cifarPixel : (i+1)*cifarPixel]
		for p := range cifarSide * cifarSide {
			out[3*p] = planes[p]
			out[3*p+1] = planes[1024+p]
			out[3*p+2] = planes[2048+p]
		}
	}
	return labels, pix, nil
}

// labelLimit is the range of label byte b (CIFAR-100: 20 coarse, 100 fine).
func (f cifarFormat) labelLimit(b int) int {
	if f.labelBytes == 2 && b == 0 {
		return 20
	}
	return f.numClasses
}

func openCIFAR(f cifarFormat, path, split string) (*source, error) {
	if err := checkSplit(split, "train", "test"); err != nil {
		return nil, err
	}
	wanted := fmt.Sprintf("the %s folder of the binary version (or the folder holding it), extracted from "+
		"https://www.cs.toronto.edu/~kriz/%s-binary.tar.gz", f.folder, strings.ReplaceAll(f.name, "cifar", "cifar-"))
	if path == "" {
		return nil, &SettingError{Setting: "-data", Err: fmt.Errorf("%s needs -data: %s; cifar10-jpeg needs no -data",
			f.name, wanted)}
	}
	if st, err := os.Stat(filepath.Join(path, f.folder)); err == nil && st.IsDir() {
		path = filepath.Join(path, f.folder)
	}
	if st, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("%s folder missing: %w", f.name, err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("%s is a file, not a folder: -data must name %s", path, wanted)
	}
	files := f.train
	if split == "test" {
		files = f.test
	}
	var labels []int32
	var pix []uint8
	for _, name := range files {
		p := filepath.Join(path, name)
		data, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("reading %s file: %w: -data must name the %s folder of the binary version (or the "+
				"folder holding it), with %s and %s", f.name, err, f.folder, strings.Join(f.train, ", "), strings.Join(f.test, ", "))
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s file: %w", f.name, err)
		}
		l, px, err := parseCIFAR(f, p, data)
		if err != nil {
			return nil, err
		}
		labels = append(labels, l...)
		pix = append(pix, px...)
	}
	names := f.names
	if lines, err := readLines(filepath.Join(path, f.namesFile)); err == nil && len(lines) == f.numClasses {
		names = lines
	}
	mean, std := normalizationFor(f.name)
	return &source{
		n: len(labels), h: cifarSide, w: cifarSide, c: 3, numClasses: f.numClasses, classNames: names,
		labels: labels, mean: mean, std: std,
		load: func(i int, dst []float32, rng *rand.Rand) error {
			img := pix[i*cifarPixel : (i+1)*cifarPixel]
			if rng == nil {
				toFloat(img, dst)
				return nil
			}
			padCropFlip(img, cifarSide, cifarSide, 3, 4, 1.0/255, dst, rng)
			return nil
		},
		pixels: func(i int) []uint8 { return pix[i*cifarPixel : (i+1)*cifarPixel] },
	}, nil
}

// readLines reads the non-empty, trimmed lines of a text file.
func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			lines = append(lines, l)
		}
	}
	return lines, sc.Err()
}
