"""Errors a user can act on. The CLI prints their message on one line and exits with their code."""

from __future__ import annotations


class CpbenchError(Exception):
    """A failure with a message that names the problem and the fix; no traceback is shown."""

    exit_code = 1


class UsageError(CpbenchError):
    """Bad input: a malformed argument, a missing file or dataset, an unwritable place (exit 2)."""

    exit_code = 2


class ExportError(CpbenchError):
    """A model that could not be exported faithfully (checker or parity failure)."""

    exit_code = 1


def first_line(exc: BaseException) -> str:
    """'TypeName: first line of the message', safe for an exception with an empty message."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def calibration_hint(device: str) -> str:
    """The one way to tell a user how to calibrate this machine for a device profile."""
    return (f"calibrate this machine with 'cpbench calibrate --device {device}' (kernel level, minutes), or time the "
            f"family with 'cpbench export --preset timing --untrained', 'cpbench time --device {device}' and "
            f"'cpbench fit --device {device}'")


def check_choice(value: object, choices, what: str, error: type[Exception] = UsageError) -> None:
    """The one check of a name against a registry (any iterable of names): 'unknown X; choose one of ...',
    or, for a registry too long to list, the closest names."""
    names = list(choices)
    if value not in names:
        if len(names) > 12:
            import difflib

            close = difflib.get_close_matches(str(value), list(map(str, names)), n=3)
            raise error(f"unknown {what} {value!r}; " + (f"did you mean {', '.join(close)}?" if close else
                                                          f"{len(names)} are known, none close to it"))
        raise error(f"unknown {what} {value!r}; choose one of {', '.join(map(str, names))}")


def choose(registry, name: str, what: str):
    """registry[name], or the one 'unknown X; choose one of ...' error."""
    check_choice(name, registry, what)
    return registry[name]
