"""Makes JAX run on a given PJRT plugin (e.g. the XLA CPU plugin nowt uses) instead of the XLA bundled with jaxlib.
Shared by bench_jax.py and replay_hlo.py."""
import jax


def use_plugin(path, cpu_devices=1):
    """Registers the plugin at path and makes it JAX's only platform. Call before JAX creates a backend.

    cpu_devices is the CPU plugin's cpu_device_count: 1, as nowt's one-device runs create it (the plugin's own
    default is 4 host devices, which slows a one-device step on a 2-core machine, docs/perf-analysis.md §10).
    """
    from jax._src import xla_bridge
    xla_bridge.register_plugin("nowt_plugin", priority=500, library_path=path,
                               options={"cpu_device_count": cpu_devices})
    jax.config.update("jax_platforms", "nowt_plugin")
