package stats

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{9, 2, 4}, 4}, {[]float64{50, 10, 3, 1}, 6.5}} {
		in := append([]float64(nil), tc.xs...)
		require.Equal(t, tc.want, Median(in), "%v", tc.xs)
		require.Equal(t, tc.xs, in, "the input is left unsorted")
	}
	require.Equal(t, 3*time.Millisecond, Median([]time.Duration{4 * time.Millisecond, 2 * time.Millisecond}))
}
