package trainer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/gomlx/gomlx/pkg/ml/context/checkpoints"
)

// NaNError reports a loss that became NaN or infinite, or that the divergence guard stopped (Start > 0: the
// loss had stayed above DivergenceFactor times Start for DivergenceLogs records); the run keeps its last good
// checkpoint.
type NaNError struct {
	// Step is the 1-based training step whose loss was not finite (or diverged); Loss its value.
	Step int
	Loss float64
	// OnTest is set when the loss that was not finite is the test set's, evaluated after step Step.
	OnTest bool
	// OnGradient is set when the loss of step Step was finite (LastLoss) but its gradient was not: Loss is then
	// the step's global gradient norm.
	OnGradient bool
	LastLoss   float64
	// Start is the loss the run started from, when the divergence guard stopped it (0 for a non-finite loss).
	Start float64
	// Checkpoint is the last good checkpoint ("" if none was written yet), the one -resume continues from.
	Checkpoint string
	// SetAside counts the newer checkpoints renamed "diverged-…": written after the last loss known to be in
	// range, their weights may already be bad.
	SetAside int
}

// Error implements error.
func (e *NaNError) Error() string {
	keep := "no checkpoint from before it is known to be good: start again with a lower -lr (or with -clip-norm)"
	if e.Checkpoint != "" {
		keep = "the last good checkpoint is " + e.Checkpoint + " (continue from it with -resume and a lower -lr, or a -clip-norm)"
	}
	if e.SetAside > 0 {
		keep += fmt.Sprintf("; %d newer checkpoint(s), written after the last loss in range, renamed %s… (-resume skips them)",
			e.SetAside, divergedCheckpointPrefix)
	}
	if e.Start > 0 {
		return fmt.Sprintf("training stopped: the loss diverged, %g at step %d, over %d times its start (%g) for %d records; %s (-divergence-guard=false trains on)",
			e.Loss, e.Step, DivergenceFactor, e.Start, DivergenceLogs, keep)
	}
	if e.OnGradient {
		return fmt.Sprintf("training stopped: the gradient norm is %g at step %d (its loss, %g, was finite); %s",
			e.Loss, e.Step, e.LastLoss, keep)
	}
	if e.OnTest {
		return fmt.Sprintf("training stopped: the test loss is %g after step %d; %s", e.Loss, e.Step, keep)
	}
	return fmt.Sprintf("training stopped: the loss is %g at step %d; %s", e.Loss, e.Step, keep)
}

// divergedAt completes e, a run stopped by a non-finite or diverging loss: the checkpoints of steps ≥ bound hold
// weights not known to be good (a checkpoint's weights give the loss of the step after it), so they are renamed
// with divergedCheckpointPrefix, out of -resume's way and kept for inspection; e.Checkpoint is the newest of the
// others, the one -resume continues from.
func (r *run) divergedAt(e *NaNError, checkpointDir string, bound int) error {
	bases, err := listCheckpoints(checkpointDir)
	if err != nil {
		return errors.Join(e, err)
	}
	for _, base := range bases {
		if checkpointStep(base) < bound {
			e.Checkpoint = base
			continue
		}
		for _, suffix := range []string{checkpoints.JsonNameSuffix, checkpoints.BinDataSuffix} {
			aside := filepath.Join(checkpointDir, divergedCheckpointPrefix+filepath.Base(base)+suffix)
			if err := os.Rename(base+suffix, aside); err != nil && !os.IsNotExist(err) {
				return errors.Join(e, fmt.Errorf("setting aside a checkpoint written after the loss left its range: %w", err))
			}
		}
		e.SetAside++
	}
	return e
}

// divergedCheckpointPrefix starts the names of the checkpoints a diverged run set aside ([run.divergedAt]).
const divergedCheckpointPrefix = "diverged-"

// startingLoss is the loss a run's divergence guard compares with, from its log: the test loss of its step-0
// evaluation (not the first record's: a WM run's log starts with its warm-up records, which hold none), or NaN.
func startingLoss(records []Record) float64 {
	if i := slices.IndexFunc(records, func(r Record) bool { return r.Step == 0 && r.TestLoss != nil }); i >= 0 {
		return *records[i].TestLoss
	}
	return math.NaN()
}

