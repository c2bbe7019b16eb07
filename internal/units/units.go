// Package units writes quantities for people: sizes in bytes in decimal units.
package units

import "fmt"

// Bytes writes a size in bytes as "512 B", "1.3 MB", "2.4 GB" (decimal units, up to TB).
func Bytes(b uint64) string {
	units := []string{"B", "kB", "MB", "GB", "TB"}
	v, i := float64(b), 0
	for v >= 1000 && i < len(units)-1 {
		v /= 1000
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d B", b)
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}
