package models

import (
	"fmt"
	"github.com/nowt-ml/nowt/layers"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// newCIFARResNet returns He et al.'s (2016, §4.2) CIFAR ResNet with 6n+2 layers: conv 3×3 (w) – BN – ReLU, three
// stages of n basic blocks with w, 2w, 4w channels (w = [ParamResNetWidth]; the first block of stages 2 and 3
// has stride 2), global average pool, dense to the classes. Shortcuts are option A, parameter-free: where the
// shape changes, the input is subsampled with stride 2 and zero-padded with (out−in)/2 channels on each side
// (as the common PyTorch reimplementations do).
//
// Scopes: "stem/conv", "stem/bn", "stage{1,2,3}/block{i}/{conv1,bn1,conv2,bn2}", "fc".
func newCIFARResNet(n, classes int) Fn {
	return func(ctx *context.Context, images *Node) *Node {
		width := mustParam(resnetWidth(ctx))
		zeroInit := mustParam(zeroInitResidual(ctx))
		stem := ctx.In("stem")
		x := relu(layers.BatchNorm(stem.In("bn"), conv(stem.In("conv"), images, width, 3, 1), false))
		for stage := 0; stage < 3; stage++ {
			channels := width << stage
			for block := 0; block < n; block++ {
				stride := 1
				if stage > 0 && block == 0 {
					stride = 2
				}
				blockCtx := ctx.In(fmt.Sprintf("stage%d", stage+1)).In(fmt.Sprintf("block%d", block))
				x = cifarBasicBlock(blockCtx, x, channels, stride, zeroInit)
			}
		}
		return classifier(ctx.In("fc"), layers.GlobalAvgPool(x), classes)
	}
}

// cifarBasicBlock is conv3×3(stride) – BN – ReLU – conv3×3 – BN, plus the option-A shortcut, then ReLU.
func cifarBasicBlock(ctx *context.Context, x *Node, channels, stride int, zeroInit bool) *Node {
	h := relu(layers.BatchNorm(ctx.In("bn1"), conv(ctx.In("conv1"), x, channels, 3, stride), false))
	h = layers.BatchNorm(ctx.In("bn2"), conv(ctx.In("conv2"), h, channels, 3, 1), zeroInit)
	return relu(Add(h, optionAShortcut(x, channels, stride)))
}

// optionAShortcut is He et al.'s parameter-free shortcut: x itself, or x subsampled with the stride and
// zero-padded to `channels` channels ((channels−in)/2 before, the rest after).
func optionAShortcut(x *Node, channels, stride int) *Node {
	inC := x.Shape().Dim(3)
	if stride == 1 && inC == channels {
		return x
	}
	s := layers.Subsample(x, stride)
	if extra := channels - inC; extra > 0 {
		dims := s.Shape().Dimensions
		before := shapes.Make(s.DType(), dims[0], dims[1], dims[2], extra/2)
		after := shapes.Make(s.DType(), dims[0], dims[1], dims[2], extra-extra/2)
		s = Concatenate([]*Node{Zeros(s.Graph(), before), s, Zeros(s.Graph(), after)}, 3)
	}
	return s
}

// cifarResNetScopes lists newCIFARResNet(n)'s layer scopes.
func cifarResNetScopes(n int) func(*context.Context) ([]string, error) {
	return func(*context.Context) ([]string, error) {
		scopes := []string{"stem/conv", "stem/bn"}
		for stage := 1; stage <= 3; stage++ {
			for block := 0; block < n; block++ {
				for _, layer := range []string{"conv1", "bn1", "conv2", "bn2"} {
					scopes = append(scopes, fmt.Sprintf("stage%d/block%d/%s", stage, block, layer))
				}
			}
		}
		return append(scopes, "fc"), nil
	}
}