// divergenceGuard is the divergence guard's state: the loss it compares with (the test loss at step 0; where
// there is none, the first logged training loss), how many records in a row had a loss over [DivergenceFactor]
// times it, and the step of the last record whose loss was in range (0 where there is none).
type divergenceGuard struct {
	start    float64
	grown    int
	lastFine int
}

// observe counts the loss of the record at step.
func (g *divergenceGuard) observe(step int, loss float64) {
	if math.IsNaN(g.start) {
		g.start = loss
	}
	if g.start > 0 && loss > DivergenceFactor*g.start {
		g.grown++
	} else {
		g.grown, g.lastFine = 0, step
	}
}

// guardFromRecords rebuilds the divergence guard of a resumed run out of its records up to the step it resumes
// from, with start its starting loss ([startingLoss]; NaN where its log holds none). A resumed run then stops, and
// keeps its checkpoints, where the same run never stopped would have.
func guardFromRecords(earlier []Record, start float64) divergenceGuard {
	g := divergenceGuard{start: start}
	for _, rec := range earlier {
		if rec.Step != 0 {
			g.observe(rec.Step, rec.Loss)
		}
	}
	return g
}

// divergedFileName marks a run folder whose last training stopped on a non-finite or diverging loss: it holds
// the [NaNError], so that nowt compare reports the run as diverged instead of training it again (the same
// settings diverge the same way). Resuming the run removes it.
const divergedFileName = "diverged.json"

// divergence is the JSON form of a [NaNError] (its losses as text: JSON has no NaN nor Inf).
type divergence struct {
	Step       int    `json:"step"`
	Loss       string `json:"loss"`
	Start      string `json:"start,omitempty"`
	Checkpoint string `json:"checkpoint,omitempty"`
}

// writeDivergence writes the divergence mark of the run in dir.
func writeDivergence(dir string, e *NaNError) error {
	d := divergence{Step: e.Step, Loss: strconv.FormatFloat(e.Loss, 'g', -1, 64), Checkpoint: e.Checkpoint}
	if e.Start > 0 {
		d.Start = strconv.FormatFloat(e.Start, 'g', -1, 64)
	}
	return writeMark(dir, divergedFileName, d)
}

// readDivergence returns the divergence mark of the run in dir, if it has a readable one.
func readDivergence(dir string) (*NaNError, bool) {
	d, ok := readMark[divergence](dir, divergedFileName)
	if !ok {
		return nil, false
	}
	e := &NaNError{Step: d.Step, Checkpoint: d.Checkpoint}
	e.Loss, _ = strconv.ParseFloat(d.Loss, 64)
	if d.Start != "" {
		e.Start, _ = strconv.ParseFloat(d.Start, 64)
	}
	return e, true
}

// writeMark writes v as the JSON mark name (diverged.json, collapsed.json) of the run in dir, atomically.
func writeMark(dir, name string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("writing the mark %s: %w", name, err)
	}
	return writeFileAtomic(filepath.Join(dir, name), append(data, '\n'))
}

// readMark decodes the JSON mark name of the run in dir, if it has a readable one.
func readMark[T any](dir, name string) (*T, bool) {
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return nil, false
	}
	v := new(T)
	if json.Unmarshal(data, v) != nil {
		return nil, false
	}
	return v, true
}

// InterruptedError reports a run stopped by its context (Ctrl-C), after writing a checkpoint.
type InterruptedError struct {
	// Step is the number of steps done (0: stopped before the first); Checkpoint the checkpoint written.
	Step       int
	Checkpoint string
	// Continue says how to go on; "" is "continue with -resume" (nowt train's way).
	Continue string
}

// Error implements error.
func (e *InterruptedError) Error() string {
	if e.Checkpoint == "" {
		return "interrupted before the first training step: nothing new to save (run the same command again to go on)"
	}
	how := e.Continue
	if how == "" {
		how = "continue with -resume"
	}
	return fmt.Sprintf("interrupted at step %d: saved %s; %s", e.Step, e.Checkpoint, how)
}

// StorageError reports a run stopped because it could not write into its folder (a full disk, a folder made
// read-only): what it was writing, the cause, and how to go on from the last checkpoint it wrote.
type StorageError struct {
	// What names what was being written: "the checkpoint of step 10", "the metrics log …".
	What string
	// Err is the cause.
	Err error
	// Checkpoint is the newest checkpoint the run holds ("" none).
	Checkpoint string
	// Continue says how to go on; "" is nowt train's way (-resume, or the same command where no checkpoint
	// was written).
	Continue string
}

