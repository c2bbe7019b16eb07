package trainer

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/context/checkpoints"
	"github.com/nowt-ml/nowt/feedback"
)

// checkpointDirName is the checkpoints' folder inside a run's output folder.
const checkpointDirName = "checkpoints"

// saveCheckpointFunc is saveCheckpoint; tests replace it to make a write fail.
var saveCheckpointFunc = saveCheckpoint

// notCheckpointed returns the variables of ctx that checkpoints leave out: the deferral's state of the deferred KP
// B (brought up to date before a checkpoint, run.settleFeedback), and the kernels each step writes anew
// (feedback.SentKernels).
func notCheckpointed(ctx *context.Context) []*context.Variable {
	return append(deferralState(ctx), feedback.SentKernels(ctx)...)
}

// saveCheckpoint writes the context's variables and parameters as a new checkpoint of dir, atomically: GoMLX's
// handler writes into a fresh staging folder, then the data file and, last, the JSON file (whose presence marks
// a complete checkpoint for GoMLX's loader) are renamed into dir. A crash leaves at worst a stray staging
// folder or data file, never a truncated checkpoint. Only the newest keep checkpoints are kept.
func saveCheckpoint(ctx *context.Context, dir string, step int64, keep int) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating the checkpoints folder: %w", err)
	}
	staging, err := os.MkdirTemp(dir, ".staging-")
	if err != nil {
		return "", fmt.Errorf("creating a staging folder for the checkpoint: %w", err)
	}
	defer func() { _ = os.RemoveAll(staging) }()
	handler, err := checkpoints.Build(ctx).Dir(staging).Keep(-1).ExcludeVars(notCheckpointed(ctx)...).Done()
	if err != nil {
		return "", fmt.Errorf("preparing the checkpoint: %w", err)
	}
	if err := handler.Save(); err != nil {
		return "", fmt.Errorf("writing the checkpoint: %w", err)
	}
	written, err := handler.ListCheckpoints()
	if err != nil || len(written) != 1 {
		return "", fmt.Errorf("writing the checkpoint: expected one checkpoint in %s, found %v (%v)", staging, written, err)
	}
	base := fmt.Sprintf(checkpointNameFormat, step, step)
	for _, suffix := range []string{checkpoints.BinDataSuffix, checkpoints.JsonNameSuffix} {
		from := filepath.Join(staging, written[0]+suffix)
		if err := syncFile(from); err != nil {
			return "", err
		}
		if err := os.Rename(from, filepath.Join(dir, base+suffix)); err != nil {
			return "", fmt.Errorf("moving the checkpoint into place: %w", err)
		}
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return filepath.Join(dir, base), pruneCheckpoints(dir, keep)
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("syncing checkpoint file: %w", err)
	}
	defer func() { _ = f.Close() }()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing checkpoint file %s: %w", path, err)
	}
	return nil
}

// listCheckpoints returns the base paths of dir's complete checkpoints, oldest first.
func listCheckpoints(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("listing checkpoints: %w", err)
	}
	var bases []string
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() && strings.HasPrefix(name, "checkpoint-") && strings.HasSuffix(name, checkpoints.JsonNameSuffix) {
			bases = append(bases, filepath.Join(dir, strings.TrimSuffix(name, checkpoints.JsonNameSuffix)))
		}
	}
	sort.Strings(bases)
	return bases, nil
}

// pruneCheckpoints removes all but the newest keep checkpoints.
func pruneCheckpoints(dir string, keep int) error {
	if keep <= 0 {
		return nil
	}
	bases, err := listCheckpoints(dir)
	if err != nil {
		return err
	}
	for len(bases) > keep {
		if err := removeCheckpoint(bases[0]); err != nil {
			return err
		}
		bases = bases[1:]
	}
	return nil
}

// removeCheckpoint removes the checkpoint whose base path is base: JSON first, so that it stops being "complete"
// before its data goes.
func removeCheckpoint(base string) error {
	for _, suffix := range []string{checkpoints.JsonNameSuffix, checkpoints.BinDataSuffix} {
		if err := os.Remove(base + suffix); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("removing old checkpoint: %w", err)
		}
	}
	return nil
}

// pruneOnResume removes all but the newest keep of dir's checkpoints up to loaded, the one a resumed run loaded,
// and returns how many checkpoints dir then holds. A run resumed with a lower -keep (after its disk filled, say)
// so frees the room before it writes its next checkpoint; pruning only after each write needed that room first.
// Checkpoints newer than loaded (ones the loader could not read) are left: the next checkpoint of their step
// replaces them.
func pruneOnResume(dir, loaded string, keep int) (int, error) {
	bases, err := listCheckpoints(dir)
	if err != nil {
		return 0, err
	}
	i := slices.Index(bases, checkpointBase(loaded))
	if i < 0 || keep <= 0 {
		return len(bases), nil
	}
	drop := max(0, i+1-keep)
	for _, base := range bases[:drop] {
		if err := removeCheckpoint(base); err != nil {
			return 0, err
		}
	}
	return len(bases) - drop, nil
}

