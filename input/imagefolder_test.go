package input

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"image/color"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var folderColors = map[string]color.RGBA{
	"cat": {200, 10, 10, 255}, "ant": {10, 200, 10, 255}, "bee": {10, 10, 200, 255},
}

// writeFolderTree writes train/<class>/ with 2 PNGs + 1 JPEG per class (classes unsorted on purpose), a
// val split with class folders and a flat "flat" split with labels.txt.
func writeFolderTree(t testing.TB, root string) {
	for _, class := range []string{"cat", "ant", "bee"} {
		c := folderColors[class]
		writeFile(t, filepath.Join(root, "train", class, "a.png"), encodePNG(t, solidImage(40, 30, c)))
		writeFile(t, filepath.Join(root, "train", class, "b.PNG"), encodePNG(t, solidImage(20, 50, c)))
		writeFile(t, filepath.Join(root, "train", class, "c.jpg"), encodeJPEG(t, patternImage(48, 36, len(class))))
		writeFile(t, filepath.Join(root, "train", class, "notes.txt"), []byte("ignored"))
		writeFile(t, filepath.Join(root, "val", class, "v.png"), encodePNG(t, solidImage(33, 33, c)))
	}
	writeFile(t, filepath.Join(root, "flat", "x1.png"), encodePNG(t, solidImage(30, 30, folderColors["bee"])))
	writeFile(t, filepath.Join(root, "flat", "x2.jpeg"), encodeJPEG(t, patternImage(30, 30, 1)))
	writeFile(t, filepath.Join(root, "flat", "labels.txt"), []byte("# file label\nx1.png bee\nx2.jpeg 2\n"))
}

func TestImageFolder(t *testing.T) {
	root := t.TempDir()
	writeFolderTree(t, root)
	ds := openT(t, "imagefolder", root, "train", Options{BatchSize: 4, ImageSize: 16, Workers: 2})
	assert.Equal(t, []string{"ant", "bee", "cat"}, ds.ClassNames())
	assert.Equal(t, 9, ds.NumExamples())
	h, w, c := ds.ImageShape()
	assert.Equal(t, []int{16, 16, 3}, []int{h, w, c})
	bs := epoch(t, ds)
	require.Len(t, bs, 3)
	assert.Equal(t, []int{4, 16, 16, 3}, bs[0].dims)
	assert.Equal(t, []int32{0, 0, 0, 1}, bs[0].labels)
	// Example 0 is train/ant/a.png, solid: every output pixel is its colour.
	for p := range 16 * 16 {
		assert.InDelta(t, 10.0/255, bs[0].images[3*p], 1e-6)
		assert.InDelta(t, 200.0/255, bs[0].images[3*p+1], 1e-6)
	}

	val := openT(t, "imagefolder", root, "val", Options{BatchSize: 3, ImageSize: 8})
	vb := epoch(t, val)
	require.Len(t, vb, 1)
	assert.Equal(t, []int32{0, 1, 2}, vb[0].labels)

	// Flat split with a label file ("test" folder name is the split; use LabelFile for a custom path).
	require.NoError(t, os.Rename(filepath.Join(root, "flat"), filepath.Join(root, "test")))
	flat := openT(t, "imagefolder", root, "test", Options{BatchSize: 2, ImageSize: 8})
	fb := epoch(t, flat)
	require.Len(t, fb, 1)
	assert.Equal(t, []int32{1, 2}, fb[0].labels)
	assert.InDelta(t, 200.0/255, fb[0].images[2], 1e-6)
}

func TestImageFolderAugmentShapes(t *testing.T) {
	root := t.TempDir()
	writeFolderTree(t, root)
	ds := openT(t, "imagefolder", root, "train", Options{BatchSize: 3, ImageSize: 24, Augment: true, Normalize: true, Shuffle: true, DropRemainder: true})
	for _, b := range epoch(t, ds) {
		assert.Equal(t, []int{3, 24, 24, 3}, b.dims)
	}
}

func TestImageFolderErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		setup   func(root string, t *testing.T)
		split   string
		file    string
		message string
	}{
		{"missing folder", func(string, *testing.T) {}, "train", "train", "image folder missing"},
		{"missing folder says what -data holds", func(string, *testing.T) {}, "train", "train",
			"the data folder (-data) must hold one sub-folder per split, here train/"},
		{"data folder is a file", func(root string, t *testing.T) {
			require.NoError(t, os.RemoveAll(root))
			writeFile(t, root, []byte("not a folder"))
		}, "train", "", "is a file, not a folder: the data folder (-data) must hold one sub-folder per split, here train/"},
		{"empty class", func(root string, t *testing.T) {
			writeFolderTree(t, root)
			require.NoError(t, os.MkdirAll(filepath.Join(root, "train", "dog"), 0o755))
		}, "train", "train/dog", "empty class folder: no .jpg, .jpeg or .png files: add its images or remove the folder"},
		{"unknown val class", func(root string, t *testing.T) {
			writeFolderTree(t, root)
			writeFile(t, filepath.Join(root, "val", "emu", "e.png"), encodePNG(t, solidImage(4, 4, color.RGBA{})))
		}, "val", "val", `class folder "emu" is not a class of `},
		{"unknown val class says what to do", func(root string, t *testing.T) {
			writeFolderTree(t, root)
			writeFile(t, filepath.Join(root, "val", "emu", "e.png"), encodePNG(t, solidImage(4, 4, color.RGBA{})))
		}, "val", "train", `: labels follow the training split's classes, so add the class there or remove the folder`},
		{"no label file", func(root string, t *testing.T) {
			writeFile(t, filepath.Join(root, "val", "x.png"), encodePNG(t, solidImage(4, 4, color.RGBA{})))
		}, "val", "val/labels.txt", "flat image folder needs a label file"},
		{"label out of range", func(root string, t *testing.T) {
			writeFolderTree(t, root)
			writeFile(t, filepath.Join(root, "test", "x.png"), encodePNG(t, solidImage(4, 4, color.RGBA{})))
			writeFile(t, filepath.Join(root, "test", "labels.txt"), []byte("x.png 3\n"))
		}, "test", "test/labels.txt:1", "label 3 out of range [0, 3)"},
		{"bad label", func(root string, t *testing.T) {
			writeFolderTree(t, root)
			writeFile(t, filepath.Join(root, "test", "x.png"), encodePNG(t, solidImage(4, 4, color.RGBA{})))
			writeFile(t, filepath.Join(root, "test", "labels.txt"), []byte("x.png emu\n"))
		}, "test", "test/labels.txt:1", `label "emu" is neither a class name nor an integer`},
		{"broken class link", func(root string, t *testing.T) {
			writeFolderTree(t, root)
			require.NoError(t, os.Symlink(filepath.Join(root, "nowhere"), filepath.Join(root, "train", "dog")))
		}, "train", "train/dog", "broken symbolic link"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			tc.setup(root, t)
			_, err := Open("imagefolder", root, tc.split, Options{BatchSize: 1})
			require.Error(t, err)
			assert.Contains(t, err.Error(), filepath.Join(root, tc.file))
			assert.Contains(t, err.Error(), tc.message)
		})
	}
}

func TestCorruptImages(t *testing.T) {
	good := encodeJPEG(t, patternImage(64, 64, 0))
	for _, tc := range []struct {
		name    string
		data    []byte
		message string
	}{
		{"truncated jpeg", good[:len(good)*3/4], "corrupt image: jpeg: invalid JPEG format"},
		{"garbage", []byte("this is not an image"), "corrupt image: not a JPEG or PNG image (unknown content)"},
		{"truncated png", encodePNG(t, patternImage(20, 20, 1))[:60], "corrupt image: png"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for i := range 4 {
				writeFile(t, filepath.Join(root, "train", "a", string(rune('0'+i))+".jpg"), good)
			}
			bad := filepath.Join(root, "train", "a", "2.jpg")
			writeFile(t, bad, tc.data)

			ds := openT(t, "imagefolder", root, "train", Options{BatchSize: 4, ImageSize: 8, Workers: 2})
			_, err := yieldBatch(t, ds)
			require.Error(t, err)
			assert.Contains(t, err.Error(), bad)
			assert.Contains(t, err.Error(), tc.message)

			// SkipCorrupt without DropRemainder: a shorter batch.
			ds = openT(t, "imagefolder", root, "train", Options{BatchSize: 4, ImageSize: 8, SkipCorrupt: true})
			bs := epoch(t, ds)
			require.Len(t, bs, 1)
			assert.Len(t, bs[0].labels, 3)
			assert.Equal(t, 1, ds.Skipped())
			ds.Reset()
			epoch(t, ds)
			assert.Equal(t, 1, ds.Skipped(), "distinct files are counted once")

			// With DropRemainder the batch keeps its size, refilled with its first valid example.
			ds = openT(t, "imagefolder", root, "train", Options{BatchSize: 4, ImageSize: 8, SkipCorrupt: true, DropRemainder: true})
			bs = epoch(t, ds)
			require.Len(t, bs, 1)
			assert.Equal(t, []int{4, 8, 8, 3}, bs[0].dims)
			assert.Equal(t, bs[0].images[:192], bs[0].images[3*192:])
		})
	}
}

