package xla

import (
	"os"
	"strings"
	"sync"

	"github.com/gomlx/gomlx/backends"
	"github.com/pkg/errors"
)

// TestBackendEnv is the environment variable that moves nowt's numerical tests (packages feedback and models:
// gradients against references, convolution implementations against each other) and their benchmarks off the
// pure-Go backend, e.g. NOWT_TEST_BACKEND=xla:cuda, or go:<options> for another pure-Go configuration. It takes
// the same specs as -backend. scripts/gpu-check.sh uses it to run those tests on a GPU.
const TestBackendEnv = "NOWT_TEST_BACKEND"

// testBackends holds the backend made for each spec $NOWT_TEST_BACKEND has named in this process, so that a test
// that changes the variable gets the backend it names, not the one an earlier test made.
var testBackends struct {
	mu     sync.Mutex
	bySpec map[string]testBackendResult
}

type testBackendResult struct {
	backend backends.Backend
	err     error
}

// TestBackendSpec returns the backend spec tests run on: $NOWT_TEST_BACKEND, or "go" when it is unset.
// Tests that train through the trainer (which takes a spec, not a backend) use it.
func TestBackendSpec() string {
	if spec := os.Getenv(TestBackendEnv); spec != "" {
		return spec
	}
	return SpecGo
}

// TestBackendIsXLA reports whether tests run on an XLA backend ($NOWT_TEST_BACKEND is "xla" or "xla:...").
func TestBackendIsXLA() bool {
	spec := TestBackendSpec()
	return spec == "xla" || strings.HasPrefix(spec, "xla:")
}

// TestBackend returns the backend tests run on: the one $NOWT_TEST_BACKEND names, created once per process and
// spec (an XLA backend owns a PJRT client), or, when it is unset, a new pure-Go backend in DefaultGoConfig.
func TestBackend() (backends.Backend, error) {
	spec := os.Getenv(TestBackendEnv)
	if spec == "" {
		return newWithConfig(DefaultGoConfig)
	}
	testBackends.mu.Lock()
	defer testBackends.mu.Unlock()
	r, found := testBackends.bySpec[spec]
	if !found {
		r.backend, r.err = New(spec, nil)
		if testBackends.bySpec == nil {
			testBackends.bySpec = make(map[string]testBackendResult)
		}
		testBackends.bySpec[spec] = r
	}
	if r.err != nil {
		return nil, errors.WithMessagef(r.err, "$%s=%q", TestBackendEnv, spec)
	}
	return r.backend, nil
}
