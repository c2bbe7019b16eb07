package feedback

import (
	"fmt"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/nowt-ml/nowt/internal/testutil"
	"github.com/nowt-ml/nowt/xla"
	"github.com/stretchr/testify/require"
)

// TestConvImplChoice: "auto" runs a convolution natively on XLA backends and as patches × matmul on the pure-Go
// backend, and as patches on XLA's CPU plugin where its input or output image is 2×2 pixels or fewer (the plugin's
// native convolution reads such images at a few GFLOP/s); "native" and "patches" hold whatever the geometry.
func TestConvImplChoice(t *testing.T) {
	backend := testutil.Backend(t)
	native := backend.Capabilities().Operations[backends.OpTypeReverse]
	cpu := xla.IsCPU(backend)
	for _, tc := range []struct {
		size, kernel, stride int
		same                 bool
		tiny                 bool
	}{
		{32, 3, 1, true, false},
		{8, 3, 1, true, false},
		{3, 3, 1, true, false},
		{2, 3, 1, true, true},  // reads 2×2
		{4, 3, 2, true, true},  // writes 2×2
		{1, 3, 1, true, true},  // 1×1
		{4, 3, 1, false, true}, // valid padding: 4×4 to 2×2
		{5, 1, 2, false, false},
	} {
		geom := newConvGeometry(shapes.Make(dtypes.Float32, 8, tc.size, tc.size, 16), tc.kernel, tc.kernel, tc.stride, tc.same)
		require.Equal(t, tc.tiny, geom.tiny(), "%+v: output %d×%d", tc, geom.outH, geom.outW)
		for _, impl := range []string{"auto", "native", "patches"} {
			t.Run(fmt.Sprintf("%+v/%s", tc, impl), func(t *testing.T) {
				want := map[string]bool{"auto": native && !(cpu && tc.tiny), "native": true, "patches": false}[impl]
				ctx := context.New()
				ctx.SetParam(ParamConvImpl, impl)
				g := NewGraph(backend, "choice")
				defer g.Finalize()
				require.Equal(t, want, useNativeConv(ctx, g, geom))
			})
		}
	}
}