// TestEveryImageCorrupt: an epoch in which every image is skipped as corrupt is an error that says so, not an
// empty epoch (which a training loop reports as "reached the end of the dataset after 0 steps").
func TestEveryImageCorrupt(t *testing.T) {
	root := t.TempDir()
	for i := range 4 {
		writeFile(t, filepath.Join(root, "train", "a", string(rune('0'+i))+".jpg"), []byte("not an image"))
	}
	ds := openT(t, "imagefolder", root, "train", Options{BatchSize: 2, ImageSize: 8, SkipCorrupt: true})
	_, _, _, err := ds.Yield()
	require.Error(t, err)
	require.NotErrorIs(t, err, io.EOF)
	require.ErrorContains(t, err, "every example of the epoch is unreadable (4 files skipped")
	require.ErrorContains(t, err, "nowt check")
}

func writeTarGz(t testing.TB, path string, files map[string][]byte) {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	tw := tar.NewWriter(zw)
	for name, data := range files {
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}))
		_, err := tw.Write(data)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	require.NoError(t, zw.Close())
	writeFile(t, path, b.Bytes())
}

func TestCIFAR10JPEGExtract(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("NOWT_CACHE", cache)
	archive := filepath.Join(t.TempDir(), CIFAR10JPEGArchiveName)
	img := encodeJPEG(t, patternImage(32, 32, 3))
	writeTarGz(t, archive, map[string][]byte{
		"train/cat/0000.jpg": img, "train/cat/0001.jpg": img, "train/airplane/0000.jpg": img,
		"test/cat/0000.jpg": img, "test/airplane/0000.jpg": img,
	})
	ds := openT(t, "cifar10-jpeg", archive, "train", Options{BatchSize: 3, Augment: true, Normalize: true})
	assert.Equal(t, []string{"airplane", "cat"}, ds.ClassNames())
	h, w, c := ds.ImageShape()
	assert.Equal(t, []int{32, 32, 3}, []int{h, w, c})
	assert.Len(t, epoch(t, ds), 1)
	assert.DirExists(t, filepath.Join(cache, "cifar10-jpeg", "test", "airplane"))
	entries, err := os.ReadDir(cache)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary folders left behind")

	// Second open uses the cache (path "" finds it without an archive).
	test := openT(t, "cifar10-jpeg", "", "test", Options{BatchSize: 2})
	assert.Equal(t, 2, test.NumExamples())

	// A named archive must exist, even where a copy is extracted: the error names it.
	missing := filepath.Join(t.TempDir(), "missing.tar.gz")
	_, err = Open("cifar10-jpeg", missing, "train", Options{BatchSize: 1})
	require.ErrorContains(t, err, "the CIFAR-10 JPEG archive "+missing)
	require.ErrorIs(t, err, fs.ErrNotExist)
	// A copy of the same archive elsewhere uses the extracted copy.
	data, err := os.ReadFile(archive)
	require.NoError(t, err)
	same := filepath.Join(t.TempDir(), "copy.tgz")
	writeFile(t, same, data)
	assert.Equal(t, 3, openT(t, "cifar10-jpeg", same, "train", Options{BatchSize: 1}).NumExamples())
	// Another archive is not silently replaced by the copy extracted from the first.
	other := filepath.Join(t.TempDir(), "other.tar.gz")
	writeTarGz(t, other, map[string][]byte{"train/dog/0000.jpg": img, "test/dog/0000.jpg": img})
	_, err = Open("cifar10-jpeg", other, "train", Options{BatchSize: 1})
	require.ErrorContains(t, err, "the extracted copy "+filepath.Join(cache, "cifar10-jpeg")+" came from "+archive)
	require.ErrorContains(t, err, "delete "+filepath.Join(cache, "cifar10-jpeg")+" to extract "+other)

	// A file removed from the copy since it was extracted is an error that says how to extract it again.
	require.NoError(t, os.Remove(filepath.Join(cache, "cifar10-jpeg", "train", "cat", "0001.jpg")))
	_, err = Open("cifar10-jpeg", "", "train", Options{BatchSize: 1})
	require.ErrorContains(t, err, "holds 2 files under train/, where 3 were extracted from "+archive)
	require.ErrorContains(t, err, "delete "+filepath.Join(cache, "cifar10-jpeg")+" to extract it again")
	test = openT(t, "cifar10-jpeg", "", "test", Options{BatchSize: 2}) // the other split is whole
	assert.Equal(t, 2, test.NumExamples())

	// Unsafe archive entries are refused and leave nothing behind.
	bad := filepath.Join(t.TempDir(), "bad.tar.gz")
	writeTarGz(t, bad, map[string][]byte{"../evil.jpg": img})
	dest := filepath.Join(t.TempDir(), "out")
	err = ExtractTarGz(bad, dest)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `unsafe path "../evil.jpg"`)
	assert.NoDirExists(t, dest)
}

