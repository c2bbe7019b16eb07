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
	bad := []string{filepath.Join(root, "train", "ant", "empty.png"), filepath.Join(root, "train", "cat", "junk.jpg")}
	writeFile(t, bad[0], nil)
	writeFile(t, bad[1], []byte("\xff\xd8\xff not a jpeg"))
	var reported []string
	checked, failed, err := Check("imagefolder", root, "train", Options{ImageSize: 8, Workers: 2}, func(err error) {
		reported = append(reported, err.Error())
	})
	require.NoError(t, err)
	require.Equal(t, 11, checked)
	require.Equal(t, 2, failed)
	require.Len(t, reported, 2)
	require.Contains(t, reported[0], bad[0])
	require.Contains(t, reported[1], bad[1])

	var skipped []string
	ds := openT(t, "imagefolder", root, "train", Options{BatchSize: 4, ImageSize: 8, SkipCorrupt: true,
		OnSkip: func(err error) { skipped = append(skipped, err.Error()) }})
	for range 2 {
		epoch(t, ds)
		ds.Reset()
	}
	require.Equal(t, 2, ds.Skipped())
	require.Len(t, skipped, 2, "one warning per file")

	_, _, err = Check("imagefolder", filepath.Join(root, "nope"), "train", Options{}, nil)
	require.ErrorContains(t, err, "nope")
	require.NoError(t, os.RemoveAll(bad[0]))
}
