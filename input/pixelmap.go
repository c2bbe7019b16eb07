package input

// pixelMap converts 8-bit, channels-last pixels to the pipeline's floats through one lookup table per
// channel: v/255, then (v − mean)/std where the dataset is normalised. Each table entry is computed with the
// same float32 operations as toFloat followed by normalizeChannels, so the values are bit-identical to that
// path, at the cost of one load per value instead of a multiply and a division.
type pixelMap struct {
	tables [][256]float32 // one per channel
}

// newPixelMap returns the map for c channels, normalised by mean and std when they are non-nil.
func newPixelMap(c int, mean, std []float32) *pixelMap {
	m := &pixelMap{tables: make([][256]float32, c)}
	for v := range 256 {
		px := make([]float32, c)
		for k := range px {
			px[k] = float32(uint8(v)) * (1.0 / 255) // as toFloat
		}
		if mean != nil {
			normalizeChannels(px, mean, std)
		}
		for k := range c {
			m.tables[k][v] = px[k]
		}
	}
	return m
}

// convert writes the mapped values of src into dst (len(dst) ≥ len(src)).
func (m *pixelMap) convert(src []uint8, dst []float32) {
	if len(m.tables) == 1 {
		t := &m.tables[0]
		dst = dst[:len(src)]
		i := 0
		for ; i+8 <= len(src); i += 8 { // eight independent lookups per iteration
			s, d := src[i:i+8:i+8], dst[i:i+8:i+8]
			d[0], d[1], d[2], d[3] = t[s[0]], t[s[1]], t[s[2]], t[s[3]]
			d[4], d[5], d[6], d[7] = t[s[4]], t[s[5]], t[s[6]], t[s[7]]
		}
		for ; i < len(src); i++ {
			dst[i] = t[src[i]]
		}
		return
	}
	c := len(m.tables)
	for i := 0; i+c <= len(src); i += c {
		for k, v := range src[i : i+c] {
			dst[i+k] = m.tables[k][v]
		}
	}
}
