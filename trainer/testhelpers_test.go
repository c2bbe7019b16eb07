package trainer

import (
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

type shapes_ = shapes.Shape

var (
	theta64 = dtypes.Float64
	theta32 = dtypes.Float32
)

func shapeOf(dims ...int) shapes.Shape { return shapes.Make(dtypes.Float64, dims...) }
