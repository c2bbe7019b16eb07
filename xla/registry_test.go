package xla

import (
	"sync"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/stretchr/testify/assert"
)

// finalizable is a backend that only knows whether it is finalized (the rest of the interface is nil).
type finalizable struct {
	backends.Backend
	finalized bool
}

func (f *finalizable) IsFinalized() bool { return f.finalized }

// TestForgetFinalized: the registries New fills (plugin paths, oneDNN backends) drop the backends that have been
// finalized and keep the live ones with their values.
func TestForgetFinalized(t *testing.T) {
	var registry sync.Map
	live, finalized := &finalizable{}, &finalizable{finalized: true}
	registry.Store(live, "/lib/live.so")
	registry.Store(finalized, "/lib/finalized.so")
	forgetFinalized(&registry)
	path, ok := registry.Load(live)
	assert.True(t, ok, "a live backend was forgotten")
	assert.Equal(t, "/lib/live.so", path)
	_, ok = registry.Load(finalized)
	assert.False(t, ok, "a finalized backend is still registered")
	live.finalized = true
	forgetFinalized(&registry)
	registry.Range(func(key, _ any) bool {
		t.Errorf("backend %v still registered after it was finalized", key)
		return true
	})
}
