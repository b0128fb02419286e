"""What every command module shares: the consoles, common options, JSON output."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

# piped to a file or a CI log, Rich would cut every table to 80 columns; there, unless COLUMNS says
# otherwise, tables get room to stay whole (a terminal keeps its own width)
PIPED_WIDTH = 200


def _width(stream) -> int | None:
    return None if "COLUMNS" in os.environ or stream.isatty() else PIPED_WIDTH


out = Console(highlight=False, width=_width(sys.stdout))
err = Console(stderr=True, highlight=False, width=_width(sys.stderr))

# click's exception base, whether typer vendors click (>= 0.20) or depends on it
ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")

WorkspaceOption = Annotated[Path, typer.Option("--workspace", "-w", help="Folder holding models/, profiles/, reports/ and the store.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the results as JSON on stdout (progress goes to stderr).")]
DeviceOption = Annotated[str, typer.Option("--device", "-d", help="Profile name (profiles/NAME.toml) or a .toml path.")]
DataDirOption = Annotated[
    Optional[Path],
    typer.Option("--data-dir", help="Folder with the FashionMNIST IDX files; default: $CPBENCH_DATA, then /usr/share/datasets/fashion-mnist."),
]


def print_json(payload: object) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
