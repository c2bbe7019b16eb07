package input

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Image folders.
//
// A split is the folder <path>/<split> ("train", "val" or "test"), in one of two layouts:
//
//   - class folders: <path>/<split>/<class>/*.{jpg,jpeg,png} (any case of the extension; the format is
//     sniffed from the content; images in sub-folders of a class folder, at any depth, belong to the class,
//     as in torchvision's ImageFolder). Classes are the folder names sorted by name (the ILSVRC-2012 train
//     layout, where they are WordNet ids); labels are their indices. For a split other than "train",
//     the class list of <path>/train is used when that folder exists, so that labels agree across splits
//     (where <path>/train is flat, its classes are the indices 0 to the largest label of its labels.txt).
//   - flat: <path>/<split>/*.{jpg,jpeg,png} with a label file, by default <path>/<split>/labels.txt
//     (Options.LabelFile overrides it). Each non-empty line not starting with '#' is "filename label",
//     where filename is relative to the split folder and label is a class name of <path>/train or an
//     integer class index. (ILSVRC's own ground-truth file uses the ILSVRC2012_ID order of meta.mat, not
//     the sorted folder order, so convert it to this format first.) When <path>/train has no class
//     folders, integer labels are required and the number of classes is the largest label + 1: of
//     <path>/train/labels.txt for every split, so that a split lacking the last classes still agrees
//     with the training split (of the split's own labels where <path>/train does not exist).
//
// Images are decoded on the worker pool, batch by batch, and become 3-channel RGB of ImageSize×ImageSize.

// folderStyle selects the transforms of an image folder.
type folderStyle int

const (
	styleImageNet folderStyle = iota // random-resized crop / resize + centre crop
	styleCIFAR                       // resize to size if needed, then pad 4 + crop + flip
)

// isImageFile reports whether the file name has an image extension.
func isImageFile(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".jpg", ".jpeg", ".png":
		return true
	}
	return false
}

// isOtherImageFile reports whether the file name has the extension of an image format nowt does not read (GIF,
// BMP, WebP, TIFF, HEIF, AVIF, JPEG 2000, JPEG XL).
func isOtherImageFile(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".gif", ".bmp", ".webp", ".tif", ".tiff", ".heic", ".heif", ".avif", ".jp2", ".jxl":
		return true
	}
	return false
}

// listDir returns the sorted sub-folders and image files of dir. With otherImages it also lists images in formats
// nowt does not read: in a class folder they are examples, reported as unreadable (skipped with a warning, or
// an error with -strict) rather than silently left out. Other files (notes, hidden files) are left out.
func listDir(dir string, otherImages bool) (dirs, images []string, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("image folder missing or unreadable: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		isDir := e.IsDir()
		if e.Type()&fs.ModeSymlink != 0 { // a linked class folder (a common way to build a subset) counts as one
			info, err := os.Stat(filepath.Join(dir, name))
			switch {
			case err == nil:
				isDir = info.IsDir()
			case !isImageFile(name) && !isOtherImageFile(name): // a broken link to an image is reported when read
				return nil, nil, fmt.Errorf("%s: broken symbolic link (a class folder?): %w; fix or remove it",
					filepath.Join(dir, name), err)
			}
		}
		if isDir {
			dirs = append(dirs, name)
		} else if isImageFile(name) || (otherImages && isOtherImageFile(name)) {
			images = append(images, name)
		}
	}
	slices.Sort(dirs)
	slices.Sort(images)
	return dirs, images, nil
}

