// Package models defines the networks nowt trains, chosen by name ([New], [Names]). Every weight layer is a
// feedback layer (feedback.Dense or feedback.NewConv2D), so the learning rule set in the context
// (feedback.ParamRule) governs the whole network: every convolution, every projection shortcut and the final
// classifier. Batch norm, ReLU, pooling and residual additions (package layers) backpropagate as usual.
//
// Hyperparameters are read from the context when the model is built (see the Param* constants); [CheckParams]
// validates them beforehand. Initialisation follows torchvision: convolutions Kaiming-normal with fan_out
// (std = √(2/(kh·kw·cout))), the classifier of the CNN and the ResNets uniform on ±1/√fan_in (PyTorch's
// default Linear weights; biases start at 0, feedback's convention), the MLP Glorot (Xavier) uniform.
package models

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/nowt-ml/nowt/feedback"
	"github.com/nowt-ml/nowt/internal/param"
	"github.com/nowt-ml/nowt/layers"
)

// Fn builds a model's logits [batch, classes] from images [batch, H, W, C] (float32 or float64), in ctx's
// scope. Training vs inference (batch norm) follows GoMLX's convention ctx.IsTraining(g).
type Fn func(ctx *context.Context, images *Node) *Node

// Model hyperparameters (context parameters), read when the model is built.
const (
	// ParamMLPHidden is the MLP's hidden widths, comma-separated, e.g. "1000,1000"; "" means no hidden layer.
	// Default "500" (the authors' MNIST network 784-500-10).
	ParamMLPHidden = "mlp_hidden"
	// ParamMLPActivation is the MLP's hidden activation, "sigmoid" or "relu". Default "sigmoid".
	ParamMLPActivation = "mlp_activation"
	// ParamResNetWidth is the CIFAR ResNets' first-stage width (stages have w, 2w, 4w channels). Default 16.
	ParamResNetWidth = "resnet_width"
	// ParamZeroInitResidual zero-initialises the scale of the last batch norm of every residual block, so each
	// block starts as the identity. Default false.
	ParamZeroInitResidual = "zero_init_residual"
)

type entry struct {
	description string
	build       func(classes int) Fn
	// scopes lists the scopes of the model's layers (relative to the model's scope), reading its
	// hyperparameters from ctx as build does; TestLayerScopesMatchVariables holds it to what build creates.
	scopes func(ctx *context.Context) ([]string, error)
}

var registry = map[string]entry{
	"mlp": {"multilayer perceptron on flattened images, widths mlp_hidden, activation mlp_activation (default 500 sigmoid units)",
		newMLP, mlpScopes},
	"cnn": {"LeNet-style CNN: conv5x5(6)-pool-conv5x5(16)-pool-fc120-fc84, ReLU, for 28x28x1 or 32x32x3 images",
		newCNN, cnnScopes},
	"resnet8": {"CIFAR ResNet-8 (He et al. 2016 family, for quick checks): 3 stages of 1 basic block, widths w/2w/4w, option-A shortcuts",
		func(c int) Fn { return newCIFARResNet(1, c) }, cifarResNetScopes(1)},
	"resnet20": {"CIFAR ResNet-20 (He et al. 2016): 3 stages of 3 basic blocks, widths w/2w/4w, option-A shortcuts",
		func(c int) Fn { return newCIFARResNet(3, c) }, cifarResNetScopes(3)},
	"resnet32": {"CIFAR ResNet-32 (He et al. 2016): 3 stages of 5 basic blocks, widths w/2w/4w, option-A shortcuts",
		func(c int) Fn { return newCIFARResNet(5, c) }, cifarResNetScopes(5)},
	"resnet56": {"CIFAR ResNet-56 (He et al. 2016): 3 stages of 9 basic blocks, widths w/2w/4w, option-A shortcuts",
		func(c int) Fn { return newCIFARResNet(9, c) }, cifarResNetScopes(9)},
	"resnet18": {"ImageNet ResNet-18 (torchvision layout): 7x7/2 stem, 3x3/2 max-pool, basic blocks [2,2,2,2]",
		func(c int) Fn { return newImageNetResNet([]int{2, 2, 2, 2}, false, c) },
		imageNetResNetScopes([]int{2, 2, 2, 2}, false)},
	"resnet34": {"ImageNet ResNet-34 (torchvision layout): 7x7/2 stem, 3x3/2 max-pool, basic blocks [3,4,6,3]",
		func(c int) Fn { return newImageNetResNet([]int{3, 4, 6, 3}, false, c) },
		imageNetResNetScopes([]int{3, 4, 6, 3}, false)},
	"resnet50": {"ImageNet ResNet-50 (torchvision v1.5): 7x7/2 stem, 3x3/2 max-pool, bottleneck blocks [3,4,6,3]",
		func(c int) Fn { return newImageNetResNet([]int{3, 4, 6, 3}, true, c) },
		imageNetResNetScopes([]int{3, 4, 6, 3}, true)},
}

