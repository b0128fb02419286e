"""`cpbench report`: the workspace's measurements and fits as HTML, Markdown and PNG plots."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cpbench.cli.options import JsonOption, WorkspaceOption, err, out, print_json


def report_command(
    name: Annotated[Optional[str], typer.Option("--name", help="Folder name under reports/; default: report-<UTC time>.")] = None,
    workspace: WorkspaceOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Write reports/<name>/index.html, report.md and PNG plots; print the papers' claims beside the measurements."""
    from rich.table import Table

    import re
    import shutil

    from cpbench.errors import UsageError
    from cpbench.report.sections import build_report
    from cpbench.report.writers import CLAIMS_HEADER
    from cpbench.workspace.folder import Workspace

    if name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name):
        raise UsageError(f"--name must be a plain folder name of letters, digits, '.', '_' and '-' (at most 100, "
                         f"starting with a letter or digit), got {name!r}")
    ws = Workspace(workspace)
    if ws.store_path.exists():  # the report reads fits, not rows: still, a damaged store is named, never reported around
        with ws.open_store():
            pass
    ws.ensure_writable()
    existed = {p.name for p in ws.reports_dir.iterdir()} if ws.reports_dir.is_dir() else set()
    try:
        with err.status("writing the report (fits and plots)"):
            report = build_report(ws, name)
    except BaseException:
        # a report that failed halfway is not left looking like one; a folder that was already there is kept
        for folder in ws.reports_dir.iterdir() if ws.reports_dir.is_dir() else []:
            if folder.name not in existed:
                shutil.rmtree(folder, ignore_errors=True)
        raise
    if as_json:
        print_json(report.as_dict())
        return
    claims = Table(*CLAIMS_HEADER, title="The papers' claims against these measurements")
    for row in report.claims:
        claims.add_row(*row)
    out.print(claims)
    for section in report.sections:
        status = f"{len(section.images)} plots, {len(section.tables)} tables"
        out.print(f"[bold]{section.title}[/]: {status}")
        for missing in section.missing:
            out.print(f"  [yellow]missing:[/] {missing}")
    out.print(f"report: {report.folder / 'index.html'} (and report.md)")
