package xla

import (
	"bufio"
	"errors"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/context/initializers"
	"github.com/stretchr/testify/require"
)

// TestInitializeOnHostRefusesWhatDoesNotFit: a network whose values cannot fit in the host's memory (here a
// 2²⁰ × 2²⁰ float32 matrix, 4.4 TB) is an error naming its size and largest variable before anything is
// allocated. Without the check, GoMLX's initialisation asked Go for the memory, and Go's "out of memory" fatal
// error ended the process with a stack dump (nowt train -hidden 100000000). A network that fits is initialised.
func TestInitializeOnHostRefusesWhatDoesNotFit(t *testing.T) {
	if _, ok := availableHostMemory(); !ok {
		t.Skip("no /proc/meminfo: the check is Linux's")
	}
	for _, tc := range []struct {
		name string
		dim  int
		fits bool
	}{
		{"fits", 64, true},
		{"4.4 TB", 1 << 20, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.New()
			require.NoError(t, ctx.SetRNGStateFromSeed(1))
			err := InitializeOnHost(ctx, func(ctx *context.Context, g *graph.Graph) {
				layer := ctx.In("huge")
				layer.WithInitializer(initializers.RandomNormalFn(layer, 1)).
					VariableWithShape("w", shapes.Make(dtypes.Float32, tc.dim, tc.dim)).ValueGraph(g)
			})
			if tc.fits {
				require.NoError(t, err)
				require.True(t, ctx.GetVariableByScopeAndName("/huge", "w").HasValue())
				return
			}
			var tooLarge *HostMemoryError
			require.True(t, errors.As(err, &tooLarge), "%v", err)
			require.Equal(t, uint64(4<<40), tooLarge.Need)
			require.Equal(t, "/huge/w", tooLarge.Largest)
			require.ErrorContains(t, err, "need 4.4 TB of memory")
			require.ErrorContains(t, err, "make the network smaller")
			require.False(t, ctx.GetVariableByScopeAndName("/huge", "w").HasValue(), "nothing was allocated")
		})
	}
}

// TestParseMemAvailable reads /proc/meminfo's MemAvailable line, and nothing else.
func TestParseMemAvailable(t *testing.T) {
	for _, tc := range []struct {
		name, meminfo string
		want          uint64
		ok            bool
	}{
		{"linux", "MemTotal:       24576000 kB\nMemFree:  1000 kB\nMemAvailable:   23456789 kB\n", 23456789 * 1024, true},
		{"no line", "MemTotal:       24576000 kB\n", 0, false},
		{"other unit", "MemAvailable:   23456789 MB\n", 0, false},
		{"not a number", "MemAvailable:   lots kB\n", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseMemAvailable(bufio.NewScanner(strings.NewReader(tc.meminfo)))
			require.Equal(t, tc.ok, ok)
			if ok {
				require.Equal(t, tc.want, got)
			}
		})
	}
}
