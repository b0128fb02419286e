"""The `cpbench` command line: parse, call the library, render with Rich (or print JSON)."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from cpbench.cli import calibrate as cli_calibrate
from cpbench.cli import demo as cli_demo
from cpbench.cli import export as cli_export
from cpbench.cli import fit as cli_fit
from cpbench.cli import measure as cli_measure
from cpbench.cli import recommend as cli_recommend
from cpbench.cli import report as cli_report
from cpbench.cli import results as cli_results
from cpbench.cli import study as cli_study

from cpbench import __version__
from cpbench.cli.options import ClickException, err, out
from cpbench.errors import CpbenchError, first_line

if TYPE_CHECKING:
    pass

app = typer.Typer(
    name="cpbench",
    help="How run time follows complexity on your hardware, and the cheapest CNN that reaches your accuracy there.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)




# every command lives beside its stage; this is where they are registered, in the order --help lists them
app.command("export")(cli_export.export_command)
app.command("flops")(cli_measure.flops_command)
app.add_typer(cli_export.zoo_app, name="zoo")
app.command("time")(cli_measure.time_command)
app.command("runs")(cli_measure.runs_command)
app.command("compare")(cli_measure.compare_command)
app.command("models")(cli_export.models_command)
app.command("presets")(cli_export.presets_command)
app.command("data")(cli_export.data_command)
app.command("calibrate")(cli_calibrate.calibrate_command)
app.command("fit")(cli_fit.fit_command)
app.command("predict")(cli_fit.predict_command)
app.add_typer(cli_fit.profiles_app, name="profiles")
app.command("fit-precision")(cli_recommend.fit_precision_command)
app.command("recommend")(cli_recommend.recommend_command)
app.command("report")(cli_report.report_command)
app.add_typer(cli_study.study_app, name="study")
app.add_typer(cli_results.results_app, name="results")
app.command("hardware")(cli_results.hardware_command)
app.command("demo")(cli_demo.demo_command)


@app.callback(invoke_without_command=True)
def root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        out.print(f"cpbench {__version__}")
        raise typer.Exit(0)


def _keep_stdout_for_json() -> None:
    """Under --json, stdout carries only the JSON: anything a library writes to file descriptor 1
    (ONNX Runtime's C++ banner, a worker process's print) goes to stderr instead."""
    if "--json" not in sys.argv[1:]:
        return
    try:
        sys.stdout.flush()
        real = os.dup(1)
        os.dup2(2, 1)
        sys.stdout = os.fdopen(real, "w", buffering=1, encoding="utf-8")
    except (OSError, ValueError):  # no real file descriptors (an embedding host): leave stdout as it is
        pass


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2, never a traceback."""
    _keep_stdout_for_json()
    try:
        code = app(standalone_mode=False)
    except CpbenchError as exc:
        err.print(f"error: {exc}", soft_wrap=True, markup=False)
        sys.exit(exc.exit_code)
    except ClickException as exc:
        hint = f"; see '{exc.ctx.command_path} --help'" if getattr(exc, "ctx", None) else ""
        err.print(f"error: {exc.format_message()}{hint}", soft_wrap=True, markup=False)
        sys.exit(2)
    except (KeyboardInterrupt, typer.Abort):
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # a bug or an input nothing checked: one line, the traceback only on request
        if os.environ.get("CPBENCH_DEBUG"):
            raise
        err.print(f"error: internal error ({first_line(exc)}); rerun with CPBENCH_DEBUG=1 for the traceback and report it",
                  soft_wrap=True, markup=False)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
