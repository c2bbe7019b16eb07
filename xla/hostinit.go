package xla

import (
	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/pkg/errors"
)

// InitializeOnHost gives the variables of ctx their initial values on the host, with GoMLX's pure-Go backend,
// whatever engine will then run ctx's graphs. build builds, in a graph of its own on the pure-Go backend, what
// creates ctx's variables (a model's forward pass); that graph is never compiled or run. Every variable of ctx
// that has no value then gets its initializer's value, and every value ends in host memory, detached from any
// backend, so that the engine that first runs one of ctx's graphs copies it to its devices.
//
// Two reasons to initialise this way rather than let the first graph's engine do it (GoMLX's default):
//   - The same random state gives the same initial values on every engine. The pure-Go backend draws from Go's
//     PCG generator and XLA from its own, so without this a seed would name one network on pure Go and another
//     on XLA (CPU, CUDA or TPU alike).
//   - XLA does not compile the initialisation graph. Its random draws (two per weight matrix, for W and B) made
//     it one of the costlier programs of a small run to compile: on XLA's CPU plugin, 92 s of the 397 s that
//     nowt's trainer and models tests spent compiling (more than their 54 training steps' 60 s), and half of
//     the time of a 10–50-step ResNet-8 fit (5.5 s against 2.5 s without it).
//
// The graphs that then run on ctx meet variables that already exist: build them on ctx.Checked(false) or
// ctx.Reuse(), as GoMLX asks of any graph that is not the first to create a variable. Variables that already
// have a value (loaded from a checkpoint, set by the caller) keep it; ctx's random state
// (context.RNGStateVariableName) advances as the draws consume it, as it would on any engine. A panic while
// building (GoMLX's way of reporting a bad graph) is returned as an error, and so, before anything is allocated,
// is a network whose values would not fit in the host's available memory (a [*HostMemoryError]).
func InitializeOnHost(ctx *context.Context, build func(ctx *context.Context, g *graph.Graph)) error {
	return initializeOnHost(ctx, func(backend backends.Backend) error { return buildOnly(ctx, backend, build) })
}

// InitializeOnHostFor is InitializeOnHost for the variables that fn creates: fn is any function
// context.NewExec takes (func(ctx *context.Context, x, y *graph.Node) *graph.Node, and the like), built on
// parameters of args' shapes and prepared by the pure-Go backend (whose compilation is only bookkeeping), never
// run; args are what the caller will execute fn with (tensors or Go values), and are neither read nor moved.
func InitializeOnHostFor(ctx *context.Context, fn any, args ...any) error {
	return initializeOnHost(ctx, func(backend backends.Backend) error {
		shapesOnly := make([]any, len(args))
		for i, arg := range args {
			if t, ok := arg.(*tensors.Tensor); ok {
				arg = tensors.FromShape(t.Shape()) // The caller's tensor stays off the pure-Go backend.
			}
			shapesOnly[i] = arg
		}
		e, err := context.NewExecAny(backend, ctx, fn)
		if err != nil {
			return errors.WithMessage(err, "initialising variables on the host: building the graph")
		}
		defer e.Finalize()
		if err := e.PreCompile(shapesOnly...); err != nil {
			return errors.WithMessage(err, "initialising variables on the host: building the graph")
		}
		return nil
	})
}

// initializeOnHost is InitializeOnHost with build, which creates ctx's variables, given the pure-Go backend.
func initializeOnHost(ctx *context.Context, build func(backend backends.Backend) error) error {
	backend, err := newWithConfig(DefaultGoConfig)
	if err != nil {
		return errors.WithMessage(err, "initialising variables on the host")
	}
	defer backend.Finalize()
	if err := build(backend); err != nil {
		return err
	}
	if err := checkHostMemory(ctx); err != nil {
		return errors.WithMessage(err, "initialising variables on the host")
	}
	if err := ctx.InitializeVariables(backend, nil); err != nil {
		return errors.WithMessage(err, "initialising variables on the host")
	}
	for v := range ctx.IterVariables() {
		if !v.HasValue() {
			continue
		}
		value, err := v.Value()
		if err == nil {
			err = value.ToLocal()
		}
		if err != nil {
			return errors.WithMessagef(err, "initialising variables on the host: moving %s to host memory", v.ScopeAndName())
		}
	}
	return nil
}

// buildOnly runs build on a new graph of backend and finalizes the graph without compiling it.
func buildOnly(ctx *context.Context, backend backends.Backend, build func(ctx *context.Context, g *graph.Graph)) (err error) {
	g := graph.NewGraph(backend, "InitializeOnHost")
	defer g.Finalize()
	defer func() {
		if r := recover(); r != nil {
			if e, isErr := r.(error); isErr {
				err = errors.WithMessage(e, "initialising variables on the host: building the graph")
			} else {
				err = errors.Errorf("initialising variables on the host: building the graph: %v", r)
			}
		}
	}()
	build(ctx, g)
	return nil
}
