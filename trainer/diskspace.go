package trainer

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/context/checkpoints"
	"github.com/nowt-ml/nowt/internal/units"
)

// checkpointBytes estimates the size of one checkpoint of the run whose variables ctx holds: the newest
// checkpoint's files where the run has one (a resumed run), else every variable a checkpoint keeps
// (notCheckpointed's are left out) and, under momentum, a velocity as large as each trainable one (the optimizer
// creates those with the training step).
func checkpointBytes(ctx *context.Context, newest string, momentum bool) uint64 {
	if newest != "" {
		newest = checkpointBase(newest)
		var size uint64
		for _, suffix := range []string{checkpoints.BinDataSuffix, checkpoints.JsonNameSuffix} {
			if st, err := os.Stat(newest + suffix); err == nil {
				size += uint64(st.Size())
			}
		}
		if size > 0 {
			return size
		}
	}
	var size uint64
	excluded := notCheckpointed(ctx)
	for v := range ctx.IterVariables() {
		if slices.Contains(excluded, v) {
			continue
		}
		bytes := uint64(v.Shape().Memory())
		size += bytes
		if momentum && v.Trainable {
			size += bytes
		}
	}
	return size
}

// spaceWarning returns a warning when free bytes cannot hold what keep checkpoints of perCheckpoint bytes still
// need beside the existing ones already in the folder (a resumed run's, which count against keep), and one more
// (a new checkpoint is written whole before the oldest is removed); "" when they can or free is unknown (0).
func spaceWarning(dir string, free, perCheckpoint uint64, keep, existing int) string {
	kept := min(existing, keep) // a resumed run prunes to keep first
	need := perCheckpoint * uint64(keep+1-kept)
	if free == 0 || free >= need {
		return ""
	}
	written := ""
	if kept > 0 {
		written = fmt.Sprintf(", %d already written", kept)
	}
	return fmt.Sprintf("warning: %s has %s free, and this run's checkpoints take about %s each (%d kept%s, and one "+
		"more while the next is written: %s more): the disk may fill before the run ends; free space, lower -keep, or "+
		"choose another -out", filepath.Clean(dir), units.Bytes(free), units.Bytes(perCheckpoint), keep, written, units.Bytes(need))
}
