package trainer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
)

// Record is one line of metrics.jsonl, written at each logging step.
type Record struct {
	// Step is the number of training steps done; Epoch the fraction of epochs done.
	Step  int     `json:"step"`
	Epoch float64 `json:"epoch"`
	// Loss is the batch loss of the last step (absent at step 0); TrainAccuracy the mean accuracy of the training batches since the
	// previous record (or since the run resumed).
	Loss          float64 `json:"loss,omitempty"`
	TrainAccuracy float64 `json:"train_accuracy"`
	// TestTop1, TestTop5 and TestLoss are set on the steps where the test set was evaluated.
	TestTop1 *float64 `json:"test_top1,omitempty"`
	TestTop5 *float64 `json:"test_top5,omitempty"`
	TestLoss *float64 `json:"test_loss,omitempty"`
	// GradientNorm is the mean, over the training steps since the previous record (or since the run resumed),
	// of each step's global gradient norm ‖g‖ before any clipping ([SGD.GradientNormMetric]), and
	// GradientNormMax the largest of them: what to choose -clip-norm by. Absent at step 0 and from logs made
	// before nowt recorded them.
	GradientNorm    float64 `json:"gradient_norm,omitempty"`
	GradientNormMax float64 `json:"gradient_norm_max,omitempty"`
	// ClippedFraction is the fraction of those steps whose norm exceeded the run's -clip-norm (whose gradients
	// were scaled down); absent when the run does not clip.
	ClippedFraction *float64 `json:"clipped_fraction,omitempty"`
	// LearningRate of the last step; ImagesPerSecond of training since the previous record.
	LearningRate    float64 `json:"learning_rate"`
	ImagesPerSecond float64 `json:"images_per_second"`
	// WarmupMirrorSteps is set on the records of the weight mirror's warm-up, before training (Step 0): the
	// warm-up mirror steps done when the alignment was measured.
	WarmupMirrorSteps *int `json:"warmup_mirror_steps,omitempty"`
	// Layers holds each feedback layer's alignment, measured on a fixed test batch.
	Layers []LayerAlignment `json:"layers"`
	// SkippedImages is the number of unreadable images skipped so far in this invocation (see Config.Strict).
	SkippedImages int `json:"skipped_images,omitempty"`
	// Classes is the number of classes the model predicts and ChanceTop1 the run's chance level, the test top-1
	// of a network that predicts the test set's most frequent class for every image ([MajorityTop1]), on the
	// starting record (step 0, with test metrics); see [EndedAtChance]. Absent from logs made before nowt
	// recorded them.
	Classes    int     `json:"classes,omitempty"`
	ChanceTop1 float64 `json:"chance_top1,omitempty"`
	// TestExamples is the size of the test set, on the starting record: how far a guessing network's top-1
	// spreads around chance ([IsAtChance]).
	TestExamples int `json:"test_examples,omitempty"`
}

// LayerAlignment is one layer's alignment between its feedback B and its weights W. An angle that was not
// measured, or is undefined (a zero vector on one side: a dead layer, an example no error reaches), is absent
// (nil), never a number that could be read as a measurement.
type LayerAlignment struct {
	// Layer is the layer's context scope.
	Layer string `json:"layer"`
	// WeightAngle is the angle (degrees) between B and Wᵀ; nil if B or W is zero.
	WeightAngle *float64 `json:"weight_angle,omitempty"`
	// DeltaAngle is the angle (degrees) between Bδ and Wᵀδ, averaged over the DeltaExamples examples of the
	// alignment batch where it is defined; nil if it is defined for none, or was not measured (no gradient
	// reached the layer).
	DeltaAngle *float64 `json:"delta_angle,omitempty"`
	// DeltaExamples and DeltaUndefined count the examples of the alignment batch whose delta angle is defined
	// (averaged) and undefined (Bδ or Wᵀδ is zero: left out); both are 0 if the delta angle was not measured.
	DeltaExamples  int `json:"delta_examples,omitempty"`
	DeltaUndefined int `json:"delta_undefined,omitempty"`
	// NormRatio is ‖B‖/‖W‖; nil where it is not a finite number (W or B overflowed), and where B does not have W's
	// shape (dfa's hidden layers, whose B maps the classes: see feedback.Alignment).
	NormRatio *float64 `json:"norm_ratio,omitempty"`
	// WeightNorm is ‖W‖ (Frobenius); nil where it is not a finite number, and in logs from before nowt recorded
	// it. ‖B‖ is NormRatio × WeightNorm where NormRatio is set.
	WeightNorm *float64 `json:"weight_norm,omitempty"`
	// GradientAngle is the angle (degrees) between the weight gradient the rule gives the layer and the true
	// one, backprop's, on the alignment batch: the direction of the layer's update, with the errors of the
	// layers above compounded (feedback.GradientAngles); nil if either is zero (GradientUndefined), or in logs
	// from before it was measured.
	GradientAngle *float64 `json:"gradient_angle,omitempty"`
	// GradientUndefined is set where the gradient angle was measured and is undefined: the rule's or backprop's
	// weight gradient is zero (no error reaches the layer, or its inputs are all zero, as in a collapsed network).
	// Logs from before nowt recorded it leave such an angle nil without it.
	GradientUndefined bool `json:"gradient_undefined,omitempty"`
}

// NormRatioValue returns NormRatio, or NaN where it was not a finite number or not measured (B not standing for Wᵀ: dfa's hidden layers).
func (l LayerAlignment) NormRatioValue() float64 { return valueOr(l.NormRatio, math.NaN()) }

