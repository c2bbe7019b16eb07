"""Makes JAX run on a given PJRT plugin (e.g. the XLA CPU plugin nowt uses) instead of the XLA bundled with jaxlib.
Shared by bench_jax.py and replay_hlo.py."""
import jax


def use_plugin(path):
    """Registers the plugin at path and makes it JAX's only platform. Call before JAX creates a backend."""
    from jax._src import xla_bridge
    xla_bridge.register_plugin("nowt_plugin", priority=500, library_path=path)
    jax.config.update("jax_platforms", "nowt_plugin")