// TestImageFolderLinkedClasses: class folders that are symbolic links (a subset built from links into a full copy)
// are classes like real folders, in the same sorted order, with their images.
func TestImageFolderLinkedClasses(t *testing.T) {
	store, root := t.TempDir(), t.TempDir()
	writeFolderTree(t, store)
	require.NoError(t, os.MkdirAll(filepath.Join(root, "train"), 0o755))
	require.NoError(t, os.Symlink(filepath.Join(store, "train", "ant"), filepath.Join(root, "train", "ant")))
	require.NoError(t, os.Rename(filepath.Join(store, "train", "bee"), filepath.Join(root, "train", "bee")))
	require.NoError(t, os.Symlink(filepath.Join(store, "train", "cat"), filepath.Join(root, "train", "cat")))
	ds := openT(t, "imagefolder", root, "train", Options{BatchSize: 3, ImageSize: 8})
	assert.Equal(t, []string{"ant", "bee", "cat"}, ds.ClassNames())
	assert.Equal(t, 9, ds.NumExamples())
	var labels []int32
	for _, b := range epoch(t, ds) {
		labels = append(labels, b.labels...)
	}
	assert.Equal(t, []int32{0, 0, 0, 1, 1, 1, 2, 2, 2}, labels)
}

// TestImageFolderSplitsAgree checks that every split of an image folder has the classes of the training split,
// also where the training split is flat (a labels.txt): a validation split lacking the last classes must not
// give the model fewer outputs than the training labels need.
func TestImageFolderSplitsAgree(t *testing.T) {
	img := func(t *testing.T) []byte { return encodePNG(t, solidImage(4, 4, color.RGBA{1, 2, 3, 255})) }
	flat := func(t *testing.T, dir string, labels ...string) {
		var lines bytes.Buffer
		for i, l := range labels {
			name := "x" + string(rune('a'+i)) + ".png"
			writeFile(t, filepath.Join(dir, name), img(t))
			lines.WriteString(name + " " + l + "\n")
		}
		writeFile(t, filepath.Join(dir, "labels.txt"), lines.Bytes())
	}
	for _, tc := range []struct {
		name    string
		setup   func(root string, t *testing.T)
		classes []string
		labels  []int32
		message string // the error, where one is wanted
	}{
		{"flat train and flat val lacking a class", func(root string, t *testing.T) {
			flat(t, filepath.Join(root, "train"), "0", "1", "2")
			flat(t, filepath.Join(root, "val"), "1", "0")
		}, []string{"0", "1", "2"}, []int32{1, 0}, ""},
		{"flat train and val class folders", func(root string, t *testing.T) {
			flat(t, filepath.Join(root, "train"), "0", "1", "2")
			writeFile(t, filepath.Join(root, "val", "1", "v.png"), img(t))
		}, []string{"0", "1", "2"}, []int32{1}, ""},
		{"val label beyond flat train's classes", func(root string, t *testing.T) {
			flat(t, filepath.Join(root, "train"), "0", "1")
			flat(t, filepath.Join(root, "val"), "2")
		}, nil, nil, "label 2 out of range [0, 2)"},
		{"class-folder train and flat val", func(root string, t *testing.T) {
			writeFolderTree(t, root)
			require.NoError(t, os.RemoveAll(filepath.Join(root, "val")))
			flat(t, filepath.Join(root, "val"), "bee")
		}, []string{"ant", "bee", "cat"}, []int32{1}, ""},
		{"no train: flat val alone", func(root string, t *testing.T) {
			flat(t, filepath.Join(root, "val"), "1", "0")
		}, []string{"0", "1"}, []int32{1, 0}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			tc.setup(root, t)
			ds, err := Open("imagefolder", root, "val", Options{BatchSize: 4, ImageSize: 4})
			if tc.message != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.message)
				return
			}
			require.NoError(t, err)
			t.Cleanup(ds.Close)
			assert.Equal(t, tc.classes, ds.ClassNames())
			assert.Equal(t, len(tc.classes), ds.NumClasses())
			bs := epoch(t, ds)
			require.Len(t, bs, 1)
			assert.Equal(t, tc.labels, bs[0].labels)
		})
	}
}