// WeightNormValue returns WeightNorm, or NaN where it was not a finite number or not recorded.
func (l LayerAlignment) WeightNormValue() float64 { return valueOr(l.WeightNorm, math.NaN()) }

// WeightDegrees returns WeightAngle, or NaN where it is undefined.
func (l LayerAlignment) WeightDegrees() float64 { return valueOr(l.WeightAngle, math.NaN()) }

// DeltaDegrees returns DeltaAngle, or NaN where it is undefined or was not measured ([LayerAlignment.DeltaStatus]
// says which).
func (l LayerAlignment) DeltaDegrees() float64 { return valueOr(l.DeltaAngle, math.NaN()) }

// DeltaStatus says what a nil DeltaAngle means: "undefined" (Bδ or Wᵀδ was zero for every example),
// "not measured", or "" when it holds a value.
func (l LayerAlignment) DeltaStatus() string {
	switch {
	case l.DeltaAngle != nil:
		return ""
	case l.DeltaUndefined > 0:
		return "undefined"
	}
	return "not measured"
}

// GradientStatus says what a nil GradientAngle means: "undefined" (a zero gradient, GradientUndefined), "not
// measured" (or a log from before nowt recorded GradientUndefined: [LayerAlignment.GradientUndefined]), or "" when
// it holds a value.
func (l LayerAlignment) GradientStatus() string {
	switch {
	case l.GradientAngle != nil:
		return ""
	case l.GradientUndefined:
		return "undefined"
	}
	return "not measured"
}

// metricsFileName is the run's metrics log, in its output folder.
const metricsFileName = "metrics.jsonl"

// ReadRecords reads a run's metrics.jsonl.
func ReadRecords(path string) ([]Record, error) {
	records, err := readJSONLines[Record](path)
	for i := range records {
		legacyAngles(&records[i])
	}
	if err != nil {
		return records, fmt.Errorf("reading metrics: %w", err)
	}
	return records, nil
}

// readJSONLines decodes each non-blank line of path (JSON Lines: a metrics log, a provenance log) as a T, in
// order. On a line that does not decode it returns the values before it and an error naming the file and line.
func readJSONLines[T any](path string) ([]T, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	var values []T
	scanner := bufio.NewScanner(f)
	scanner.Buffer(make([]byte, 1<<20), 1<<26)
	for line := 1; scanner.Scan(); line++ {
		if len(bytes.TrimSpace(scanner.Bytes())) == 0 {
			continue
		}
		var v T
		if err := json.Unmarshal(scanner.Bytes(), &v); err != nil {
			bad := &badLineError{path: path, line: line, err: err}
			for scanner.Scan() {
				if len(bytes.TrimSpace(scanner.Bytes())) > 0 {
					bad.linesAfter++
				}
			}
			return values, bad
		}
		values = append(values, v)
	}
	if err := scanner.Err(); err != nil {
		return values, fmt.Errorf("reading %s: %w", path, err)
	}
	return values, nil
}

// badLineError is a line of a JSON Lines file that does not decode (a torn last line, after a crash mid-write),
// and how many non-blank lines follow it (none after a crash).
type badLineError struct {
	path       string
	line       int
	err        error
	linesAfter int
}

func (e *badLineError) Error() string {
	return fmt.Sprintf("decoding %s, line %d: %v", e.path, e.line, e.err)
}
func (e *badLineError) Unwrap() error { return e.err }

// truncateRecords rewrites path keeping only the records of steps ≤ maxStep: a resumed run continues from its
// checkpoint, so records written after it are dropped rather than duplicated.
func truncateRecords(path string, maxStep int) error {
	records, err := ReadRecords(path)
	var badLine *badLineError
	switch {
	case err == nil:
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case errors.As(err, &badLine):
		// A torn last line (a crash mid-write) is dropped. One with lines after it is damage no crash makes:
		// rewriting the log would silently drop the records after it.
		if badLine.linesAfter > 0 {
			return fmt.Errorf("resuming: %v, and %d more lines follow it: a crash tears only the last line, so the "+
				"log was damaged otherwise; repair or delete that line, then resume again (the log is left as it is)",
				badLine, badLine.linesAfter)
		}
	default: // the log could not be read (permissions, I/O): never rewrite it from what was read
		return fmt.Errorf("resuming: %w (the log is left as it is)", err)
	}
	var kept []byte
	for _, r := range records {
		if r.Step > maxStep {
			break
		}
		line, err := json.Marshal(r)
		if err != nil {
			return err
		}
		kept = append(append(kept, line...), '\n')
	}
	return writeFileAtomic(path, kept)
}

// recordWriter appends records to metrics.jsonl, syncing each line.
type recordWriter struct{ f *os.File }

func openRecordWriter(path string) (*recordWriter, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening metrics log: %w", err)
	}
	return &recordWriter{f: f}, nil
}

func (w *recordWriter) write(r Record) error {
	line, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encoding metrics: %w", err)
	}
	if _, err := w.f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("writing metrics: %w", err)
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("syncing metrics: %w", err)
	}
	return nil
}

func (w *recordWriter) close() error { return w.f.Close() }

// legacyAngles reads the −1 that logs written before undefined angles were recorded as such stored for "not
// measured" as absent.
func legacyAngles(r *Record) {
	for i := range r.Layers {
		if l := &r.Layers[i]; l.DeltaAngle != nil && *l.DeltaAngle < 0 {
			l.DeltaAngle = nil
		}
	}
}
