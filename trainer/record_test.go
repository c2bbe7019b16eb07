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
