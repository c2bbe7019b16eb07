package layers

import (
	"slices"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
)

// PadAlong pads axis of x with before and after entries of value (a scalar node of x's dtype): with the backend's
// Pad where it has one, else by concatenation (the pure-Go backend has no Pad). On XLA's CPU plugin the Pad is the
// faster of the two where the result feeds further loops: the taps max-pool with its gradient took 31–34 ms with
// concatenations, 13–16 with pads (BenchmarkMaxPool2D). (A graph's node, not its gradient: the gradient of a
// Slice is a Pad, so callers that slice the result for a forward pass that must build on pure Go read a
// StopGradient of it.)
func PadAlong(x, value *Node, axis, before, after int) *Node {
	if before == 0 && after == 0 {
		return x
	}
	if x.Graph().Backend().Capabilities().Operations[backends.OpTypePad] {
		axes := make([]backends.PadAxis, x.Rank())
		axes[axis] = backends.PadAxis{Start: before, End: after}
		return Pad(x, value, axes...)
	}
	fill := func(n int) *Node {
		dims := slices.Clone(x.Shape().Dimensions)
		dims[axis] = n
		return BroadcastToDims(value, dims...)
	}
	parts := make([]*Node, 0, 3)
	if before > 0 {
		parts = append(parts, fill(before))
	}
	parts = append(parts, x)
	if after > 0 {
		parts = append(parts, fill(after))
	}
	return Concatenate(parts, axis)
}
