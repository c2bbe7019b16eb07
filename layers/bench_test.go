package layers

import (
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/nowt-ml/nowt/internal/testutil"
)

// BenchmarkMaxPool2D times a ResNet-18 stem's max-pool (3×3, stride 2, padding 1, on 8×112×112×64) with its
// gradient, in each implementation the backend runs:
//
//	NOWT_TEST_BACKEND=xla:cpu go test ./layers -run '^$' -bench MaxPool2D -benchtime 20x
func BenchmarkMaxPool2D(b *testing.B) {
	backend := testutil.Backend(b)
	ops := backend.Capabilities().Operations
	x := tensors.FromShape(shapes.Make(dtypes.Float32, 8, 112, 112, 64))
	for _, impl := range []string{"native", "gather", "taps"} {
		if impl == "native" && !ops[backends.OpTypeSelectAndScatterMax] {
			continue
		}
		b.Run(impl, func(b *testing.B) {
			ctx := context.New()
			ctx.SetParam(ParamPoolImpl, impl)
			exec := context.MustNewExec(backend, ctx, func(ctx *context.Context, x *Node) []*Node {
				y := MaxPool2D(ctx, x, 3, 2, 1)
				loss := ReduceAllSum(Mul(y, Sin(Iota(x.Graph(), y.Shape(), 1))))
				return []*Node{loss, Gradient(loss, x)[0]}
			})
			exec.MustExec(x) // compile
			b.ResetTimer()
			for range b.N {
				exec.MustExec(x)
			}
		})
	}
}