// Error implements error.
func (e *StorageError) Error() string {
	cause := e.Err.Error()
	var pathErr *fs.PathError
	if errors.As(e.Err, &pathErr) { // the file and the system's word, without the layers that wrapped them
		cause = pathErr.Error()
		if strings.Contains(e.What, pathErr.Path) {
			cause = pathErr.Err.Error()
		}
	}
	msg := fmt.Sprintf("writing %s: %s", e.What, cause)
	switch {
	case errors.Is(e.Err, syscall.ENOSPC):
		msg += ": the disk is full; free space there (each run keeps its -keep newest checkpoints) or train into another -out"
	case errors.Is(e.Err, syscall.EROFS), errors.Is(e.Err, fs.ErrPermission):
		msg += ": the folder cannot be written; make it writable or train into another -out"
	}
	how := e.Continue
	switch {
	case how != "":
	case e.Checkpoint == "":
		how = "no checkpoint was written yet: then run the same command again, which starts the run anew"
	default:
		how = "then go on with -resume"
	}
	if e.Checkpoint != "" {
		return fmt.Sprintf("%s; the newest checkpoint is %s; %s", msg, e.Checkpoint, how)
	}
	return fmt.Sprintf("%s; %s", msg, how)
}

// Unwrap returns the cause.
func (e *StorageError) Unwrap() error { return e.Err }

// DivergenceFactor and DivergenceLogs define the divergence guard: a run stops when its logged loss exceeds
// DivergenceFactor times its starting loss for DivergenceLogs records in a row.
const (
	DivergenceFactor = 10
	DivergenceLogs   = 3
)

// OutOfMemoryError reports a run whose device (an accelerator, or the host for XLA on CPU) could not allocate
// what a step or an evaluation needs, with the settings that set how much that is.
type OutOfMemoryError struct {
	// Batch and EvalBatch are the run's training and evaluation batch sizes, Devices its -devices (0 or 1: one,
	// -1: all), DType the compute dtype.
	Batch, EvalBatch, Devices int
	DType                     string
	// Err is the backend's error.
	Err error
}

// Error implements error.
func (e *OutOfMemoryError) Error() string {
	if strings.Contains(e.Err.Error(), "VariableInitialization") {
		return fmt.Sprintf("the device ran out of memory creating the model's variables: its weights (W and B in "+
			"float32, on every device) do not fit, whatever the batch; choose a smaller model; %v", e.Err)
	}
	advice := []string{fmt.Sprintf("lower -batch (%d) or -eval-batch (%d)", e.Batch, e.EvalBatch)}
	if e.DType == "" || e.DType == "float32" {
		advice = append(advice, "compute in -dtype bfloat16 (on an accelerator)")
	}
	if e.Devices == 0 || e.Devices == 1 {
		advice = append(advice, "split each batch over several devices (-devices -1)")
	}
	return fmt.Sprintf("the device ran out of memory: %s; %v", strings.Join(advice, ", or "), e.Err)
}

// Unwrap returns the backend's error.
func (e *OutOfMemoryError) Unwrap() error { return e.Err }

// outOfMemoryMarks are how the backend's failure to allocate device memory reads: go-xla writes a PJRT error as
// "PJRT error (code=8): …" (8: PJRT_Error_Code_RESOURCE_EXHAUSTED; the message does not repeat the code's name),
// XLA's GPU allocator says "Out of memory while trying to allocate …" and its CPU client "PJRT error (code=13):
// … Out of memory allocating 62720000000 bytes." (seen here with a 784×20,000,000 layer under a 16 GB ulimit).
var outOfMemoryMarks = []string{"PJRT error (code=8)", "RESOURCE_EXHAUSTED", "Out of memory"}

// withMemoryAdvice returns err as an [OutOfMemoryError] when it is the backend's failure to allocate device
// memory, and unchanged otherwise.
func withMemoryAdvice(err error, cfg Config) error {
	var oom *OutOfMemoryError
	if err == nil || errors.As(err, &oom) ||
		!slices.ContainsFunc(outOfMemoryMarks, func(m string) bool { return strings.Contains(err.Error(), m) }) {
		return err
	}
	return &OutOfMemoryError{Batch: cfg.BatchSize, EvalBatch: cfg.evalBatch(), Devices: cfg.Devices, DType: cfg.DType, Err: err}
}
