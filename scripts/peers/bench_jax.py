"""Training-step speed of nowt's benchmark models in plain JAX, for scripts/bench-peers.sh (CPU) and
scripts/gpu-check.sh (JAX's default backend there: the GPU, named in the system column as jax-VERSION@gpu).

Prints CSV rows: system,model,rule,batch,first_step_s,step_s,images_per_s. The rule is bp (JAX's autodiff) unless
--rule ss (the MLPs only): sign symmetry, each dense layer's input gradient through scale·sign(W) instead of W
(jax.custom_vjp; scale the RMS of W's initialisation, fixed), the cost nowt's rule "ss" pays on the same compiler.
The models follow scripts/peers/models_spec.md. One jitted step = forward, backward and the SGD update (momentum
0.9, weight decay 1e-4), parameters and optimizer state donated; inputs are a fixed batch already on the device,
or with --feed host a host (NumPy) batch that each step transfers, as a training loop feeding its batches does.
"""
import argparse
import statistics
import time

import jax
import numpy as np
import jax.numpy as jnp
from jax import lax

from jax_plugin import use_plugin

MOMENTUM, WEIGHT_DECAY, LR = 0.9, 1e-4, 0.01


def he(key, shape, fan_in):
    return jax.random.normal(key, shape, jnp.float32) * jnp.sqrt(2.0 / fan_in)


class Builder:
    """Collects parameters (trainable) and batch-norm state while a model is first traced."""

    def __init__(self, key):
        self.key, self.params, self.state = key, {}, {}

    def next(self):
        self.key, k = jax.random.split(self.key)
        return k


def dense_init(b, name, fin, fout):
    b.params[name + "/w"] = he(b.next(), (fin, fout), fin)
    b.params[name + "/b"] = jnp.zeros((fout,), jnp.float32)


def conv_init(b, name, k, cin, cout):
    b.params[name + "/w"] = he(b.next(), (k, k, cin, cout), k * k * cin)


def bn_init(b, name, c):
    b.params[name + "/scale"] = jnp.ones((c,), jnp.float32)
    b.params[name + "/offset"] = jnp.zeros((c,), jnp.float32)
    b.state[name + "/mean"] = jnp.zeros((c,), jnp.float32)
    b.state[name + "/var"] = jnp.ones((c,), jnp.float32)


def conv(p, name, x, stride, pad):
    return lax.conv_general_dilated(x, p[name + "/w"], (stride, stride), [(pad, pad), (pad, pad)],
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))


def bn(p, s, new_s, name, x):
    mean = jnp.mean(x, axis=(0, 1, 2))
    var = jnp.var(x, axis=(0, 1, 2))
    new_s[name + "/mean"] = 0.99 * s[name + "/mean"] + 0.01 * mean
    new_s[name + "/var"] = 0.99 * s[name + "/var"] + 0.01 * var
    return (x - mean) * lax.rsqrt(var + 1e-3) * p[name + "/scale"] + p[name + "/offset"]


# ---- MLPs

def mlp_init(b, sizes):
    for i in range(len(sizes) - 1):
        dense_init(b, f"fc{i}", sizes[i], sizes[i + 1])


def sign_symmetric_matmul(scale):
    """x @ w whose input gradient goes through scale·sign(w) instead of w (the weight gradient is autodiff's)."""
    @jax.custom_vjp
    def matmul(x, w):
        return x @ w

    def forward(x, w):
        return x @ w, (x, w)

    def backward(res, g):
        x, w = res
        return g @ (scale * jnp.sign(w)).T, x.T @ g

    matmul.defvjp(forward, backward)
    return matmul


def mlp_apply(sizes, rule="bp"):
    """The MLP's forward pass; with rule "ss" each dense layer's input gradient goes through scale·sign(W), scale
    the RMS of W's initialisation."""
    def apply(p, s, x):
        for i in range(len(sizes) - 1):
            w = p[f"fc{i}/w"]
            x = (sign_symmetric_matmul(float(np.sqrt(2.0 / sizes[i])))(x, w) if rule == "ss" else x @ w) + p[f"fc{i}/b"]
            if i < len(sizes) - 2:
                x = jax.nn.relu(x)
        return x, dict(s)
    return apply


# ---- CIFAR ResNet-20

