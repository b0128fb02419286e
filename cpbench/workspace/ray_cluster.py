"""Reaching Ray, for the executors of every stage that can run on a cluster (export, timing)."""

from __future__ import annotations

from cpbench.errors import UsageError, first_line

INSTALL_HINT = "install it with: pip install 'cpbench[ray]' (or pip install ray)"


def import_ray():
    try:
        import ray
    except ImportError:
        raise UsageError(f"--executor ray needs Ray, which is not installed; {INSTALL_HINT}") from None
    return ray


def start_ray(address: str | None, num_cpus: int | None = None) -> bool:
    """Start or join Ray unless it runs already; True when this call started it (and must shut it down)."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, num_cpus=num_cpus if address is None else None,
                 include_dashboard=False, log_to_driver=False, configure_logging=False)
    except Exception as exc:  # a cluster address that does not answer, a broken local start
        raise UsageError(f"could not start or reach Ray ({first_line(exc)[:200]}); "
                         "check --address, or run without --executor ray") from None
    return True
