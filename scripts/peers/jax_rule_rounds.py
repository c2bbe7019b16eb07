"""Sign symmetry's cost over BP in JAX, timed as `nowt bench -rounds` times nowt's rules: the 784-1000-1000-10 MLP
at batch 128, three jitted steps set up at once (bp, ss: the input gradients through scale·sign(W) by a
custom_vjp, and bp again, the noise), each timed for 100 steps in turn, the order reversed every other round;
prints each one's median ratio to bp over the rounds and their range (perf-analysis.md §24).

    XLA_FLAGS="--xla_cpu_use_xnnpack=false --xla_cpu_prefer_vector_width=512" \
      .peers-venv/bin/python scripts/peers/jax_rule_rounds.py ROUNDS [PLUGIN]

PLUGIN defaults to the CPU plugin `nowt setup` installs (~/.local/lib/go-xla/pjrt_c_api_cpu_plugin.so).
"""
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from jax_plugin import use_plugin

use_plugin(sys.argv[2] if len(sys.argv) > 2 else os.path.expanduser("~/.local/lib/go-xla/pjrt_c_api_cpu_plugin.so"))
sizes=[784,1000,1000,10]; B=128; MOM, WD, LR = 0.9, 1e-4, 0.01
def mm(scale):
    @jax.custom_vjp
    def f(x,w): return x@w
    def fw(x,w): return x@w,(x,w)
    def bw(r,g):
        x,w=r
        return g@(scale*jnp.sign(w)).T, x.T@g
    f.defvjp(fw,bw); return f
def make(mode):
    def loss(p, x, y):
        h=x
        for i in range(3):
            w=p[f"w{i}"]
            h=(h@w if mode=="bp" else mm(float(np.sqrt(2/sizes[i])))(h,w))+p[f"b{i}"]
            if i<2: h=jax.nn.relu(h)
        return -jnp.mean(jnp.sum(jax.nn.one_hot(y,10)*jax.nn.log_softmax(h),-1))
    def step(p,v,x,y):
        g=jax.grad(loss)(p,x,y)
        d={k:(g[k]+WD*p[k] if k.startswith("w") else g[k]) for k in g}
        nv={k:MOM*v[k]+d[k] for k in v}; return {k:p[k]-LR*nv[k] for k in p}, nv
    return jax.jit(step,donate_argnums=(0,1))
def init():
    key=jax.random.PRNGKey(0); p={}
    for i in range(3):
        key,k=jax.random.split(key)
        p[f"w{i}"]=jax.random.normal(k,(sizes[i],sizes[i+1]))*np.sqrt(2/sizes[i]); p[f"b{i}"]=jnp.zeros(sizes[i+1])
    return p,{k: jnp.zeros_like(x) for k,x in p.items()}
x=jax.random.normal(jax.random.PRNGKey(1),(B,784)); y=jax.random.randint(jax.random.PRNGKey(2),(B,),0,10)
modes=["bp","ss","bp2"]
st={m:init() for m in modes}; fn={m:make("ss" if m=="ss" else "bp") for m in modes}
def run(m,n):
    p,v=st[m]; ts=[]
    for _ in range(n):
        t=time.perf_counter(); p,v=fn[m](p,v,x,y); jax.block_until_ready(p); ts.append(time.perf_counter()-t)
    st[m]=(p,v); return statistics.median(ts)
for m in modes: run(m,5)
ratios={"ss":[], "bp2":[]}
for r in range(int(sys.argv[1])):
    order = modes if r%2==0 else modes[::-1]
    t={m:run(m,100) for m in order}
    for m in ratios: ratios[m].append(t[m]/t["bp"])
for m,rs in ratios.items(): print(m, "÷ bp median", round(statistics.median(rs),3), "range", round(min(rs),3), round(max(rs),3))
