package units

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBytes(t *testing.T) {
	for _, tc := range []struct {
		bytes uint64
		want  string
	}{
		{512, "512 B"},
		{1_500, "1.5 kB"},
		{1_500_000_000, "1.5 GB"},
		{4 << 40, "4.4 TB"},
		{3_340_000_000_000_000, "3340.0 TB"},
	} {
		require.Equal(t, tc.want, Bytes(tc.bytes), "%d bytes", tc.bytes)
	}
}
