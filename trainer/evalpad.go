package trainer

import (
	gocontext "context"
	"errors"
	"fmt"
	"io"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/train"
	"github.com/gomlx/gomlx/pkg/ml/train/metrics"
)

// paddedBatches yields a test set's batches all at one batch size, so that evaluation compiles one graph: a batch
// shorter than size (the last one of a test set that is not a multiple of the evaluation batch, or one that lost
// unreadable images) is padded with zero images of label 0. Every batch carries a mask as its second label, bool
// [size], true for the real examples; the evaluation's loss and metrics ([maskedMean]) count only those.
//
// A stop context cut short, the evaluation ends at the next batch with [errEvaluationInterrupted].
type paddedBatches struct {
	inner train.Dataset
	size  int
	stop  gocontext.Context // nil: never stopped
}

// errEvaluationInterrupted ends an evaluation whose stop context was cancelled (Ctrl-C, SIGTERM): a test set's
// evaluation can take minutes, longer than anyone waits for a checkpoint.
var errEvaluationInterrupted = errors.New("evaluation interrupted")

// Name implements train.Dataset.
func (p *paddedBatches) Name() string { return p.inner.Name() }

// Reset implements train.Dataset.
func (p *paddedBatches) Reset() { p.inner.Reset() }

// IsOwnershipTransferred implements train.DatasetCustomOwnership: the consumer owns what the inner dataset gives
// it, and the padded copies.
func (p *paddedBatches) IsOwnershipTransferred() bool {
	if o, ok := p.inner.(train.DatasetCustomOwnership); ok {
		return o.IsOwnershipTransferred()
	}
	return true
}

// Yield implements train.Dataset: spec paddedSpec{}, inputs {images [size, …]}, labels {labels int32 [size, 1], mask bool [size]}.
func (p *paddedBatches) Yield() (spec any, inputs, labels []*tensors.Tensor, err error) {
	if p.stop != nil && p.stop.Err() != nil {
		return nil, nil, nil, errEvaluationInterrupted
	}
	_, inputs, labels, err = p.inner.Yield()
	if err != nil {
		if !errors.Is(err, io.EOF) {
			err = &readError{err}
		}
		return spec, inputs, labels, err
	}
	if len(inputs) != 1 || len(labels) != 1 {
		return nil, nil, nil, fmt.Errorf("%s: a batch of %d inputs and %d labels, where evaluation takes images and "+
			"their labels", p.Name(), len(inputs), len(labels))
	}
	n := inputs[0].Shape().Dim(0)
	if n > p.size || labels[0].Shape().Dim(0) != n {
		return nil, nil, nil, fmt.Errorf("%s: a batch of %d images and %d labels, where evaluation batches hold at most %d",
			p.Name(), n, labels[0].Shape().Dim(0), p.size)
	}
	mask := make([]bool, p.size)
	for i := range n {
		mask[i] = true
	}
	if n < p.size {
		images, err := padRows(inputs[0], p.size)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%s: padding a batch of %d images: %w", p.Name(), n, err)
		}
		labs, err := padRows(labels[0], p.size)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%s: padding a batch of %d labels: %w", p.Name(), n, err)
		}
		if p.IsOwnershipTransferred() {
			_ = inputs[0].FinalizeAll()
			_ = labels[0].FinalizeAll()
		}
		inputs, labels = []*tensors.Tensor{images}, []*tensors.Tensor{labs}
	}
	return paddedSpec{}, inputs, append(labels, tensors.FromFlatDataAndDimensions(mask, p.size)), nil
}

// paddedSpec is the spec of [paddedBatches]' batches: GoMLX's Trainer keeps one number of labels per spec, and
// the training set's batches (spec nil) carry no mask.
type paddedSpec struct{}

// String names the spec in GoMLX's names of the evaluation graph.
func (paddedSpec) String() string { return "padded evaluation" }

// padRows returns a copy of t with rows axis-0 entries, its own followed by zeros.
func padRows(t *tensors.Tensor, rows int) (*tensors.Tensor, error) {
	dims := t.Shape().Dimensions
	padded := tensors.FromShape(shapes.Make(t.DType(), append([]int{rows}, dims[1:]...)...))
	var inner error
	err := t.ConstBytes(func(src []byte) {
		inner = padded.MutableBytes(func(dst []byte) {
			if len(src) > len(dst) {
				inner = fmt.Errorf("%s does not fit in %s", t.Shape(), padded.Shape())
				return
			}
			copy(dst, src)
		})
	})
	if err == nil {
		err = inner
	}
	return padded, err
}

// exampleMask returns the mask of real examples that [paddedBatches] adds as a batch's second label, or nil.
func exampleMask(labels []*Node) *Node {
	if len(labels) > 1 && labels[1].DType() == dtypes.Bool {
		return labels[1]
	}
	return nil
}

// maskedMean is the mean of a metric over an evaluation's examples, where each batch's value (Interface's
// UpdateGraph: the mean over the batch's real examples) counts with the batch's number of real examples (its
// mask's true entries, or its size without one): exact over a test set whose last batch is padded, where
// GoMLX's MeanMetric would weigh it by its padded size.
type maskedMean struct {
	metrics.Interface // names, scope and printing; UpdateGraph gives one batch's mean
}

// newMaskedMean returns the maskedMean of batchMean, the mean over a batch's real examples.
func newMaskedMean(name, shortName, metricType string, batchMean metrics.BaseMetricGraph) *maskedMean {
	return &maskedMean{metrics.NewBaseMetric(name, shortName, metricType, batchMean, nil)}
}

// UpdateGraph implements metrics.Interface: it adds the batch to the running total and returns the mean so far.
func (m *maskedMean) UpdateGraph(ctx *context.Context, labels, predictions []*Node) *Node {
	batchMean := ConvertDType(m.Interface.UpdateGraph(ctx, labels, predictions), dtypes.Float32)
	g := batchMean.Graph()
	count := Scalar(g, dtypes.Float32, float64(predictions[0].Shape().Dim(0)))
	if mask := exampleMask(labels); mask != nil {
		count = ReduceAllSum(ConvertDType(mask, dtypes.Float32))
	}
	ctx = ctx.Checked(false).In(metrics.Scope).In(m.ScopeName())
	totalVar := ctx.VariableWithValue("total", float32(0)).SetTrainable(false)
	countVar := ctx.VariableWithValue("count", float32(0)).SetTrainable(false)
	total := Add(totalVar.ValueGraph(g), Mul(batchMean, count))
	count = Add(countVar.ValueGraph(g), count)
	totalVar.SetValueGraph(total)
	countVar.SetValueGraph(count)
	return Div(total, Max(count, OnesLike(count)))
}

// Reset implements metrics.Interface: the running total starts again (before each evaluation).
func (m *maskedMean) Reset(ctx *context.Context) {
	ctx = ctx.Reuse().In(metrics.Scope).In(m.ScopeName())
	for _, name := range []string{"total", "count"} {
		if v := ctx.GetVariableByScopeAndName(ctx.Scope(), name); v != nil {
			// metrics.Interface's Reset returns no error; GoMLX's own metrics panic here too (MustSetValue).
			if err := v.SetValue(tensors.FromValue(float32(0))); err != nil {
				panic(fmt.Errorf("resetting evaluation metric %s's %s: %w", m.ScopeName(), name, err))
			}
		}
	}
}
