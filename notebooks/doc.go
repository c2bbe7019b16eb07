// Package notebooks holds nowt's GoNB (Go kernel for Jupyter) notebooks; it has no Go API.
//
//   - tutorial.ipynb trains an MLP on MNIST under each learning rule (bp, fa, ss, wm, kp) with package trainer,
//     then plots the test accuracy per rule and the angle between B and Wᵀ per layer.
//   - new-rule.ipynb adds a learning rule from a user's program: it implements feedback.Rule, registers it,
//     checks its gradient on one dense layer and trains the MLP with it.
//
// The notebooks use nowt's packages exactly as a user's program would. The package's test turns their code
// cells into Go programs the way GoNB does and compiles them, so a change of nowt's API that breaks a notebook
// fails `go test ./...`. It never runs them: `make notebooks` (scripts/run-notebooks.sh) does, headless, where
// Jupyter and GoNB are installed; the test checks that script against a fake jupyter (a cell that panics, exits
// non-zero or does not compile fails it).
package notebooks
