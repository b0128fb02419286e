"""The fresh process every measurement runs in, for `cpbench time` and calibration alike: spawned
(no state inherited from the parent's runtimes), deaf to Ctrl-C (the parent stops it and keeps what
finished), gone with its parent, and stopped for good when the parent is done with it."""

from __future__ import annotations

import multiprocessing
from typing import Any, Callable


def detach_from_signals() -> None:
    """Ctrl-C is the parent's to handle, and a parent killed with -9 takes the worker with it (Linux)
    instead of leaving it measuring. Called first thing in every worker."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _run_quietly(target: Callable[..., None], connection, *args: Any) -> None:
    """The worker's body. A parent that stopped listening (Ctrl-C, SIGTERM, a timeout) is no error of
    the worker's: it leaves at once, without the traceback multiprocessing would print. What runtimes
    print to stdout (ONNX Runtime's provider fallback notice) never reaches the parent's, which may be
    JSON; CPBENCH_DEBUG=1 keeps it."""
    import os

    detach_from_signals()
    if not os.environ.get("CPBENCH_DEBUG"):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    try:
        target(connection, *args)
    except (BrokenPipeError, ConnectionResetError, EOFError, KeyboardInterrupt):
        os._exit(0)


class Worker:
    """A spawned process running `target(connection, *args)` detached from the parent's signals; the
    parent reads what it sends with `receive`. Use as a context manager: leaving it joins the process, or kills it if it lingers."""

    def __init__(self, target: Callable[..., None], *args: Any) -> None:
        context = multiprocessing.get_context("spawn")
        self._receiver, sender = context.Pipe(duplex=False)
        self._process = context.Process(target=_run_quietly, args=(target, sender, *args), daemon=True)
        self._process.start()
        sender.close()

    def receive(self, timeout_s: float) -> Any | None:
        """The next message, or None when the worker sent nothing within timeout_s or died."""
        try:
            if self._receiver.poll(timeout_s):
                return self._receiver.recv()
        except EOFError:
            pass
        return None

    def stop(self) -> int | None:
        """Join (or kill) the process; its exit code, None when it had to be killed after a hang."""
        self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
            return None
        return self._process.exitcode

    def __enter__(self) -> "Worker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._receiver.close()
