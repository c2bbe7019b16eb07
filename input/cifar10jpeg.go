package input

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// CIFAR10JPEGArchiveName is the file name of the CIFAR-10 JPEG copy (train/<class>/NNNN.jpg and
// test/<class>/NNNN.jpg inside a gzipped tar).
const CIFAR10JPEGArchiveName = "cifar10-jpeg.tar.gz"

// CacheDir is nowt's cache folder: $NOWT_CACHE if set, else os.UserCacheDir()/nowt.
func CacheDir() (string, error) {
	if d := os.Getenv("NOWT_CACHE"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache folder: set NOWT_CACHE: %w", err)
	}
	return filepath.Join(d, "nowt"), nil
}

// CIFAR10JPEGDir is where the CIFAR-10 JPEG copy is extracted: CacheDir()/cifar10-jpeg.
func CIFAR10JPEGDir() (string, error) {
	d, err := CacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "cifar10-jpeg"), nil
}

// DefaultCIFAR10JPEGArchive locates the CIFAR-10 JPEG archive: $NOWT_CIFAR10_JPEG if set, else the first
// shared/data/cifar10-jpeg.tar.gz found in the current folder or one of its parents.
func DefaultCIFAR10JPEGArchive() (string, error) {
	if p := os.Getenv("NOWT_CIFAR10_JPEG"); p != "" {
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("locating %s: %w", CIFAR10JPEGArchiveName, err)
	}
	for {
		p := filepath.Join(dir, "shared", "data", CIFAR10JPEGArchiveName)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%s not found in shared/data of the current folder or its parents; set NOWT_CIFAR10_JPEG", CIFAR10JPEGArchiveName)
		}
		dir = parent
	}
}

// EnsureCIFAR10JPEG returns the folder of the extracted CIFAR-10 JPEG copy (CIFAR10JPEGDir), extracting
// archive there first if the folder does not exist yet (archive "" = DefaultCIFAR10JPEGArchive). With archive
// "", an existing folder is used as is. A named archive must exist, and an existing folder is used for it only
// if it was extracted from an archive of the same size (a copy of the same file; a folder extracted by hand or
// by an older nowt records no size and is used as is): a run never trains on another archive's images than the
// one it names.
func EnsureCIFAR10JPEG(archive string) (string, error) {
	dest, err := CIFAR10JPEGDir()
	if err != nil {
		return "", err
	}
	var archiveSize int64
	if archive != "" {
		st, err := os.Stat(archive)
		if err != nil {
			return "", fmt.Errorf("the CIFAR-10 JPEG archive %s: %w (name an existing %s, or give no path to use "+
				"the extracted copy in %s or shared/data's archive)", archive, err, CIFAR10JPEGArchiveName, dest)
		}
		archiveSize = st.Size()
	}
	if st, err := os.Stat(dest); err == nil && st.IsDir() {
		if archive != "" {
			if m, ok := readManifest(dest); ok && m.ArchiveSize > 0 && m.ArchiveSize != archiveSize {
				return "", fmt.Errorf("the extracted copy %s came from %s (%d bytes), not from %s (%d bytes): "+
					"delete %s to extract %s instead, or give no path to train on the copy",
					dest, m.Archive, m.ArchiveSize, archive, archiveSize, dest, archive)
			}
		}
		return dest, nil
	}
	if archive == "" {
		if archive, err = DefaultCIFAR10JPEGArchive(); err != nil {
			return "", err
		}
	}
	if err := ExtractTarGz(archive, dest); err != nil {
		return "", err
	}
	return dest, nil
}

// ExtractTarGz extracts the gzipped tar archive into the folder dest, atomically: it extracts into a
// temporary folder beside dest and renames it to dest, so dest either does not exist or is complete.
// If dest already exists (for example extracted concurrently by another process) it is left as is.
// Only regular files and folders are extracted; entries with absolute paths or ".." are an error, and so is an
// archive cut short or damaged (its gzip checksum is checked, also where the tar end marker comes first). dest also
// receives a record of the archive and of how many files each top-level folder got (.nowt-extracted.json), which
// the cifar10-jpeg reader checks the copy against before each run.
func ExtractTarGz(archive, dest string) error {
	if _, err := os.Stat(dest); err == nil {
		return nil
	}
	parent := filepath.Dir(dest)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("extracting %s: %w", archive, err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dest)+".tmp-*")
	if err != nil {
		return fmt.Errorf("extracting %s: %w", archive, err)
	}
	counts, err := extractInto(archive, tmp)
	if err == nil {
		err = writeManifest(tmp, archive, counts)
	}
	if err != nil {
		_ = os.RemoveAll(tmp)
		return err
	}
	if err := os.Rename(tmp, dest); err != nil {
		_ = os.RemoveAll(tmp)
		if st, serr := os.Stat(dest); serr == nil && st.IsDir() {
			return nil // someone else won the race
		}
		return fmt.Errorf("extracting %s: %w", archive, err)
	}
	return nil
}

