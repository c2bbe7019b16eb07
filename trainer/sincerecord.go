package trainer

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// sinceRecord is what the steps since the last record have counted for the next one: the training accuracy's
// sum and count and the gradient norms. A checkpoint written between two records (Ctrl-C, SIGTERM, a
// -checkpoint-every that is not a multiple of -log-every) keeps it, so that the first record after a resume
// averages the same steps as the run that was never stopped (it averaged only those since the resume).
type sinceRecord struct {
	accSum   float64
	accCount int
	norms    normStats
}

// sinceRecordScope and sinceRecordName name the checkpointed variable that holds a sinceRecord.
const (
	sinceRecordScope = "/nowt"
	sinceRecordName  = "since_record"
)

// sinceRecordVariable returns the variable of ctx that checkpoints keep a sinceRecord in (6 float64s, not
// trainable, read by no graph): zeros for a new run, the checkpoint's values when one was loaded into ctx (a
// checkpoint from before nowt kept it has none: zeros as well).
func sinceRecordVariable(ctx *context.Context) *context.Variable {
	v := ctx.InAbsPath(sinceRecordScope).Checked(false).VariableWithValue(sinceRecordName, make([]float64, 6))
	return v.SetTrainable(false)
}

// store writes s into v, before a checkpoint is saved.
func (s sinceRecord) store(v *context.Variable) error {
	values := []float64{s.accSum, float64(s.accCount), s.norms.sum, s.norms.max, float64(s.norms.steps),
		float64(s.norms.clipped)}
	if err := v.SetValue(tensors.FromValue(values)); err != nil {
		return fmt.Errorf("keeping the steps since the last record in the checkpoint: %w", err)
	}
	return nil
}

// loadSinceRecord reads the sinceRecord that v holds.
func loadSinceRecord(v *context.Variable) (sinceRecord, error) {
	value, err := v.Value()
	if err != nil {
		return sinceRecord{}, fmt.Errorf("reading the steps since the last record from the checkpoint: %w", err)
	}
	values, err := tensors.CopyFlatData[float64](value)
	if err != nil || len(values) != 6 {
		return sinceRecord{}, fmt.Errorf("reading the steps since the last record from the checkpoint: %s holds %s, "+
			"not 6 float64s (%v)", v.ScopeAndName(), value.Shape(), err)
	}
	return sinceRecord{accSum: values[0], accCount: int(values[1]), norms: normStats{sum: values[2], max: values[3],
		steps: int(values[4]), clipped: int(values[5])}}, nil
}