def resnet20_init(b, width=16, n=3, classes=10):
    conv_init(b, "stem/conv", 3, 3, width)
    bn_init(b, "stem/bn", width)
    cin = width
    for stage in range(3):
        c = width << stage
        for blk in range(n):
            pre = f"s{stage}b{blk}"
            conv_init(b, pre + "/conv1", 3, cin, c)
            bn_init(b, pre + "/bn1", c)
            conv_init(b, pre + "/conv2", 3, c, c)
            bn_init(b, pre + "/bn2", c)
            cin = c
    dense_init(b, "fc", cin, classes)


def resnet20_apply(p, s, x, width=16, n=3):
    ns = {}
    x = jax.nn.relu(bn(p, s, ns, "stem/bn", conv(p, "stem/conv", x, 1, 1)))
    for stage in range(3):
        c = width << stage
        for blk in range(n):
            pre = f"s{stage}b{blk}"
            stride = 2 if stage > 0 and blk == 0 else 1
            h = jax.nn.relu(bn(p, s, ns, pre + "/bn1", conv(p, pre + "/conv1", x, stride, 1)))
            h = bn(p, s, ns, pre + "/bn2", conv(p, pre + "/conv2", h, 1, 1))
            sc = x
            if stride != 1 or x.shape[-1] != c:
                sc = x[:, ::stride, ::stride, :]
                extra = c - x.shape[-1]
                sc = jnp.pad(sc, ((0, 0), (0, 0), (0, 0), (extra // 2, extra - extra // 2)))
            x = jax.nn.relu(h + sc)
    x = jnp.mean(x, axis=(1, 2))
    return x @ p["fc/w"] + p["fc/b"], ns


# ---- ImageNet ResNet-18

def resnet18_init(b, classes=1000):
    conv_init(b, "stem/conv", 7, 3, 64)
    bn_init(b, "stem/bn", 64)
    cin = 64
    for stage, c in enumerate([64, 128, 256, 512]):
        for blk in range(2):
            pre = f"s{stage}b{blk}"
            stride = 2 if stage > 0 and blk == 0 else 1
            conv_init(b, pre + "/conv1", 3, cin, c)
            bn_init(b, pre + "/bn1", c)
            conv_init(b, pre + "/conv2", 3, c, c)
            bn_init(b, pre + "/bn2", c)
            if stride != 1 or cin != c:
                conv_init(b, pre + "/proj", 1, cin, c)
                bn_init(b, pre + "/projbn", c)
            cin = c
    dense_init(b, "fc", cin, classes)


def resnet18_apply(p, s, x):
    ns = {}
    x = jax.nn.relu(bn(p, s, ns, "stem/bn", conv(p, "stem/conv", x, 2, 3)))
    x = lax.reduce_window(x, -jnp.inf, lax.max, (1, 3, 3, 1), (1, 2, 2, 1), [(0, 0), (1, 1), (1, 1), (0, 0)])
    cin = 64
    for stage, c in enumerate([64, 128, 256, 512]):
        for blk in range(2):
            pre = f"s{stage}b{blk}"
            stride = 2 if stage > 0 and blk == 0 else 1
            h = jax.nn.relu(bn(p, s, ns, pre + "/bn1", conv(p, pre + "/conv1", x, stride, 1)))
            h = bn(p, s, ns, pre + "/bn2", conv(p, pre + "/conv2", h, 1, 1))
            sc = x
            if stride != 1 or cin != c:
                sc = bn(p, s, ns, pre + "/projbn", conv(p, pre + "/proj", x, stride, 0))
            x = jax.nn.relu(h + sc)
            cin = c
    x = jnp.mean(x, axis=(1, 2))
    return x @ p["fc/w"] + p["fc/b"], ns


MLP_SIZES = {"mlp500": [784, 500, 10], "mlp1000": [784, 1000, 1000, 10]}
MODELS = {
    **{name: (lambda b, sizes=sizes: mlp_init(b, sizes), mlp_apply(sizes), (sizes[0],), sizes[-1])
       for name, sizes in MLP_SIZES.items()},
    "resnet20": (resnet20_init, resnet20_apply, (32, 32, 3), 10),
    "resnet18": (resnet18_init, resnet18_apply, (224, 224, 3), 1000),
}


def setup(model, batch, feed="device", image_size=0, rule="bp"):
    """The jitted training step of model under rule (ss: the MLPs only) and what it starts from: (step, params,
    velocity, state, x, y); step(params, velocity, state, x, y) returns the next three and the loss."""
    init, apply, in_shape, classes = MODELS[model]
    if rule == "ss":
        if model not in MLP_SIZES:
            raise SystemExit("--rule ss applies to the MLPs")
        apply = mlp_apply(MLP_SIZES[model], "ss")
    if image_size:  # the ResNets end in global average pooling: any image size fits
        if len(in_shape) != 3:
            raise SystemExit(f"--image-size applies to the ResNets, not {model}")
        in_shape = (image_size, image_size, in_shape[2])
    b = Builder(jax.random.PRNGKey(0))
    init(b)
    params, state = b.params, b.state
    velocity = jax.tree_util.tree_map(jnp.zeros_like, params)
    x = jax.random.normal(jax.random.PRNGKey(1), (batch,) + in_shape, jnp.float32)
    y = jax.random.randint(jax.random.PRNGKey(2), (batch,), 0, classes)
    if feed == "host":  # every call then transfers the batch, as nowt's rows (fed by its input pipeline) do
        x, y = np.asarray(x), np.asarray(y)

    def loss_fn(p, s, xb, yb):
        logits, ns = apply(p, s, xb)
        onehot = jax.nn.one_hot(yb, classes)
        return -jnp.mean(jnp.sum(onehot * jax.nn.log_softmax(logits), axis=-1)), ns

    def step(p, v, s, xb, yb):
        (loss, ns), g = jax.value_and_grad(loss_fn, has_aux=True)(p, s, xb, yb)
        decayed = {k: (g[k] + WEIGHT_DECAY * p[k] if k.endswith("/w") else g[k]) for k in g}
        nv = {k: MOMENTUM * v[k] + decayed[k] for k in v}
        np_ = {k: p[k] - LR * nv[k] for k in p}
        return np_, nv, ns, loss

    return jax.jit(step, donate_argnums=(0, 1, 2)), params, velocity, state, x, y


def timed_steps(jstep, carry, x, y, n):
    """Runs n steps of jstep from carry = (params, velocity, state), each timed until its loss is ready; returns
    the carry after them and the n times in seconds."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        *carry, loss = jstep(*carry, x, y)
        loss.block_until_ready()
        times.append(time.perf_counter() - t0)
    return tuple(carry), times


def bench(model, batch, steps, feed="device", image_size=0, rule="bp"):
    jstep, *carry, x, y = setup(model, batch, feed, image_size, rule)
    carry, (first,) = timed_steps(jstep, carry, x, y, 1)
    for _ in range(2):
        *carry, loss = jstep(*carry, x, y)
    loss.block_until_ready()
    _, times = timed_steps(jstep, carry, x, y, steps)
    return first, statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, choices=sorted(MODELS))
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--plugin", help="run on this PJRT plugin (e.g. the XLA CPU plugin nowt uses) instead of the "
                    "XLA bundled with jaxlib: the same compiler as nowt's xla:cpu rows")
    ap.add_argument("--feed", choices=("device", "host"), default="device",
                    help="device: one batch already on the device, every step; host: a NumPy batch every step "
                    "(transferred by each call, as a training loop does; the system is named .../host-batch)")
    ap.add_argument("--image-size", type=int, default=0,
                    help="the ResNets' input height and width (default: the model's, 32 or 224)")
    ap.add_argument("--rule", choices=("bp", "ss"), default="bp",
                    help="ss: sign symmetry in the MLPs' dense layers (the input gradient through scale·sign(W))")
    a = ap.parse_args()
    system = f"jax-{jax.__version__}"
    if a.plugin:
        use_plugin(a.plugin)
        system += "@nowt-plugin"
    elif jax.default_backend() != "cpu":
        system += f"@{jax.default_backend()}"
    if a.feed == "host":
        system += "/host-batch"
    first, med = bench(a.model, a.batch, a.steps, a.feed, a.image_size, a.rule)
    print(f"{system},{a.model},{a.rule},{a.batch},{first:.4f},{med:.5f},{a.batch / med:.1f}", flush=True)


if __name__ == "__main__":
    main()
