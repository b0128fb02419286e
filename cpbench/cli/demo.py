"""`cpbench demo`: the main job on the embedded defaults (train and export the quick preset, count,
time on ONNX Runtime and OpenVINO, fit, recommend, report), one command after another as a user
would type them, under one progress bar whose remaining time is estimated from the start."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from cpbench.cli.options import JsonOption, WorkspaceOption, err, out, print_json
from cpbench.errors import UsageError


@dataclass(frozen=True)
class Stage:
    """One command of the demo and how long it takes on a 2-core machine (seconds, the estimate
    the remaining time starts from before this machine's own pace is known)."""

    args: tuple[str, ...]
    expected_s: float
    done_share: Optional[Callable[[Path], float]] = None  # how much of it is done, read from the workspace


def _exported_share(workspace: Path) -> float:
    from cpbench.family.config import SPACES
    from cpbench.family.presets import get_preset

    planned = len(get_preset("quick").build(SPACES["fashionmnist"], 0))
    folder = workspace / "models" / "family" / "fashionmnist-quick"
    return len(list(folder.glob("*.onnx"))) / max(1, planned)


STAGES = (
    Stage(("export", "--preset", "quick"), 300, _exported_share),
    Stage(("models",), 2),
    Stage(("zoo", "table"), 17),
    # three rounds, not the profile's five: the demo shows the pipeline; fits for decisions take five
    Stage(("time", "--device", "cpu", "--models", "family/*", "--rounds", "3"), 115),
    Stage(("time", "--device", "openvino", "--models", "family/*", "--rounds", "3"), 120),
    Stage(("fit", "--device", "cpu"), 3),
    Stage(("fit-precision",), 15),
    Stage(("recommend", "--device", "cpu", "--max-drop", "0.01"), 5),
    Stage(("recommend", "--device", "openvino", "--max-drop", "0.01"), 5),
    Stage(("report", "--name", "demo"), 8),
)


def remaining_s(stages: tuple[Stage, ...], index: int, within: float, elapsed_s: float) -> float:
    """Seconds left: the stages not yet done at the expected pace, scaled by this machine's pace so
    far (the time spent over the expected time of what is done)."""
    done = sum(s.expected_s for s in stages[:index]) + within * stages[index].expected_s if index < len(stages) else \
        sum(s.expected_s for s in stages)
    left = sum(s.expected_s for s in stages) - done
    pace = elapsed_s / done if done > 0 and elapsed_s > 30 else 1.0
    return max(0.0, left * pace)


def demo_command(workspace: WorkspaceOption = Path("."), as_json: JsonOption = False) -> None:
    """Run the main job on the embedded defaults with one progress bar and its estimated time left;
    each command's own output follows as it finishes. Stops at the first command that fails."""
    from cpbench import units
    from cpbench.cli.views.common import bar_progress

    workspace = workspace.resolve()
    total = sum(s.expected_s for s in STAGES)
    started = time.monotonic()
    timings = []
    err.print(f"cpbench demo: {len(STAGES)} commands, about {units.duration(total)} on a 2-core machine")
    with bar_progress(err) as progress:
        task = progress.add_task("demo", total=total)
        for index, stage in enumerate(STAGES):
            command = "cpbench " + " ".join(stage.args)
            left = remaining_s(STAGES, index, 0.0, time.monotonic() - started)
            progress.console.print(f"[{index + 1}/{len(STAGES)}] {command}  (about {units.duration(left)} left)",
                                   markup=False)
            progress.update(task, description=" ".join(stage.args[:3]))
            base = sum(s.expected_s for s in STAGES[:index])
            stage_started = time.monotonic()
            stop = threading.Event()

            def follow(stage=stage, base=base, stage_started=stage_started, stop=stop) -> None:
                while not stop.wait(1.0):
                    share = stage.done_share(workspace) if stage.done_share else \
                        (time.monotonic() - stage_started) / stage.expected_s
                    progress.update(task, completed=base + min(0.95, share) * stage.expected_s)

            follower = threading.Thread(target=follow, daemon=True)
            follower.start()
            done = subprocess.run([sys.executable, "-m", "cpbench.cli", *stage.args, "-w", str(workspace)],
                                  capture_output=True, text=True)
            stop.set()
            follower.join()
            seconds = time.monotonic() - stage_started
            timings.append({"command": command, "seconds": round(seconds, 1), "expected_s": stage.expected_s})
            if done.stdout.strip() and not as_json:
                progress.console.print(done.stdout.rstrip(), markup=False, highlight=False, soft_wrap=True)
            if done.stderr.strip():  # warnings and errors are the user's to read, not the demo's to drop
                progress.console.print(done.stderr.rstrip(), markup=False, highlight=False, soft_wrap=True)
            if done.returncode != 0:
                raise UsageError(f"'{command}' failed with exit code {done.returncode}; its message is above. "
                                 "Fix it and run 'make demo' again: what is done is kept")
            progress.update(task, completed=base + stage.expected_s)
    wall = time.monotonic() - started
    if as_json:
        print_json({"seconds": round(wall, 1), "commands": timings, "report": str(workspace / "reports" / "demo")})
        return
    out.print(f"demo done in {units.duration(wall)}; the report is {workspace / 'reports' / 'demo' / 'index.html'}")

