package trainer

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestReadRecordsLegacyAngles: logs written before undefined angles were recorded as such stored −1 for a delta
// angle that was not measured; it reads back as absent, and an absent angle stays absent.
func TestReadRecordsLegacyAngles(t *testing.T) {
	path := filepath.Join(t.TempDir(), metricsFileName)
	lines := `{"step":0,"layers":[{"layer":"/model/fc0","weight_angle":90,"delta_angle":-1,"norm_ratio":1}]}
{"step":1,"layers":[{"layer":"/model/fc0","delta_undefined":128,"norm_ratio":1}]}
`
	require.NoError(t, os.WriteFile(path, []byte(lines), 0o644))
	records, err := ReadRecords(path)
	require.NoError(t, err)
	require.Len(t, records, 2)
	l := records[0].Layers[0]
	require.Nil(t, l.DeltaAngle)
	require.Equal(t, "not measured", l.DeltaStatus())
	require.InDelta(t, 90, l.WeightDegrees(), 0)
	l = records[1].Layers[0]
	require.Nil(t, l.WeightAngle)
	require.True(t, math.IsNaN(l.WeightDegrees()))
	require.Equal(t, "undefined", l.DeltaStatus())
}

// TestSummarize: the summary of a metrics log takes the last step, the last evaluation as final, the best
// evaluation's top-1 and the last alignment; a log without evaluations has no final and a NaN best.
func TestSummarize(t *testing.T) {
	top := func(v float64) *float64 { return &v }
	aligned := []LayerAlignment{{Layer: "fc0", WeightAngle: top(12)}}
	later := []LayerAlignment{{Layer: "fc0", WeightAngle: top(8)}}
	tests := []struct {
		name               string
		records            []Record
		steps, evaluations int
		finalStep          int // -1: no final
		best               float64
		layers             []LayerAlignment
	}{
		{"empty", nil, 0, 0, -1, math.NaN(), nil},
		{"no evaluations", []Record{{Step: 0}, {Step: 10, Layers: aligned}}, 10, 0, -1, math.NaN(), aligned},
		{"best before the end", []Record{
			{Step: 0, TestTop1: top(0.1), Layers: aligned},
			{Step: 5, TestTop1: top(0.7)},
			{Step: 10, TestTop1: top(0.6), Layers: later},
			{Step: 12},
		}, 12, 3, 10, 0.7, later},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := Summarize(tc.records)
			require.Equal(t, tc.steps, s.Steps)
			require.Equal(t, tc.evaluations, s.Evaluations)
			if tc.finalStep < 0 {
				require.Nil(t, s.Final)
				require.True(t, math.IsNaN(s.Best))
			} else {
				require.Equal(t, tc.finalStep, s.Final.Step)
				require.Equal(t, tc.best, s.Best)
			}
			require.Equal(t, tc.layers, s.Layers)
			if len(tc.layers) > 0 {
				l, ok := s.Layer("fc0")
				require.True(t, ok)
				require.Equal(t, tc.layers[0], l)
			}
			_, ok := s.Layer("missing")
			require.False(t, ok)
		})
	}
}