// classFiles lists the images of a class folder, relative to it: its own and those of its sub-folders at any
// depth (as torchvision's ImageFolder reads them), in sorted order, a folder's images before its sub-folders'.
// Hidden files and folders are left out, and a folder reached a second time (a symbolic link back up the tree)
// is read once.
func classFiles(dir string) ([]string, error) {
	var files []string
	seen := map[string]bool{}
	var walk func(rel string) error
	walk = func(rel string) error {
		full := filepath.Join(dir, rel)
		real, err := filepath.EvalSymlinks(full)
		if err != nil {
			return fmt.Errorf("%s: %w", full, err)
		}
		if seen[real] {
			return nil
		}
		seen[real] = true
		subdirs, images, err := listDir(full, true)
		if err != nil {
			return err
		}
		for _, f := range images {
			files = append(files, filepath.Join(rel, f))
		}
		for _, d := range subdirs {
			if err := walk(filepath.Join(rel, d)); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(""); err != nil {
		return nil, err
	}
	return files, nil
}

// folderExamples lists the examples of one split.
func folderExamples(root, split, labelFile string) (paths []string, labels []int32, classes []string, err error) {
	dir := filepath.Join(root, split)
	dirs, images, err := listDir(dir, false)
	if err != nil {
		wanted := fmt.Sprintf("the data folder (-data) must hold one sub-folder per split, here %s/, of class folders "+
			"of images (or of images with a labels.txt)", split)
		if st, serr := os.Stat(root); serr == nil && !st.IsDir() {
			return nil, nil, nil, fmt.Errorf("%s is a file, not a folder: %s", root, wanted)
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, nil, fmt.Errorf("%w: %s", err, wanted)
		}
		return nil, nil, nil, err
	}
	if split != "train" {
		classes = trainClasses(root)
	}
	if len(dirs) > 0 { // class folders
		if classes == nil {
			classes = dirs
		}
		index := map[string]int32{}
		for i, c := range classes {
			index[c] = int32(i)
		}
		for _, c := range dirs {
			label, ok := index[c]
			if !ok {
				return nil, nil, nil, fmt.Errorf("%s: class folder %q is not a class of %s: labels follow the training split's "+
					"classes, so add the class there or remove the folder", dir, c, filepath.Join(root, "train"))
			}
			files, err := classFiles(filepath.Join(dir, c))
			if err != nil {
				return nil, nil, nil, err
			}
			if !slices.ContainsFunc(files, isImageFile) {
				return nil, nil, nil, fmt.Errorf("%s: empty class folder: no .jpg, .jpeg or .png files: add its images or "+
					"remove the folder", filepath.Join(dir, c))
			}
			for _, f := range files {
				paths = append(paths, filepath.Join(dir, c, f))
				labels = append(labels, label)
			}
		}
		return paths, labels, classes, nil
	}
	if len(images) == 0 {
		return nil, nil, nil, fmt.Errorf("%s: no class folders and no .jpg, .jpeg or .png files", dir)
	}
	if labelFile == "" {
		labelFile = filepath.Join(dir, "labels.txt")
	}
	return readLabelFile(dir, labelFile, classes)
}

// trainClasses returns the class list of <root>/train, which the other splits' labels follow so that they agree
// with the training split's: its class folders or, for a flat training split, the class indices 0 to the largest
// label of its labels.txt. It returns nil where <root>/train does not exist or cannot be read (opening the training
// split reports that).
func trainClasses(root string) []string {
	dir := filepath.Join(root, "train")
	dirs, images, err := listDir(dir, false)
	switch {
	case err != nil:
		return nil
	case len(dirs) > 0:
		return dirs
	case len(images) == 0:
		return nil
	}
	labelFile := filepath.Join(dir, "labels.txt")
	data, err := os.ReadFile(labelFile)
	if err != nil {
		return nil
	}
	entries, err := parseLabelFile(labelFile, data, nil)
	if err != nil {
		return nil
	}
	return indexClasses(entries)
}

// labelEntry is one line of a label file: the image file (relative to the split folder) and its label.
type labelEntry struct {
	line  int
	file  string
	label int32
}

// parseLabelFile parses the "filename label" lines of a flat split's label file, read from labelFile. A label is
// a name of classes or an integer index (below len(classes) where classes is not nil).
func parseLabelFile(labelFile string, data []byte, classes []string) ([]labelEntry, error) {
	index := map[string]int32{}
	for i, c := range classes {
		index[c] = int32(i)
	}
	var entries []labelEntry
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			return nil, fmt.Errorf("%s:%d: want \"filename label\", got %q", labelFile, n+1, line)
		}
		label, ok := index[fields[1]]
		if !ok {
			v, perr := strconv.Atoi(fields[1])
			limit := 1 << 24
			if classes != nil {
				limit = len(classes)
			}
			switch {
			case perr != nil:
				return nil, fmt.Errorf("%s:%d: label %q is neither a class name nor an integer", labelFile, n+1, fields[1])
			case v < 0 || v >= limit:
				return nil, fmt.Errorf("%s:%d: label %d out of range [0, %d)", labelFile, n+1, v, limit)
			}
			label = int32(v)
		}
		entries = append(entries, labelEntry{line: n + 1, file: fields[0], label: label})
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("%s: label file lists no images", labelFile)
	}
	return entries, nil
}

// indexClasses names the classes of integer labels: "0" to the largest label.
func indexClasses(entries []labelEntry) []string {
	maxLabel := int32(-1)
	for _, e := range entries {
		maxLabel = max(maxLabel, e.label)
	}
	classes := make([]string, maxLabel+1)
	for i := range classes {
		classes[i] = strconv.Itoa(i)
	}
	return classes
}

