package layers

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// InputTooSmallError reports a convolution or pooling whose input is smaller than its kernel or window: a model
// given images smaller than it was made for. The layers panic with it, GoMLX's way of reporting a graph that
// cannot be built; whoever recovers the panic as an error (context.Exec, xla.InitializeOnHost) can tell it from
// other faults with errors.As and name the setting that sizes the images.
type InputTooSmallError struct {
	// Layer names the layer: "feedback.Conv2D(/model/conv2)", "layers.MaxPool2D".
	Layer string
	// Input is the layer's input shape, [batch, height, width, channels].
	Input shapes.Shape
	// Kind is "kernel" or "window"; Height and Width its size.
	Kind          string
	Height, Width int
}

// Error implements error.
func (e *InputTooSmallError) Error() string {
	return fmt.Sprintf("%s: input %s is smaller than the %dx%d %s", e.Layer, e.Input, e.Height, e.Width, e.Kind)
}