// extractInto extracts the gzipped tar archive into dir and returns how many files it wrote under each top-level
// folder.
func extractInto(archive, dir string) (map[string]int, error) {
	f, err := os.Open(archive)
	if err != nil {
		return nil, fmt.Errorf("opening archive: %w", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: not a gzip archive: %w", archive, err)
	}
	src := &readErrors{r: zr}
	tr := tar.NewReader(src)
	counts := map[string]int{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			// The tar end marker can come before the end of the gzip stream: read it to the end, which checks
			// its checksum, so that a corrupt or truncated archive is not taken for a whole one.
			if _, err := io.Copy(io.Discard, zr); err != nil {
				return nil, corruptArchive(archive, "", err)
			}
			return counts, nil
		}
		if err != nil {
			return nil, corruptArchive(archive, "", err)
		}
		name := path.Clean(strings.TrimPrefix(hdr.Name, "./"))
		if name == "." {
			continue
		}
		if path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return nil, fmt.Errorf("%s: unsafe path %q in archive", archive, hdr.Name)
		}
		target := filepath.Join(dir, filepath.FromSlash(name))
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return nil, fmt.Errorf("%s: %w", archive, err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return nil, fmt.Errorf("%s: %w", archive, err)
			}
			out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", archive, err)
			}
			src.err = nil
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if src.err != nil { // reading the archive failed, not writing the file
				return nil, corruptArchive(archive, hdr.Name, err)
			}
			if err != nil {
				return nil, fmt.Errorf("%s: extracting %s: %w", archive, hdr.Name, err)
			}
			top, _, _ := strings.Cut(name, "/")
			counts[top]++
		}
	}
}

// readErrors is a reader that remembers its last error other than io.EOF, to tell a corrupt archive from a
// failed write when a copy out of it fails.
type readErrors struct {
	r   io.Reader
	err error
}

func (r *readErrors) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

// corruptArchive is the error of an archive whose content cannot be read (cut short by an interrupted download or
// copy, or damaged), at the entry named (or "" between entries).
func corruptArchive(archive, entry string, err error) error {
	if entry != "" {
		return fmt.Errorf("%s: corrupt or truncated archive (at %s): %w: download or copy it again", archive, entry, err)
	}
	return fmt.Errorf("%s: corrupt or truncated archive: %w: download or copy it again", archive, err)
}

// openCIFAR10JPEG opens the CIFAR-10 JPEG copy as an image folder with CIFAR transforms. path "" uses
// (and if needed extracts) the cache; a path ending in .tar.gz or .tgz is an archive to extract to the
// cache; any other path is the extracted folder holding train/ and test/.
func openCIFAR10JPEG(p, split string, opts Options) (*source, error) {
	if err := checkSplit(split, "train", "test"); err != nil {
		return nil, err
	}
	if p == "" || strings.HasSuffix(p, ".tar.gz") || strings.HasSuffix(p, ".tgz") {
		var err error
		if p, err = EnsureCIFAR10JPEG(p); err != nil {
			return nil, err
		}
		if err := checkExtracted(p, split); err != nil {
			return nil, err
		}
	}
	size := opts.ImageSize
	if size == 0 {
		size = 32
	}
	return newFolderSource("cifar10-jpeg", p, split, opts.LabelFile, size, styleCIFAR)
}

// manifestName is the file ExtractTarGz leaves in the folder it extracted: the archive and how many files each
// top-level folder received, so that a later run can tell when files were removed from (or added to) the copy.
const manifestName = ".nowt-extracted.json"

type manifest struct {
	Archive     string         `json:"archive"`
	ArchiveSize int64          `json:"archive_size,omitempty"` // bytes; 0 in records written before nowt kept it
	Files       map[string]int `json:"files"`
}

func writeManifest(dir, archive string, counts map[string]int) error {
	m := manifest{Archive: archive, Files: counts}
	if st, err := os.Stat(archive); err == nil {
		m.ArchiveSize = st.Size()
	}
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, manifestName), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("extracting %s: %w", archive, err)
	}
	return nil
}

// readManifest reads the record ExtractTarGz left in dir; ok is false where there is none or it cannot be read.
func readManifest(dir string) (m manifest, ok bool) {
	data, err := os.ReadFile(filepath.Join(dir, manifestName))
	if err != nil {
		return manifest{}, false
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return manifest{}, false
	}
	return m, true
}

// checkExtracted compares the files under dir/split with the count ExtractTarGz recorded when it extracted dir,
// so that a run never trains or evaluates on a copy that lost files since (a cache cleaner, a hand-made subset)
// without saying so. A folder without a record (extracted by hand, or by an older nowt) is not checked.
func checkExtracted(dir, split string) error {
	m, ok := readManifest(dir)
	if !ok || m.Files == nil {
		return nil
	}
	want := m.Files[split]
	got := 0
	err := filepath.WalkDir(filepath.Join(dir, split), func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			got++
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("checking the extracted copy %s: %w", dir, err)
	}
	if got != want {
		return fmt.Errorf("the extracted copy %s holds %d files under %s/, where %d were extracted from %s: files were "+
			"removed or added since; delete %s to extract it again", dir, got, split, want, m.Archive, dir)
	}
	return nil
}
