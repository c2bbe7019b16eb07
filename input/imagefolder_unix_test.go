//go:build unix

package input

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSpecialImageFiles: a class-folder entry that is not a regular file (reading a named pipe blocks until
// something writes to it, reading /dev/zero never ends) or is larger than any image is reported as unreadable,
// naming it, instead of hanging or exhausting memory.
func TestSpecialImageFiles(t *testing.T) {
	for _, tc := range []struct {
		name    string
		make    func(t *testing.T, path string)
		message string
	}{
		{"named pipe", func(t *testing.T, path string) { require.NoError(t, syscall.Mkfifo(path, 0o644)) },
			"a named pipe, not a regular file: remove it from the image folder"},
		{"link to a device", func(t *testing.T, path string) {
			if _, err := os.Stat("/dev/zero"); err != nil {
				t.Skip("no /dev/zero")
			}
			require.NoError(t, os.Symlink("/dev/zero", path))
		}, "a device, not a regular file: remove it from the image folder"},
		{"larger than any image", func(t *testing.T, path string) {
			writeFile(t, path, nil)
			require.NoError(t, os.Truncate(path, 1<<30+1)) // sparse: takes no space
		}, "1073741825 bytes is larger than any image nowt reads (1073741824 bytes at most)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			writeFile(t, filepath.Join(root, "train", "a", "good.jpg"), encodeJPEG(t, patternImage(16, 16, 1)))
			special := filepath.Join(root, "train", "a", "special.jpg")
			tc.make(t, special)
			var errs []error
			done := make(chan struct{})
			go func() {
				defer close(done)
				checked, failed, err := Check("imagefolder", root, "train", Options{ImageSize: 8, Workers: 1},
					func(err error) { errs = append(errs, err) })
				assert.NoError(t, err)
				assert.Equal(t, []int{2, 1}, []int{checked, failed})
			}()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("Check did not return: it hangs on " + special)
			}
			require.Len(t, errs, 1)
			assert.ErrorIs(t, errs[0], errCorrupt)
			assert.ErrorContains(t, errs[0], special+": corrupt image: "+tc.message)
		})
	}
}
