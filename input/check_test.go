package input

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCheckAndSkip: Check names every unreadable image of a split; the pipeline with SkipCorrupt skips the same
// files, calling OnSkip once per file however many epochs read it.
func TestCheckAndSkip(t *testing.T) {
	root := t.TempDir()
	writeFolderTree(t, root)
	bad := []string{filepath.Join(root, "train", "ant", "empty.png"), filepath.Join(root, "train", "ant", "photo.gif"),
		filepath.Join(root, "train", "cat", "junk.jpg"), filepath.Join(root, "train", "cat", "scan.tiff")}
	writeFile(t, bad[0], nil)
	writeFile(t, bad[1], []byte("GIF89a\x01\x00\x01\x00"))
	writeFile(t, bad[2], []byte("\xff\xd8\xff not a jpeg"))
	writeFile(t, bad[3], []byte("not really a tiff"))
	writeFile(t, filepath.Join(root, "train", "cat", "notes.txt"), []byte("not an image: not an example"))
	writeFile(t, filepath.Join(root, "train", "cat", ".DS_Store"), []byte("hidden: not an example"))
	var reported []string
	checked, failed, err := Check("imagefolder", root, "train", Options{ImageSize: 8, Workers: 2}, func(err error) {
		reported = append(reported, err.Error())
	})
	require.NoError(t, err)
	require.Equal(t, 13, checked)
	require.Equal(t, 4, failed)
	require.Len(t, reported, 4)
	for i, want := range []string{"", "not a JPEG or PNG image (a GIF image): nowt reads only JPEG and PNG", "",
		"not a JPEG or PNG image (unknown content)"} {
		require.Contains(t, reported[i], bad[i])
		require.Contains(t, reported[i], want)
	}

	var skipped []string
	ds := openT(t, "imagefolder", root, "train", Options{BatchSize: 4, ImageSize: 8, SkipCorrupt: true,
		OnSkip: func(err error) { skipped = append(skipped, err.Error()) }})
	for range 2 {
		epoch(t, ds)
		ds.Reset()
	}
	require.Equal(t, 4, ds.Skipped())
	require.Len(t, skipped, 4, "one warning per file")

	_, _, err = Check("imagefolder", filepath.Join(root, "nope"), "train", Options{}, nil)
	require.ErrorContains(t, err, "nope")
	require.NoError(t, os.RemoveAll(bad[0]))
}