// TestExtractCorruptArchive: an archive cut short or damaged anywhere, also after the tar end marker (in the gzip
// stream's padding or checksum), is refused with an error that names it and says to fetch it again, and leaves
// no folder behind.
func TestExtractCorruptArchive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "whole.tar.gz")
	writeTarGz(t, path, map[string][]byte{"train/cat/0000.jpg": encodeJPEG(t, patternImage(32, 32, 3))})
	whole, err := os.ReadFile(path)
	require.NoError(t, err)
	n := len(whole)
	badChecksum := bytes.Clone(whole)
	badChecksum[n-8] ^= 0xff // the gzip trailer: CRC-32, then the size
	for _, tc := range []struct {
		name    string
		data    []byte
		message string
	}{
		{"cut in a file", whole[:n/2], "corrupt or truncated archive (at train/cat/0000.jpg): unexpected EOF: download or copy it again"},
		{"cut in the gzip trailer", whole[:n-4], "corrupt or truncated archive: unexpected EOF: download or copy it again"},
		{"bad gzip checksum", badChecksum, "corrupt or truncated archive: gzip: invalid checksum: download or copy it again"},
		{"not gzip", []byte("hello\n"), "not a gzip archive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			archive := filepath.Join(t.TempDir(), CIFAR10JPEGArchiveName)
			writeFile(t, archive, tc.data)
			dest := filepath.Join(t.TempDir(), "out")
			err := ExtractTarGz(archive, dest)
			require.Error(t, err)
			assert.Contains(t, err.Error(), archive+": "+tc.message)
			assert.NoDirExists(t, dest)
		})
	}
}

// TestImageFolderNestedClassFolders: images in sub-folders of a class folder, at any depth, belong to the class
// (as in torchvision's ImageFolder; they were silently left out), hidden folders are not read, a link back up
// the tree does not read a folder twice, and a class folder whose only images sit in a sub-folder is not empty.
func TestImageFolderNestedClassFolders(t *testing.T) {
	root := t.TempDir()
	writeFolderTree(t, root)
	png := encodePNG(t, solidImage(8, 8, folderColors["ant"]))
	writeFile(t, filepath.Join(root, "train", "ant", "day1", "d.png"), png)
	writeFile(t, filepath.Join(root, "train", "ant", "day1", "deeper", "e.png"), png)
	writeFile(t, filepath.Join(root, "train", "ant", ".thumbnails", "t.png"), png)
	require.NoError(t, os.Symlink(filepath.Join(root, "train", "ant"), filepath.Join(root, "train", "ant", "day1", "loop")))
	require.NoError(t, os.RemoveAll(filepath.Join(root, "train", "bee")))
	writeFile(t, filepath.Join(root, "train", "bee", "only", "f.png"), png)

	paths, labels, classes, err := folderExamples(root, "train", "")
	require.NoError(t, err)
	require.Equal(t, []string{"ant", "bee", "cat"}, classes)
	var rel []string
	for _, p := range paths {
		r, err := filepath.Rel(filepath.Join(root, "train"), p)
		require.NoError(t, err)
		rel = append(rel, filepath.ToSlash(r))
	}
	require.Equal(t, []string{"ant/a.png", "ant/b.PNG", "ant/c.jpg", "ant/day1/d.png", "ant/day1/deeper/e.png",
		"bee/only/f.png", "cat/a.png", "cat/b.PNG", "cat/c.jpg"}, rel)
	require.Equal(t, []int32{0, 0, 0, 0, 0, 1, 2, 2, 2}, labels)

	ds := openT(t, "imagefolder", root, "train", Options{BatchSize: 3, ImageSize: 8})
	require.Equal(t, 9, ds.NumExamples())
}