// order is the order [Names] lists the models in: the small networks, then the CIFAR ResNets and the ImageNet
// ResNets, each family from the shallowest to the deepest. TestRegistry holds it to the registry.
var order = []string{"mlp", "cnn", "resnet8", "resnet20", "resnet32", "resnet56", "resnet18", "resnet34", "resnet50"}

// Names lists the registered models: the small networks, then the CIFAR and the ImageNet ResNets, each family
// from the shallowest to the deepest.
func Names() []string {
	return slices.Clone(order)
}

// Describe returns a one-line description of the model, or "" if the name is unknown.
func Describe(name string) string {
	return registry[strings.ToLower(strings.TrimSpace(name))].description
}

// New returns the model `name` (case-insensitive) for `classes` classes. An unknown name is an error that lists
// the valid ones. Hyperparameters are read from the context when the returned Fn builds the graph; an invalid
// one makes it panic (GoMLX's graph-building convention) with the error [CheckParams] returns.
func New(name string, classes int) (Fn, error) {
	e, found := registry[strings.ToLower(strings.TrimSpace(name))]
	if !found {
		return nil, fmt.Errorf("unknown model %q: valid models are %s", name, strings.Join(Names(), ", "))
	}
	if classes < 1 {
		return nil, fmt.Errorf("model %q: classes must be ≥ 1, got %d", name, classes)
	}
	build := e.build(classes)
	return func(ctx *context.Context, images *Node) *Node {
		// Rules that project the output error (dfa) read the classes and the error published on the logits.
		ctx.SetParam(feedback.ParamOutputDim, classes)
		return feedback.OutputError(ctx, build(ctx, images))
	}, nil
}

// LayerScopes lists the scopes of model `name`'s layers (every feedback layer and batch norm), relative to the
// model's own scope, as the model built with the hyperparameters in ctx creates them: "fc0", "out",
// "stage1/block0/conv1", ... They are known without building a graph, so that a setting aimed at a layer
// (-set "/model/<scope>/feedback_rule=wm") can be checked before any work starts. A nil ctx means the default
// hyperparameters.
func LayerScopes(name string, ctx *context.Context) ([]string, error) {
	e, found := registry[strings.ToLower(strings.TrimSpace(name))]
	if !found {
		return nil, fmt.Errorf("unknown model %q: valid models are %s", name, strings.Join(Names(), ", "))
	}
	if ctx == nil {
		ctx = context.New()
	}
	return e.scopes(ctx)
}

// CheckParams validates the model hyperparameters set in ctx (at its scope; the layers' also below it, see
// layers.CheckParams), so that a caller can report a bad setting before building a graph, which panics with the
// same error. A value of another kind than the setting's default is an error (GoMLX's context would read the
// number 16 as the mlp_hidden "\x10", and panic on the resnet_width "32").
func CheckParams(ctx *context.Context) error {
	if _, err := mlpHidden(ctx); err != nil {
		return err
	}
	if _, err := mlpActivation(ctx); err != nil {
		return err
	}
	if _, err := resnetWidth(ctx); err != nil {
		return err
	}
	if _, err := zeroInitResidual(ctx); err != nil {
		return err
	}
	return layers.CheckParams(ctx)
}

// mustParam panics with err if it is not nil, and returns v.
func mustParam[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func mlpHidden(ctx *context.Context) ([]int, error) {
	spec, err := param.Get(ctx, ParamMLPHidden, defaultMLPHidden)
	if err != nil {
		return nil, fmt.Errorf("models: %w (comma-separated positive widths, e.g. \"1000,1000\")", err)
	}
	var widths []int
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			if strings.TrimSpace(spec) == "" {
				break
			}
			return nil, fmt.Errorf("models: %s=%q is not valid: want comma-separated positive widths, e.g. \"1000,1000\"", ParamMLPHidden, spec)
		}
		w, err := strconv.Atoi(part)
		if err != nil || w < 1 {
			return nil, fmt.Errorf("models: %s=%q is not valid: %q is not a positive width (want comma-separated positive widths, e.g. \"1000,1000\")", ParamMLPHidden, spec, part)
		}
		widths = append(widths, w)
	}
	return widths, nil
}

