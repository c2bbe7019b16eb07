"""Training-step speed of nowt's benchmark models in plain PyTorch, for scripts/bench-peers.sh (CPU) and
scripts/gpu-check.sh (NVIDIA GPU).

Prints CSV rows: system,model,rule,batch,first_step_s,step_s,images_per_s (rule is always bp: autograd).
The models follow scripts/peers/models_spec.md (PyTorch's own NCHW layout; ResNet-50 is v1.5, torchvision's).
One step = forward, backward and torch.optim.SGD (momentum 0.9, weight decay 1e-4 on weights only); inputs are a
fixed batch in memory. On a GPU (--device cuda) the batch is copied from pinned host memory every step, as nowt's
step takes its batch from the host, every step ends with a synchronisation (nowt's execution waits for its end
too), the images are channels-last (NHWC, as nowt's) and cuDNN picks its algorithms (cudnn.benchmark); TF32 is
allowed in convolutions and matrix products, as XLA's default precision allows it; --dtype bfloat16 runs the
forward pass under torch.autocast (bfloat16 compute, float32 weights and optimizer: mixed precision, as nowt's).
"""
import argparse
import os
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class CifarBlock(nn.Module):
    def __init__(self, cin, c, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, c, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.stride, self.extra = stride, c - cin

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        sc = x
        if self.stride != 1 or self.extra:
            sc = x[:, :, ::self.stride, ::self.stride]
            sc = F.pad(sc, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))
        return F.relu(h + sc)


class ResNet20(nn.Module):
    def __init__(self, width=16, n=3, classes=10):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        blocks, cin = [], width
        for stage in range(3):
            c = width << stage
            for blk in range(n):
                blocks.append(CifarBlock(cin, c, 2 if stage > 0 and blk == 0 else 1))
                cin = c
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.blocks(F.relu(self.bn(self.conv(x))))
        return self.fc(x.mean(dim=(2, 3)))


class BasicBlock(nn.Module):
    expansion = 1  # output channels ÷ c

    def __init__(self, cin, c, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, c, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.proj = None
        if stride != 1 or cin != c:
            self.proj = nn.Sequential(nn.Conv2d(cin, c, 1, stride, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return F.relu(h + (x if self.proj is None else self.proj(x)))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, c, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, c, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, stride, 1, bias=False)  # v1.5: the stride on the 3x3
        self.bn2 = nn.BatchNorm2d(c)
        self.conv3 = nn.Conv2d(c, 4 * c, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(4 * c)
        self.proj = None
        if stride != 1 or cin != 4 * c:
            self.proj = nn.Sequential(nn.Conv2d(cin, 4 * c, 1, stride, bias=False), nn.BatchNorm2d(4 * c))

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = F.relu(self.bn2(self.conv2(h)))
        h = self.bn3(self.conv3(h))
        return F.relu(h + (x if self.proj is None else self.proj(x)))


class ImageNetResNet(nn.Module):
    """The ImageNet ResNets: 7x7/2 stem, 3x3/2 max-pool, four stages of blocks (64-128-256-512 base channels,
    stride 2 at the first block of stages 2-4), global average pool, dense to the classes."""

    def __init__(self, block, counts, classes=1000):
        super().__init__()
        self.conv = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn = nn.BatchNorm2d(64)
        blocks, cin = [], 64
        for stage, (c, n) in enumerate(zip([64, 128, 256, 512], counts)):
            for blk in range(n):
                blocks.append(block(cin, c, 2 if stage > 0 and blk == 0 else 1))
                cin = block.expansion * c
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn(self.conv(x))), 3, 2, 1)
        return self.fc(self.blocks(x).mean(dim=(2, 3)))


def mlp(sizes):
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


MODELS = {
    "mlp500": (lambda: mlp([784, 500, 10]), (784,), 10),
    "mlp1000": (lambda: mlp([784, 1000, 1000, 10]), (784,), 10),
    "resnet20": (ResNet20, (3, 32, 32), 10),
    "resnet18": (lambda: ImageNetResNet(BasicBlock, [2, 2, 2, 2]), (3, 224, 224), 1000),
    "resnet50": (lambda: ImageNetResNet(Bottleneck, [3, 4, 6, 3]), (3, 224, 224), 1000),
}


def bench(model_name, batch, steps, threads, device="cpu", dtype="float32", image_size=0):
    make, in_shape, classes = MODELS[model_name]
    if image_size and len(in_shape) == 3:
        in_shape = (in_shape[0], image_size, image_size)
    # Debian's build starts with one thread; on a loaded machine OpenMP's spinning threads can be far slower than
    # one, so scripts/bench-peers.sh runs both 1 and every core.
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cuda = device == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cuda.matmul.allow_tf32 = True
    images = len(in_shape) == 3
    layout = torch.channels_last if cuda and images else torch.contiguous_format
    model = make().to(device=device, memory_format=layout)
    decay = [p for n, p in model.named_parameters() if p.dim() > 1]
    no_decay = [p for n, p in model.named_parameters() if p.dim() <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 1e-4}, {"params": no_decay, "weight_decay": 0}],
                          lr=0.01, momentum=0.9)
    x = torch.randn((batch,) + in_shape)
    y = torch.randint(0, classes, (batch,))
    if cuda:
        x, y = x.contiguous(memory_format=layout).pin_memory(), y.pin_memory()
    autocast = torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=dtype == "bfloat16")

    def step():
        opt.zero_grad(set_to_none=True)
        xs, ys = (x.to(device, non_blocking=True), y.to(device, non_blocking=True)) if cuda else (x, y)
        with autocast:
            loss = F.cross_entropy(model(xs).float(), ys)
        loss.backward()
        opt.step()
        if cuda:
            torch.cuda.synchronize()
        return loss.item()

    t0 = time.perf_counter()
    step()
    first = time.perf_counter() - t0
    return first, median_seconds(step, steps, warmup=2)


def median_seconds(fn, runs, warmup):
    """Median seconds of fn over runs calls, after warmup untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, choices=sorted(MODELS))
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    ap.add_argument("--image-size", type=int, default=0, help="side of the images (default: the model's)")
    a = ap.parse_args()
    if a.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"bench_torch: --device cuda, but this PyTorch ({torch.__version__}) sees no CUDA device")
    first, med = bench(a.model, a.batch, a.steps, a.threads, a.device, a.dtype, a.image_size)
    where = f"{torch.get_num_threads()}threads" if a.device == "cpu" else "cuda"
    if a.dtype != "float32":
        where += "-" + a.dtype
    print(f"torch-{torch.__version__}-{where},{a.model},bp,{a.batch},{first:.4f},{med:.5f},{a.batch / med:.1f}", flush=True)


if __name__ == "__main__":
    main()
