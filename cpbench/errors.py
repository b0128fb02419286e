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
