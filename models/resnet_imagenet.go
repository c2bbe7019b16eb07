package models

import (
	"fmt"
	"github.com/nowt-ml/nowt/layers"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// newImageNetResNet returns torchvision's ImageNet ResNet: conv 7×7/2 (64) – BN – ReLU – max-pool 3×3/2 (padding
// 1), four stages of blocks with 64, 128, 256, 512 base channels (stride 2 at the first block of stages 2–4),
// global average pool, dense to the classes. Basic blocks (ResNet-18/34) are conv3×3 – BN – ReLU – conv3×3 – BN;
// bottleneck blocks (ResNet-50) conv1×1 – BN – ReLU – conv3×3(stride) – BN – ReLU – conv1×1(4×) – BN, the
// stride on the 3×3 conv (v1.5). Where the shape changes the shortcut is conv1×1(stride) – BN.
//
// Scopes: "stem/conv", "stem/bn", "stage{1..4}/block{i}/{conv1,bn1,conv2,bn2[,conv3,bn3]}",
// "stage{s}/block0/downsample/{conv,bn}", "fc".
func newImageNetResNet(blocks []int, bottleneck bool, classes int) Fn {
	return func(ctx *context.Context, images *Node) *Node {
		zeroInit := mustParam(zeroInitResidual(ctx))
		stem := ctx.In("stem")
		x := relu(layers.BatchNorm(stem.In("bn"), conv(stem.In("conv"), images, 64, 7, 2), false))
		x = layers.MaxPool2D(ctx, x, 3, 2, 1)
		for stage, n := range blocks {
			channels := 64 << stage
			for block := 0; block < n; block++ {
				stride := 1
				if stage > 0 && block == 0 {
					stride = 2
				}
				blockCtx := ctx.In(fmt.Sprintf("stage%d", stage+1)).In(fmt.Sprintf("block%d", block))
				if bottleneck {
					x = bottleneckBlock(blockCtx, x, channels, stride, zeroInit)
				} else {
					x = basicBlock(blockCtx, x, channels, stride, zeroInit)
				}
			}
		}
		return classifier(ctx.In("fc"), layers.GlobalAvgPool(x), classes)
	}
}

// projection is the shortcut: x itself, or conv1×1(stride) – BN where the shape changes.
func projection(ctx *context.Context, x *Node, channels, stride int) *Node {
	if stride == 1 && x.Shape().Dim(3) == channels {
		return x
	}
	ds := ctx.In("downsample")
	return layers.BatchNorm(ds.In("bn"), conv(ds.In("conv"), x, channels, 1, stride), false)
}

// basicBlock is torchvision's BasicBlock (expansion 1).
func basicBlock(ctx *context.Context, x *Node, channels, stride int, zeroInit bool) *Node {
	h := relu(layers.BatchNorm(ctx.In("bn1"), conv(ctx.In("conv1"), x, channels, 3, stride), false))
	h = layers.BatchNorm(ctx.In("bn2"), conv(ctx.In("conv2"), h, channels, 3, 1), zeroInit)
	return relu(Add(h, projection(ctx, x, channels, stride)))
}

// bottleneckBlock is torchvision's Bottleneck (expansion 4, stride on the 3×3 conv).
func bottleneckBlock(ctx *context.Context, x *Node, channels, stride int, zeroInit bool) *Node {
	h := relu(layers.BatchNorm(ctx.In("bn1"), conv(ctx.In("conv1"), x, channels, 1, 1), false))
	h = relu(layers.BatchNorm(ctx.In("bn2"), conv(ctx.In("conv2"), h, channels, 3, stride), false))
	h = layers.BatchNorm(ctx.In("bn3"), conv(ctx.In("conv3"), h, 4*channels, 1, 1), zeroInit)
	return relu(Add(h, projection(ctx, x, 4*channels, stride)))
}

// imageNetResNetScopes lists newImageNetResNet(blocks, bottleneck)'s layer scopes: the first block of each
// stage has a projection shortcut ("downsample") wherever its input's shape differs from its output's.
func imageNetResNetScopes(blocks []int, bottleneck bool) func(*context.Context) ([]string, error) {
	return func(*context.Context) ([]string, error) {
		scopes := []string{"stem/conv", "stem/bn"}
		names := []string{"conv1", "bn1", "conv2", "bn2"}
		expansion := 1
		if bottleneck {
			names = append(names, "conv3", "bn3")
			expansion = 4
		}
		in := 64
		for stage, n := range blocks {
			out := (64 << stage) * expansion
			for block := 0; block < n; block++ {
				prefix := fmt.Sprintf("stage%d/block%d/", stage+1, block)
				for _, layer := range names {
					scopes = append(scopes, prefix+layer)
				}
				if block == 0 && (stage > 0 || in != out) {
					scopes = append(scopes, prefix+"downsample/conv", prefix+"downsample/bn")
				}
				in = out
			}
		}
		return append(scopes, "fc"), nil
	}
}