// loadCheckpoint attaches dir's newest readable checkpoint to ctx (GoMLX loads variables as the graphs create
// them) and returns its base path. A newest checkpoint that cannot be read (truncated, corrupt) is skipped with
// a warning on notices and the previous one is used; it fails if dir has no readable checkpoint.
func loadCheckpoint(ctx *context.Context, dir string, notices io.Writer) (string, error) {
	bases, err := listCheckpoints(dir)
	if err != nil {
		return "", err
	}
	if len(bases) == 0 {
		if last, planned, ok := finishedLog(filepath.Dir(dir)); ok {
			return "", fmt.Errorf("no checkpoint in %s: the run finished (its metrics log reaches step %d of %d) and "+
				"its checkpoints are gone, so it can be neither resumed nor evaluated; nowt report on the folder above "+
				"it reports the run from its log", dir, last, planned)
		}
		return "", fmt.Errorf("no checkpoint in %s: nothing to resume or evaluate (train first, or check -out)", dir)
	}
	var failures []string
	for i := len(bases) - 1; i >= 0; i-- {
		err := loadCheckpointFile(ctx, bases[i])
		if err == nil {
			return bases[i], nil
		}
		failures = append(failures, err.Error())
		if i > 0 {
			fmt.Fprintf(notices, "warning: %v; falling back to the previous checkpoint, %s\n", err, filepath.Base(bases[i-1]))
		}
	}
	// Without checkpoints, nowt train starts an unfinished run anew in its folder but refuses a finished one's.
	anew := "delete its checkpoints/ and train without -resume"
	if _, _, finished := finishedLog(filepath.Dir(dir)); finished {
		anew = fmt.Sprintf("delete the run's folder, %s, and train there anew", filepath.Dir(dir))
	}
	return "", fmt.Errorf("no readable checkpoint in %s: %s; the run cannot continue from this folder: train it "+
		"again into a new -out (or %s)", dir, strings.Join(failures, "; "), anew)
}

// checkpointBase returns a checkpoint's base path (its files' path without .json or .bin) from the path of either
// file or the base itself.
func checkpointBase(path string) string {
	return strings.TrimSuffix(strings.TrimSuffix(path, checkpoints.JsonNameSuffix), checkpoints.BinDataSuffix)
}

// loadCheckpointFile attaches the checkpoint whose base path (without .json or .bin) is base to ctx. Nothing is
// attached if it cannot be read whole.
func loadCheckpointFile(ctx *context.Context, base string) (err error) {
	base = checkpointBase(base)
	defer func() { // GoMLX's loader panics on some corrupt data files (a truncated compressed stream).
		if r := recover(); r != nil {
			size := "missing"
			if st, statErr := os.Stat(base + checkpoints.BinDataSuffix); statErr == nil {
				size = fmt.Sprintf("%d bytes", st.Size())
			}
			err = fmt.Errorf("checkpoint %s is unreadable: its data file (%s, %s) is truncated or corrupt", base,
				filepath.Base(base+checkpoints.BinDataSuffix), size)
		}
	}()
	meta, err := os.ReadFile(base + checkpoints.JsonNameSuffix)
	if err != nil {
		return fmt.Errorf("checkpoint %s cannot be read: %w", base, err)
	}
	data, err := os.ReadFile(base + checkpoints.BinDataSuffix)
	if err != nil {
		return fmt.Errorf("checkpoint %s cannot be read: %w", base, err)
	}
	if _, err := checkpoints.Build(ctx).FromEmbed(string(meta), data).Done(); err != nil {
		return fmt.Errorf("checkpoint %s is unreadable (%v)", base, err)
	}
	return nil
}

// cleanCheckpoints removes what a killed checkpoint write leaves in dir: staging folders and data files whose
// JSON never arrived. It reports what it removed on notices.
func cleanCheckpoints(dir string, notices io.Writer) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return fmt.Errorf("listing checkpoints: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		orphan := strings.HasPrefix(name, "checkpoint-") && strings.HasSuffix(name, checkpoints.BinDataSuffix)
		if orphan {
			if _, err := os.Stat(filepath.Join(dir, strings.TrimSuffix(name, checkpoints.BinDataSuffix)+checkpoints.JsonNameSuffix)); err == nil {
				continue
			}
		}
		if orphan || (e.IsDir() && strings.HasPrefix(name, ".staging-")) {
			if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
				return fmt.Errorf("removing the leftover %s of an interrupted checkpoint write: %w", name, err)
			}
			fmt.Fprintf(notices, "Removed %s, left by an interrupted checkpoint write.\n", filepath.Join(dir, name))
		}
	}
	return nil
}

// checkpointNameFormat names a checkpoint's files (GoMLX's "checkpoint-n<count>" with the step added; nowt's
// count is the step), and checkpointScanFormat reads it back (without widths: steps may outgrow 9 digits).
const (
	checkpointNameFormat = "checkpoint-n%09d-step-%09d"
	checkpointScanFormat = "checkpoint-n%d-step-%d"
)

// checkpointStep parses the step out of a checkpoint base path written by saveCheckpoint (-1 if it cannot).
func checkpointStep(base string) int {
	var n, step int
	if _, err := fmt.Sscanf(filepath.Base(base), checkpointScanFormat, &n, &step); err != nil {
		return -1
	}
	return step
}
