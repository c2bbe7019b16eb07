// Package stats holds the small summary statistics several nowt packages share.
package stats

import (
	"slices"
	"time"
)

// Median returns the median of xs (the mean of the two middle values for an even count), 0 for none. xs is
// left as it is.
func Median[T time.Duration | float64](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