func mlpActivation(ctx *context.Context) (func(*Node) *Node, error) {
	act, err := param.Get(ctx, ParamMLPActivation, defaultMLPActivation)
	if err != nil {
		return nil, fmt.Errorf("models: %w (sigmoid or relu)", err)
	}
	switch strings.ToLower(strings.TrimSpace(act)) {
	case "sigmoid":
		return Sigmoid, nil
	case "relu":
		return relu, nil
	default:
		return nil, fmt.Errorf("models: %s=%q is not valid: use sigmoid or relu", ParamMLPActivation, act)
	}
}

func resnetWidth(ctx *context.Context) (int, error) {
	w, err := param.Get(ctx, ParamResNetWidth, defaultResNetWidth)
	if err != nil {
		return 0, fmt.Errorf("models: %w", err)
	}
	if w < 1 {
		return 0, fmt.Errorf("models: %s=%d is not valid: want a positive width", ParamResNetWidth, w)
	}
	return w, nil
}

func zeroInitResidual(ctx *context.Context) (bool, error) {
	zero, err := param.Get(ctx, ParamZeroInitResidual, false)
	if err != nil {
		return false, fmt.Errorf("models: %w", err)
	}
	return zero, nil
}

// relu is max(x, 0).
func relu(x *Node) *Node { return Max(x, ZerosLike(x)) }

// kaimingConvInit is torchvision's conv init: normal, std = √(2/fan_out), fan_out = kh·kw·cout.
func kaimingConvInit(ctx *context.Context) context.VariableInitializer {
	return func(g *Graph, shape shapes.Shape) *Node {
		fanOut := shape.Dim(0) * shape.Dim(1) * shape.Dim(3)
		return MulScalar(ctx.RandomNormal(g, shape), math.Sqrt(2/float64(fanOut)))
	}
}

// torchLinearInit is PyTorch's default Linear weight init: uniform on ±1/√fan_in (W is [in, out]).
func torchLinearInit(ctx *context.Context) context.VariableInitializer {
	return func(g *Graph, shape shapes.Shape) *Node {
		bound := 1 / math.Sqrt(float64(shape.Dim(0)))
		return MulScalar(AddScalar(ctx.RandomUniform(g, shape), -0.5), 2*bound)
	}
}

// conv is a bias-free feedback convolution with "same" padding (PyTorch's padding=k//2) and Kaiming init.
func conv(ctx *context.Context, x *Node, outChannels, kernel, stride int) *Node {
	return feedback.NewConv2D(ctx, x, outChannels, kernel).Stride(stride).PadSame().Bias(false).
		Initializer(kaimingConvInit(ctx)).Done()
}

// classifier is the final feedback dense layer, with a bias and PyTorch's default Linear init.
func classifier(ctx *context.Context, x *Node, classes int) *Node {
	return feedback.NewDense(ctx, x, classes).Bias(true).Initializer(torchLinearInit(ctx)).Done()
}

// DefaultParams returns every model hyperparameter (and the layers package's) with its default, so a program can pre-set them in a
// context (GoMLX's -set flag only accepts known parameters) and list them.
func DefaultParams() map[string]any {
	params := map[string]any{}
	for _, s := range Settings() {
		params[s.Name] = s.Default
	}
	return params
}

// The models' defaults: the authors' MNIST network 784-500-10 (sigmoid units), He et al.'s CIFAR ResNet widths.
const (
	defaultMLPHidden     = "500"
	defaultMLPActivation = "sigmoid"
	defaultResNetWidth   = 16
)

// Setting describes one model or layer hyperparameter: its name, flag, default, valid values and doc.
type Setting = layers.Setting

// Settings lists the models' hyperparameters and their layers' (package layers), by name.
func Settings() []Setting {
	settings := append(layers.Settings(),
		Setting{Name: ParamMLPHidden, Flag: "hidden", Default: defaultMLPHidden, Valid: "widths, e.g. 1000,1000", ModelWide: true,
			Doc: "MLP: hidden widths, comma-separated (\"\": no hidden layer)"},
		Setting{Name: ParamMLPActivation, Flag: "activation", Default: defaultMLPActivation, Valid: "sigmoid|relu", ModelWide: true,
			Doc: "MLP: hidden activation"},
		Setting{Name: ParamResNetWidth, Flag: "width", Default: defaultResNetWidth, Valid: "[1, ∞)", ModelWide: true,
			Doc: "CIFAR ResNets: first-stage width (stages of w, 2w, 4w channels)"},
		Setting{Name: ParamZeroInitResidual, Flag: "zero-init-residual", Default: false, ModelWide: true,
			Doc: "ResNets: zero-initialise the scale of each residual block's last batch norm (blocks start as the identity)"})
	slices.SortFunc(settings, func(a, b Setting) int { return strings.Compare(a.Name, b.Name) })
	return settings
}
