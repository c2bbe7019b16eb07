package trainer

import (
	gocontext "context"
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/distributed"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/nowt-ml/nowt/feedback"
)

// newMirrorExec compiles the weight-mirror step of every WM layer ([newReplicatedExec]).
func newMirrorExec(r *run) (*context.Exec, error) {
	return newReplicatedExec(r, func(ctx *context.Context, g *Graph) { feedback.MirrorStep(ctx, g) })
}

// newReplicatedExec compiles a graph of build that updates variables and returns nothing. With data parallelism
// it runs on every device, replicated (each device makes the same update of its copy; the mirror's noise comes
// from the replicated RNG state), so that the variables stay on the devices: run on device 0 alone, it would
// gather every variable it reads from the devices and scatter its updates back. Run it with [run.execReplicated].
func newReplicatedExec(r *run, build func(ctx *context.Context, g *Graph)) (*context.Exec, error) {
	exec, err := context.NewExec(r.backend, r.ctx, func(ctx *context.Context, g *Graph) *Node {
		build(ctx, g)
		return Scalar(g, dtypes.Float32, 0)
	})
	if err != nil || r.dp == nil {
		return exec, err
	}
	return exec.AutoSharding(r.dp.Mesh).
		WithOutputShardingSpecs(distributed.NewReplicatedShardingSpec(r.dp.Mesh)).
		WithDeviceAssignment(r.dp.DeviceAssignment), nil
}

// execReplicated runs an exec of [newReplicatedExec].
func (r *run) execReplicated(exec *context.Exec) error {
	var err error
	if r.dp != nil {
		_, err = exec.DistributedExec()
	} else {
		_, err = exec.Exec()
	}
	return err
}

// mirror runs n weight-mirror steps.
func (r *run) mirror(n int) error {
	for range n {
		if err := r.execReplicated(r.mirrorExec); err != nil {
			return fmt.Errorf("weight-mirror step: %w", err)
		}
	}
	return nil
}

// warmupRecords is how many alignment records the weight mirror's warm-up writes (besides the one before it).
const warmupRecords = 10

// mirrorWarmup runs the weight mirror's n warm-up steps, recording the alignment (at step 0, with
// WarmupMirrorSteps set) before them and after every n/warmupRecords of them, so that the plots show B
// aligning; it returns the alignment after the warm-up.
func (r *run) mirrorWarmup(goCtx gocontext.Context, n int, before []LayerAlignment, log *recordWriter) ([]LayerAlignment, error) {
	write := func(done int, layers []LayerAlignment) error {
		if err := log.write(Record{Step: 0, WarmupMirrorSteps: &done, LearningRate: r.schedule.At(0), Layers: layers}); err != nil {
			return &StorageError{What: "the metrics log " + log.f.Name(), Err: err}
		}
		return nil
	}
	if err := write(0, before); err != nil {
		return nil, err
	}
	layers := before
	for done := 0; done < n; {
		chunk := min(n-done, max(1, (n+warmupRecords-1)/warmupRecords))
		for step := 0; step < chunk; step += 10 { // Ctrl-C is heard every 10 mirror steps.
			if goCtx.Err() != nil {
				return nil, &InterruptedError{}
			}
			if err := r.mirror(min(10, chunk-step)); err != nil {
				return nil, err
			}
		}
		done += chunk
		var err error
		if layers, err = r.align(); err != nil {
			return nil, err
		}
		if err := write(done, layers); err != nil {
			return nil, err
		}
	}
	return layers, nil
}

// mirrorNoiseFloors returns the least and greatest of the weight mirror's noise floors
// ([feedback.MirrorNoiseFloor]) over ctx's layers, and over how many layers.
func mirrorNoiseFloors(ctx *context.Context) (lo, hi float64, n int) {
	for _, layer := range feedback.Layers(ctx) {
		if floor, ok := feedback.MirrorNoiseFloor(ctx, layer); ok {
			if n == 0 || floor < lo {
				lo = floor
			}
			hi = max(hi, floor)
			n++
		}
	}
	return lo, hi, n
}

// degreeRange writes an angle range as "4.3–19.0°", or one angle as "9.8°".
func degreeRange(lo, hi float64) string {
	if fmt.Sprintf("%.1f", lo) == fmt.Sprintf("%.1f", hi) {
		return fmt.Sprintf("%.1f°", lo)
	}
	return fmt.Sprintf("%.1f–%.1f°", lo, hi)
}