// readLabelFile reads a "filename label" file for a flat split folder.
func readLabelFile(dir, labelFile string, classes []string) (paths []string, labels []int32, _ []string, err error) {
	data, err := os.ReadFile(labelFile)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s: flat image folder needs a label file: %w", dir, err)
	}
	entries, err := parseLabelFile(labelFile, data, classes)
	if err != nil {
		return nil, nil, nil, err
	}
	for _, e := range entries {
		p := filepath.Join(dir, filepath.FromSlash(e.file))
		if _, err := os.Stat(p); err != nil {
			return nil, nil, nil, fmt.Errorf("%s:%d: image file missing: %w", labelFile, e.line, err)
		}
		paths = append(paths, p)
		labels = append(labels, e.label)
	}
	if classes == nil {
		classes = indexClasses(entries)
	}
	return paths, labels, classes, nil
}

func openImageFolder(path, split string, opts Options) (*source, error) {
	if err := checkSplit(split, "train", "val", "test"); err != nil {
		return nil, err
	}
	if path == "" {
		return nil, &SettingError{Setting: "-data", Err: errors.New("imagefolder needs -data: the folder holding train/<class>/ and val/ (the ILSVRC-2012 layout)")}
	}
	size := opts.ImageSize
	if size == 0 {
		size = 224
	}
	return newFolderSource("imagefolder", path, split, opts.LabelFile, size, styleImageNet)
}

func newFolderSource(name, root, split, labelFile string, size int, style folderStyle) (*source, error) {
	paths, labels, classes, err := folderExamples(root, split, labelFile)
	if err != nil {
		return nil, err
	}
	mean, std := normalizationFor(name)
	return &source{
		n: len(paths), h: size, w: size, c: 3, numClasses: len(classes), classNames: classes, labels: labels,
		mean: mean, std: std, limitShuffle: true,
		load: func(i int, dst []float32, rng *rand.Rand) error {
			data, err := readImageFile(paths[i])
			if err != nil {
				return fmt.Errorf("%s: %w: %v", paths[i], errCorrupt, err)
			}
			return decodeTransform(paths[i], data, size, style, dst, rng)
		},
	}, nil
}

// maxImageFileBytes bounds the size of an image file read whole (a JPEG or PNG of maxImagePixels is far smaller).
const maxImageFileBytes = 1 << 30

// readImageFile reads an image file whole. Anything but a regular file (a named pipe, a device, reached by name or
// through a link), which reading could block on or never finish, and a file larger than maxImageFileBytes are
// errors, saying what to do.
func readImageFile(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if t := st.Mode().Type(); !t.IsRegular() {
		kind := "a special file"
		switch {
		case t&fs.ModeDir != 0:
			kind = "a folder"
		case t&fs.ModeNamedPipe != 0:
			kind = "a named pipe"
		case t&fs.ModeDevice != 0, t&fs.ModeCharDevice != 0:
			kind = "a device"
		case t&fs.ModeSocket != 0:
			kind = "a socket"
		}
		return nil, fmt.Errorf("%s, not a regular file: remove it from the image folder", kind)
	}
	if st.Size() > maxImageFileBytes {
		return nil, fmt.Errorf("%d bytes is larger than any image nowt reads (%d bytes at most): remove it from the "+
			"image folder", st.Size(), maxImageFileBytes)
	}
	return os.ReadFile(path)
}

// transformImage applies the training (rng != nil) or evaluation transform of the style to a decoded
// RGB image, writing size×size×3 values in [0,1] to dst.
func transformImage(pix []uint8, w, h, size int, style folderStyle, dst []float32, rng *rand.Rand) {
	switch style {
	case styleCIFAR:
		if w == size && h == size {
			if rng == nil {
				toFloat(pix, dst)
			} else {
				padCropFlip(pix, size, size, 3, max(1, size/8), 1.0/255, dst, rng)
			}
			return
		}
		if rng == nil {
			resizeBilinear(pix, w, h, box{0, 0, float64(w), float64(h)}, size, size, false, dst)
			return
		}
		tmp := make([]float32, size*size*3)
		resizeBilinear(pix, w, h, box{0, 0, float64(w), float64(h)}, size, size, false, tmp)
		padCropFlip(tmp, size, size, 3, max(1, size/8), 1, dst, rng)
	default:
		if rng == nil {
			resizeBilinear(pix, w, h, centerCropBox(w, h), size, size, false, dst)
			return
		}
		b := randomResizedCropBox(w, h, rng)
		flip := rng.IntN(2) == 1
		resizeBilinear(pix, w, h, b, size, size, flip, dst)
	}
}
