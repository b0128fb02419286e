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


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """A host:port (or ray://host:port) that accepts no connection within seconds is refused here:
    ray.init would retry it for minutes, printing its own logs."""
    import socket

    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--address {address!r} is not HOST:PORT (or ray://HOST:PORT, or auto)")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise UsageError(f"no Ray cluster answers at {address} ({exc.strerror or type(exc).__name__}); start it "
                         "with 'ray start --head' there, check --address, or run without --executor ray") from None


def start_ray(address: str | None, num_cpus: int | None = None) -> bool:
    """Start or join Ray unless it runs already; True when this call started it (and must shut it down)."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    if address is not None:
        check_reachable(address)
    try:
        ray.init(address=address, num_cpus=num_cpus if address is None else None,
                 include_dashboard=False, log_to_driver=False, configure_logging=False)
    except Exception as exc:  # a cluster address that does not answer, a broken local start
        raise UsageError(f"could not start or reach Ray ({first_line(exc)[:200]}); "
                         "check --address, or run without --executor ray") from None
    return True
