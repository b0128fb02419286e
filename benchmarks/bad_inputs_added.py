"""Replay the second reliability table: the 182 cases tried on the commands and files added since the
first table (calibrate, predict, recommend's options, results import/export, hardware, report,
study files, study run, Ray, time under a changing model, zoo and flops edge cases, batch and
TensorRT profiles), rebuilt from the review's one-line descriptions in a scratch folder.

A case passes when it keeps the product's promise: bad input is exit 2, one `error:` line on stderr,
no traceback and nothing on stdout; good input is exit 0 with correct output (JSON where --json);
a scenario (a kill, a race, a torn file) loses nothing. Where the review accepted either a refusal
or an answer ("2 or 0"), either passes; where it asked for "warn or error", a warning or a clean
refusal passes. Run by `benchmarks/bad_inputs.py` after the first table, or alone:

    python benchmarks/bad_inputs_added.py [--verbose] [--only ID ...]
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CPBENCH = [sys.executable, "-m", "cpbench.cli"]
QUICK = ["--min-time", "0.05", "--min-runs", "5", "--warmup", "1", "--rounds", "1"]
REFERENCE = Path(__file__).resolve().parents[1] / "cpbench" / "reference"


def cli(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(CPBENCH + args, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "CPBENCH_DEBUG": "", "COLUMNS": "200"})


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a background shell starts its jobs with SIGINT ignored


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(CPBENCH + args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=_default_sigint,
                            env={**os.environ, "CPBENCH_DEBUG": "", "COLUMNS": "200"})


def clean(done) -> tuple[bool, str]:
    """Exit 2, one 'error:' line, no traceback, nothing on stdout."""
    stderr = done.stderr if isinstance(done.stderr, str) else ""
    lines = [line for line in stderr.splitlines() if line.strip()]
    problems = []
    if done.returncode != 2:
        problems.append(f"exit {done.returncode}")
    if "Traceback" in stderr:
        problems.append("traceback")
    if len(lines) != 1 or not lines[0].startswith("error: "):
        problems.append(f"{len(lines)} stderr lines")
    if (done.stdout or "").strip():
        problems.append("stdout not empty")
    return not problems, ", ".join(problems) or lines[0]


def works(done, as_json: bool = False) -> tuple[bool, str]:
    if done.returncode != 0 or "Traceback" in done.stderr:
        return False, f"exit {done.returncode}: {done.stderr.strip()[-200:]}"
    if as_json:
        try:
            json.loads(done.stdout)
        except ValueError:
            return False, "stdout is not JSON"
    return True, "works"


def judge(done, expect: str, as_json: bool) -> tuple[bool, str]:
    if expect == "reject":
        return clean(done)
    if expect == "works":
        return works(done, as_json)
    if expect == "warn":  # warn or refuse cleanly
        ok, detail = clean(done)
        if ok:
            return ok, detail
        return done.returncode == 0 and "warning" in done.stderr.lower() and "Traceback" not in done.stderr, "warning"
    ok, detail = works(done, as_json)  # "either": a clean refusal or a correct answer
    return (ok, detail) if ok else clean(done)


@dataclass
class Scratch:
    root: Path
    hardware_id: str
    bundle: dict

    def ws(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def fresh(self, name: str) -> Path:
        path = self.root / name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path


CASES: list[tuple[str, Callable[[Scratch], tuple[bool, str]]]] = []


def case(case_id: str):
    def register(run):
        CASES.append((case_id, run))
        return run
    return register


def command(case_id: str, workspace: str, args: list[str], expect: str, timeout: int = 120) -> None:
    """A case that is one command in one scratch workspace."""
    def run(s: Scratch) -> tuple[bool, str]:
        ws = s.ws(workspace)
        argv = [a.replace("{W}", str(ws)).replace("{S}", str(s.root)) for a in args]
        return judge(cli([*argv, "-w", str(ws)], s.root, timeout), expect, "--json" in argv)
    CASES.append((case_id, run))


# ---- calibrate: options, journals, signals, locks (1-29) ----------------------------------------
for number, option in enumerate((["--rounds", "0"], ["--rounds=-1"], ["--rounds", "10" * 12], ["--runs", "0"], ["--runs=-5"],
                                 ["--networks=-1"], ["--share=-0.5"], ["--share", "1.5"], ["--share", "nan"],
                                 ["--share", "inf"], ["--runs", "1e3"], ["--networks", "0"], ["--networks", "1000000000"]),
                                1):
    command(str(number), "empty", ["calibrate", "-d", "cpu", *option], "reject")
command("15", "empty", ["calibrate", "-d", "cuda"], "reject")
command("16", "empty", ["calibrate", "-d", "cuda", "--json"], "reject")
command("17", "empty", ["calibrate", "-d", "cpu", "--dataset", "nosuch"], "reject")
command("18", "empty", ["calibrate", "-d", "cpu", "--pairs", "--whole"], "reject")
command("19", "empty", ["calibrate", "-d", "../../etc/passwd"], "reject")


def _journal(ws: Path, s: Scratch, device: str = "cpu-1thread") -> Path:
    return ws / "models" / "fits" / f"{device}-{s.hardware_id}.calibration.partial.jsonl"


def _wait_lines(path: Path, n: int, proc: subprocess.Popen, limit_s: float = 120) -> bool:
    deadline = time.time() + limit_s
    while time.time() < deadline and proc.poll() is None:
        if path.exists() and len(path.read_text().splitlines()) >= n:
            return True
        time.sleep(0.3)
    return False


@case("14")
def stale_journal(s: Scratch):
    ws = s.fresh("stale")
    journal = _journal(ws, s, "cpu")
    journal.parent.mkdir(parents=True)
    journal.write_text(json.dumps({"format": 1, "device": "cpu", "other": "settings"}) + "\n")
    ok, detail = clean(cli(["calibrate", "-d", "cpu", "--share", "0", "-w", str(ws)], s.root))
    return ok and "resume" in detail, detail


CALIBRATE = ["calibrate", "-d", "cpu-1thread", "--share", "0"]


@case("20-22")
def interrupt_and_resume(s: Scratch):
    ws = s.fresh("resume")
    journal = _journal(ws, s)
    first = start([*CALIBRATE, "-w", str(ws)], s.root)
    if not _wait_lines(journal, 300, first):
        return False, "no journal"
    os.killpg(first.pid, signal.SIGINT)
    first.communicate(timeout=60)
    kept = journal.read_text().splitlines()
    second = start([*CALIBRATE, "-w", str(ws)], s.root)
    if not _wait_lines(journal, len(kept) + 300, second):
        return False, "the rerun did not resume"
    os.killpg(second.pid, signal.SIGINT)
    _, stderr = second.communicate(timeout=60)
    now = journal.read_text().splitlines()
    resumed = now[:len(kept) - 1] == kept[:-1] and len(now) > len(kept)
    quiet = second.returncode == 130 and "Traceback" not in stderr and "Process Spawn" not in stderr
    other = clean(cli(["calibrate", "-d", "cpu-1thread", "--share", "0.5", "-w", str(ws)], s.root))
    ok = resumed and quiet and other[0] and "unfinished calibration" in other[1]
    return ok, f"kept {len(kept)}, then {len(now)} lines; second stop exit {second.returncode}; --share 0.5: {other[1][:80]}"


@case("23")
def two_at_once(s: Scratch):
    ws = s.fresh("two")
    first = start([*CALIBRATE, "-w", str(ws)], s.root)
    if not _wait_lines(_journal(ws, s), 2, first):
        return False, "the first did not start"
    second = cli([*CALIBRATE, "-w", str(ws)], s.root, timeout=60)
    os.killpg(first.pid, signal.SIGINT)
    first.communicate(timeout=60)
    ok, detail = clean(second)
    return ok and "another cpbench calibrate" in detail, detail


def _stopped(s: Scratch, name: str, sig: int, group: bool) -> tuple[bool, str]:
    ws = s.fresh(name)
    journal = _journal(ws, s)
    proc = start([*CALIBRATE, "-w", str(ws)], s.root)
    if not _wait_lines(journal, 100, proc):
        return False, "no journal"
    (os.killpg if group else os.kill)(proc.pid, sig)
    _, stderr = proc.communicate(timeout=60)
    lines = journal.read_text().splitlines()
    intact = all(_parses(line) for line in lines[:-1])
    ok = intact and "Traceback" not in stderr and "Error" not in stderr and proc.returncode in (130, -sig, 128 + sig)
    return ok, f"exit {proc.returncode}, {len(lines)} journal lines, stderr {stderr.strip()[-120:]!r}"


def _parses(line: str) -> bool:
    try:
        json.loads(line)
        return True
    except ValueError:
        return False


case("24-25")(lambda s: _stopped(s, "group", signal.SIGINT, True))
case("26")(lambda s: _stopped(s, "term", signal.SIGTERM, False))


@case("27")
def device_twice(s: Scratch):
    ws = s.fresh("trt")
    (ws / "profiles").mkdir()
    (ws / "profiles" / "trt.toml").write_text('runtime = "onnxruntime"\nprovider = "TensorrtExecutionProvider"\n')
    first = clean(cli(["calibrate", "-d", "trt", "--share", "0", "-w", str(ws)], s.root))
    second = clean(cli(["calibrate", "-d", "trt", "--share", "0", "--rounds", "2", "-w", str(ws)], s.root))
    return first[0] and second[0] and "Tensorrt" in second[1], second[1]


@case("28-29")
def batch_profile(s: Scratch):
    ws = s.fresh("b4")
    (ws / "profiles").mkdir()
    (ws / "profiles" / "b4.toml").write_text('runtime = "onnxruntime"\nprovider = "CPUExecutionProvider"\nbatch = 4\n')
    ok, detail = clean(cli(["calibrate", "-d", "b4", "-w", str(ws)], s.root))
    return ok and "--batch" not in detail, detail


# ---- predict (30-51) -------------------------------------------------------------------------
command("30", "empty", ["predict", "-d", "cpu", "--model", "nosuch", "-c", "8,12,3,1"], "reject")
command("31", "empty", ["predict", "-d", "cpu", "--model", "nosuch", "-c", "8,12,3,1", "--json"], "reject")
command("32", "empty", ["predict", "-d", "cpu", "--json", *[a for f in range(1, 41) for s in (8, 12, 20, 28)
                                                            for a in ("-c", f"{f},{s},3,1")]], "works")
command("33", "empty", ["predict", "-d", "cpu", "-c", "8,12,3,1", "-c", "8,12,3,1", "--json"], "works")
for number, config in zip(range(34, 38), ("0,12,3,1", "8,1,3,1", "8,12,4,1", "8,12,3,9")):
    command(str(number), "empty", ["predict", "-d", "cpu", "-c", config], "either")
command("38", "empty", ["predict", "-d", "cpu", "-c", "4096,28,5,3", "--json"], "reject")
command("39", "empty", ["predict", "-d", "cpu", "-c", "8,29,5,3", "--json"], "reject")
for number, config in zip(range(40, 44), ("8,12,3,1,1", " 8, 12 ,3,1", "", "8.5,12,3,1")):
    command(str(number), "empty", ["predict", "-d", "cpu", "-c", config], "either")
command("44", "empty", ["predict", "-d", "cpu", "--model", "../../etc/passwd", "-c", "8,12,3,1"], "reject")
for number, config in zip(range(45, 50), ("4096,28,5,3", "8,29,5,3", "8,12,7,1", "16,28,3,4", "8,12,4,1")):
    command(str(number), "empty", ["predict", "-d", "cpu-1thread", "-c", config], "either" if number == 49 else "reject")


@case("50")
def openvino_l4(s: Scratch):
    ok, detail = clean(cli(["predict", "-d", "openvino", "-c", "8,28,5,4", "-w", str(s.ws("empty"))], s.root))
    return ok and "l = 4" in detail, detail


@case("51")
def names_the_config(s: Scratch):
    done = cli(["predict", "-d", "cpu-1thread", "-c", "8,12,3,1", "-c", "4096,28,5,3", "-c", "4,8,3,1",
                "-w", str(s.ws("empty"))], s.root)
    ok, detail = clean(done)
    return ok and "4096,28,5,3" in detail, detail


# ---- recommend's options (52-67) ---------------------------------------------------------------
for number, value in zip(range(52, 60), ("0", "1", "1.5", "nan", "-0.1", "inf", "1e-300", "0.9999999999")):
    command(str(number), "empty", ["recommend", "-d", "cpu", "--target", "0.9", "--confidence", value], "either")
command("60", "empty", ["recommend", "-d", "cpu", "--target", "0.9", "--verify-seeds", "0"], "either")
command("61", "empty", ["recommend", "-d", "cpu", "--target", "0.9", "--verify-seeds", "-1"], "either")
command("62", "empty", ["recommend", "-d", "cpu", "--target", "0.9", "--verify", "--verify-seeds", "0"], "reject")
command("63", "empty", ["recommend", "-d", "cpu", "--target", "0.9", "--dataset", "lfw"], "either")
command("64", "empty", ["recommend", "-d", "cpu", "--target", "0.9", "--dataset", "../../etc/passwd"], "reject")
command("65", "empty", ["recommend", "-d", "cpu", "--target", "1e-9"], "either")
command("66", "empty", ["recommend", "-d", "cpu", "--target", "0.9999999"], "reject")
command("67", "empty", ["recommend", "-d", "cpu", "--max-drop", "0.9999"], "either")


# ---- results import: bundles (68-99) ------------------------------------------------------------
def _import(s: Scratch, text: str | bytes, name: str) -> tuple[bool, str]:
    """Import into a copy of the 'b' workspace; clean, and nothing in it changed."""
    target = s.fresh(f"import-{name}")
    shutil.copytree(s.root / "b", target, dirs_exist_ok=True)
    before = _tree(target)
    path = s.root / f"{name}.bundle.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    ok, detail = clean(cli(["results", "import", str(path), "-w", str(target)], s.root))
    unchanged = _tree(target) == before
    return ok and unchanged, detail if unchanged else f"the workspace changed; {detail}"


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
            and ".cpbench" not in p.name and not p.name.endswith(("-wal", "-shm", "-journal"))}


def bundle_case(case_id: str, change: Callable[[dict], object] | None = None, raw: Callable[[dict], str] | None = None):
    def run(s: Scratch):
        payload = copy.deepcopy(s.bundle)
        if change:
            change(payload)
        return _import(s, raw(payload) if raw else json.dumps(payload), case_id)
    CASES.append((case_id, run))


bundle_case("68", raw=lambda p: "\ufeff" + json.dumps(p))
bundle_case("69", raw=lambda p: json.dumps(p)[:200])
bundle_case("70", lambda p: p.update(format=99))
bundle_case("71", lambda p: p.update(format="1"))
bundle_case("72", lambda p: p.pop("format"))
bundle_case("73", raw=lambda p: '{"format": 1, "kind": "cpbench-results", "runs": ' + "[" * 100_000 + "]" * 100_000 + "}")
bundle_case("74", raw=lambda p: json.dumps({**p, "files": {"models/fits/deep.json": "DEEP"}}).replace(
    '"DEEP"', "[" * 3000 + "]" * 3000))
bundle_case("75", lambda p: p["runs"].append(copy.deepcopy(p["runs"][0])))
bundle_case("76", lambda p: p["runs"].append({**copy.deepcopy(p["runs"][0]), "device": "other"}))
bundle_case("77", lambda p: p["models"].append(copy.deepcopy(p["models"][0])))
bundle_case("78", lambda p: p.update(runs="abc"))
bundle_case("79", lambda p: p.update(runs={"a": 1}))
bundle_case("80", lambda p: p["runs"][0].pop("measurements"))
bundle_case("81", lambda p: p["runs"][0].pop("device"))
bundle_case("82", lambda p: p["runs"][0].update(colour="red"))
bundle_case("83", lambda p: p["runs"][0]["measurements"][0].update(colour="red"))
bundle_case("84", lambda p: p["models"].__setitem__(0, {}))
bundle_case("85", lambda p: p["models"][0].update(input_shape=None))
bundle_case("86", lambda p: p.update(files="abc"))
bundle_case("87", lambda p: p["runs"][0]["measurements"][0].update(median_s="fast"))
bundle_case("88", lambda p: p["runs"][0]["measurements"][0].update(median_s=-1))
bundle_case("89", lambda p: p["files"].update({"models/fits/../../evil.json": {"format": 1}}))
bundle_case("90", lambda p: p["files"].update({"models/fits//abs/path.json": {"format": 1}}))
bundle_case("91", lambda p: p["files"].update({"models/precision/evil.sh": {"format": 1}}))
bundle_case("92", lambda p: p["files"].update({"models/fits/": {"x": 1}}))
bundle_case("93", lambda p: p["files"].update({"models/fits/a.json": {"format": 1}, "models/fits/a.json/b.json": {"format": 1}}))
bundle_case("94", lambda p: p["files"].update({"models/fits/cpu-x.json": {"format": 99}}))
bundle_case("95", lambda p: p["files"].update({"models/fits/cpu-x.calibration.json.gz": [1, 2, 3]}))
bundle_case("96", lambda p: p["models"][0].update(name="../../../../x", file="/etc/passwd"))


@case("97")
def measurement_outside(s: Scratch):
    """A measurement's model and file are labels, never read: the import may keep them, and no model
    row (what `time` reads) may point outside models/."""
    payload = copy.deepcopy(s.bundle)
    payload["runs"][0]["measurements"][0].update(model="../../../../x", file="/etc/passwd")
    target = s.fresh("import-97")
    path = s.root / "97.bundle.json"
    path.write_text(json.dumps(payload))
    done = cli(["results", "import", str(path), "-w", str(target)], s.root)
    ok, detail = judge(done, "either", False)
    rows = sqlite3.connect(target / "cpbench.sqlite").execute("SELECT file FROM models").fetchall() \
        if (target / "cpbench.sqlite").exists() else []
    inside = all(not os.path.isabs(f) and ".." not in Path(f).parts for (f,) in rows)
    return ok and inside, detail


@case("98")
def model_outside_with_its_hash(s: Scratch):
    outside = s.root / "elsewhere.onnx"
    model = next((s.root / "a" / "models").rglob("*.onnx"))
    shutil.copy(model, outside)
    payload = copy.deepcopy(s.bundle)
    payload["models"][0]["file"] = str(outside)
    return _import(s, json.dumps(payload), "98")


@case("99")
def import_twice(s: Scratch):
    target = s.fresh("twice")
    path = s.root / "good.bundle.json"
    path.write_text(json.dumps(s.bundle))
    first = cli(["results", "import", str(path), "-w", str(target), "--json"], s.root)
    second = cli(["results", "import", str(path), "-w", str(target), "--json"], s.root)
    ok = works(first, True)[0] and works(second, True)[0] and json.loads(second.stdout)["runs_added"] == []
    return ok, second.stdout.strip()[:120]


# ---- results export (100-103) --------------------------------------------------------------------
command("100", "a", ["results", "export", "{W}/models"], "reject")
command("101", "a", ["results", "export", "{W}/cpbench.sqlite"], "reject")


@case("102")
def export_over_a_model(s: Scratch):
    ws = s.root / "a"
    model = next((ws / "models").rglob("*.onnx"))
    before = model.read_bytes()
    ok, detail = clean(cli(["results", "export", str(model), "-w", str(ws)], s.root))
    return ok and model.read_bytes() == before, detail


command("103", "a", ["results", "export", "{S}/b.json", "--force"], "works")


# ---- hardware, predict and report on damaged calibrations and models (104-120) --------------------
def _damaged(s: Scratch, name: str, how: str) -> Path:
    ws = s.fresh(name)
    fits = ws / "models" / "fits"
    fits.mkdir(parents=True)
    good = (REFERENCE / "fits" / "cpu-deb299df8670.calibration.json.gz").read_bytes()
    content = {"truncated": good[:20000], "random": gzip.compress(os.urandom(2000)),
               "format99": gzip.compress(json.dumps({"format": 99}).encode()),
               "list": gzip.compress(b"[1, 2]")}[how]
    (fits / f"cpu-{s.hardware_id}.calibration.json.gz").write_bytes(content)
    return ws


for offset, how in enumerate(("truncated", "random", "format99", "list")):
    def hardware_case(s: Scratch, how=how, offset=offset):
        ws = _damaged(s, f"damaged-{how}", how)
        done = cli(["hardware", "-w", str(ws), *(["--json"] if offset % 2 else [])], s.root)
        return judge(done, "warn", False)

    def predict_case(s: Scratch, how=how):
        return clean(cli(["predict", "-d", "cpu", "-c", "8,12,3,1", "-w", str(_damaged(s, f"damaged-{how}", how))], s.root))

    CASES.append((str(104 + offset), hardware_case))
    CASES.append((str(108 + offset), predict_case))


@case("112-113")
def stray_tables_cache(s: Scratch):
    """A table cache of an older cpbench (or forged) beside the shipped models changes nothing."""
    ws = s.fresh("cache")
    base = cli(["predict", "-d", "cpu-1thread", "-c", "16,20,3,2", "--json", "-w", str(ws)], s.root)
    fits = ws / "models" / "fits"
    fits.mkdir(parents=True)
    (fits / f"cpu-1thread-{s.hardware_id}.tables.json.gz").write_bytes(gzip.compress(b'{"format": 4, "tables": "x10"}'))
    again = cli(["predict", "-d", "cpu-1thread", "-c", "16,20,3,2", "--json", "-w", str(ws)], s.root)
    ok = works(base, True)[0] and works(again, True)[0] and json.loads(base.stdout)["predictions"] == \
        json.loads(again.stdout)["predictions"]
    return ok, "same answer" if ok else again.stderr.strip()[-120:]


@case("114")
def report_on_damage(s: Scratch):
    ws = _damaged(s, "damaged-report", "truncated")
    ok, detail = judge(cli(["report", "--name", "r1", "-w", str(ws)], s.root, 300), "warn", False)
    return ok, detail


for number, name in zip(range(115, 121), ("/tmp/abs", "a/b", ".", "   ", "x" * 300, "~")):
    command(str(number), "empty", ["report", "--name", name], "reject")


# ---- study files (121-137) -----------------------------------------------------------------------
STUDY = REFERENCE / "fashionmnist-converged-bn.study.jsonl"


def study_case(case_id: str, text: Callable[[list[str]], str] | None, expect: str, raw: bytes | None = None,
               folder: bool = False, missing: bool = False):
    def run(s: Scratch):
        path = s.root / f"study-{case_id}.jsonl"
        if folder:
            path.mkdir(exist_ok=True)
        elif raw is not None:
            path.write_bytes(raw)
        elif not missing:
            path.write_text(text(STUDY.read_text().splitlines()))
        done = cli(["study", "show", "--recipe", "converged-bn", "--file", str(path), "--json", "-w", str(s.ws("empty"))],
                   s.root)
        ok, detail = judge(done, expect, True)
        if expect == "reject" and case_id in ("123", "124", "125", "136"):
            ok = ok and f"{path}:" in detail  # named by file and line
        return ok, detail
    CASES.append((case_id, run))


def _edit(lines: list[str], **changes) -> str:
    row = {**json.loads(lines[0]), **changes}
    return "\n".join(lines + [json.dumps(row)]) + "\n"


study_case("121", lambda lines: "\n".join(lines) + "\n", "works")
study_case("122", lambda lines: "\n".join(lines) + "\n" + lines[0][:50], "works")
study_case("123", lambda lines: _edit(lines, config="4096,28,5,3", seed=7), "reject")
study_case("124", lambda lines: _edit(lines, accuracy=1.7, seed=7), "reject")
study_case("125", lambda lines: _edit(lines, accuracy=float("nan"), seed=7), "reject")
study_case("126", lambda lines: _edit(lines, format=99), "reject")
study_case("127", lambda lines: _edit(lines, accuracy=0.5), "works")  # the first result of a key counts
study_case("128", lambda lines: "\n".join(lines[:3] + ["hello"] + lines[3:]) + "\n", "warn")
study_case("129", lambda lines: _edit(lines, recipe="other", seed=7), "works")
study_case("130", None, "reject", raw=b"\xff\xfe\x00\x01binary")
study_case("131", None, "works", raw=b"")
study_case("132", None, "reject", folder=True)
study_case("133", None, "reject", missing=True)
study_case("134", lambda lines: "\n".join(lines[:3] + ["[1, 2]"] + lines[3:]) + "\n", "reject")
study_case("135", lambda lines: _edit(lines, colour="red", seed=7), "reject")
study_case("136", lambda lines: _edit(lines, seed="zero"), "reject")


@case("137")
def append_after_a_torn_line(s: Scratch):
    code = ("import sys; from pathlib import Path; from cpbench.export.precision_study import append_result, read_results\n"
            "p = Path(sys.argv[1]); rows = read_results(p); n = len(rows)\n"
            "p.write_text(p.read_text() + p.read_text().splitlines()[0][:40])\n"
            "from dataclasses import replace; append_result(p, replace(rows[0], seed=99))\n"
            "print(n, len(read_results(p)))")
    path = s.root / "torn.jsonl"
    shutil.copy(STUDY, path)
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    before, after = (done.stdout.split() + ["0", "0"])[:2]
    return done.returncode == 0 and int(after) == int(before) + 1, f"{before} results before, {after} after"


# ---- study run (138-150): against a complete study, so what is accepted has nothing to train --------
for number, option in zip(range(138, 146), ("3/2", "abc", "1/0", "-1/2", "0/65", "0/2/3", " 0/1", "0.5/1")):
    command(str(number), "study", ["study", "run", "--recipe", "converged-bn", "--file", str(STUDY), "--shard", option],
            "either")
command("146", "study", ["study", "run", "--recipe", "converged-bn", "--file", str(STUDY)], "works")
command("147", "study", ["study", "run", "--recipe", "converged-bn", "--file", str(STUDY), "--threads", "0"], "either")
command("148", "study", ["study", "run", "--recipe", "converged-bn", "--file", str(STUDY), "--threads", "-1"], "reject")
command("149", "study", ["study", "run", "--recipe", "nosuch"], "reject")
command("150", "study", ["study", "run", "--recipe", "converged-bn", "--file", str(STUDY), "--data-dir", "/nonexistent"],
        "either")

# ---- time: Ray, executors, kills and changing files (151-161) ------------------------------------
command("151", "a", ["time", "-d", "cpu-1thread", "--executor", "ray", "--address", "127.0.0.1:1"], "reject", timeout=60)
command("152", "a", ["time", "-d", "cpu-1thread", "--executor", "ray", "--address", "127.0.0.1:1", "--json"], "reject",
        timeout=60)
command("153", "a", ["time", "-d", "cpu-1thread", "--executor", "slurm"], "reject")
command("154", "a", ["time", "-d", "cpu-1thread", "--address", "127.0.0.1:6379"], "reject")


@case("155")
def killed_mid_run(s: Scratch):
    ws = s.root / "a"
    proc = start(["time", "-d", "cpu-1thread", "--min-time", "2", "--rounds", "1", "-w", str(ws)], s.root)
    time.sleep(4)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    checks = [works(cli(["runs", "--json", "-w", str(ws)], s.root), True), works(cli(["models", "--json", "-w", str(ws)], s.root), True),
              works(cli(["time", "-d", "cpu-1thread", *QUICK, "--json", "-w", str(ws)], s.root), True)]
    return all(ok for ok, _ in checks), "; ".join(d for _, d in checks)


def _family(ws: Path) -> Path:
    return next((ws / "models" / "family").iterdir())


@case("156-159")
def changed_before_time(s: Scratch):
    ws = s.fresh("changed")
    assert cli(["export", "--config", "4,8,3,1", "--config", "8,12,3,2", "--untrained", "-w", str(ws)], s.root).returncode == 0
    small, large = _family(ws) / "f4-s8-k3-l1.onnx", _family(ws) / "f8-s12-k3-l2.onnx"
    keep = small.read_bytes()
    small.write_bytes(large.read_bytes())
    changed = clean(cli(["time", "-d", "cpu-1thread", *QUICK, "-w", str(ws)], s.root))
    small.unlink()
    deleted = clean(cli(["time", "-d", "cpu-1thread", *QUICK, "-w", str(ws)], s.root))
    others = works(cli(["time", "-d", "cpu-1thread", *QUICK, "--models", "*f8-s12*", "--json", "-w", str(ws)], s.root), True)
    small.write_bytes(keep)
    return changed[0] and deleted[0] and others[0], f"{changed[1][:60]} | {deleted[1][:60]} | {others[1]}"


@case("160")
def replaced_between_rounds(s: Scratch):
    ws = s.fresh("swap")
    assert cli(["export", "--config", "4,8,3,1", "--config", "64,28,5,3", "--untrained", "-w", str(ws)], s.root).returncode == 0
    small, large = _family(ws) / "f4-s8-k3-l1.onnx", _family(ws) / "f64-s28-k5-l3.onnx"
    proc = start(["time", "-d", "cpu-1thread", "--models", "*f4-s8*", "--rounds", "4", "--min-time", "1", "--json",
                  "-w", str(ws)], s.root)
    time.sleep(4)
    shutil.copy(large, small)
    out, err = proc.communicate(timeout=300)
    if proc.returncode != 0:
        return False, err.strip()[-160:]
    rounds = [r["median_s"] for r in json.loads(out)["models"][0]["rounds"]]
    return max(rounds) / min(rounds) < 3, f"round medians {[f'{r * 1e6:.0f} us' for r in rounds]}"


@case("161")
def two_exports_at_once(s: Scratch):
    ws = s.fresh("race")
    procs = [start(["export", "--config", "8,12,3,1", "--untrained", "-w", str(ws)], s.root) for _ in range(2)]
    codes = [p.wait(timeout=300) for p in procs]
    rows = sqlite3.connect(ws / "cpbench.sqlite").execute("SELECT count(*) FROM models").fetchone()[0]
    return codes == [0, 0] and rows == 1, f"exits {codes}, {rows} model rows"


# ---- zoo and flops (162-175) -------------------------------------------------------------------
for number, option in zip(range(162, 169), (["--models", "nosuch"], ["--models", "resnet18,nosuch"], ["--channels", "0"],
                                             ["--channels", "-3"], ["--classes", "0"], ["--exporter", "bogus"],
                                             ["--models", "resnet18", "--input", "100000"])):
    command(str(number), "empty", ["zoo", "export", *option], "reject", timeout=120)


def _onnx(s: Scratch, name: str, kind: str) -> Path:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((4, 1, 3, 3), np.float32), "w")
    info = helper.make_tensor_value_info

    def conv_graph(prefix: str, inputs):
        return helper.make_graph([helper.make_node("Conv", ["x", "w"], [f"{prefix}y"])], prefix, inputs,
                                 [info(f"{prefix}y", TensorProto.FLOAT, None)])

    initializers = [weight]
    if kind == "if":
        initializers.append(numpy_helper.from_array(np.array(True), "c"))
        nodes = [helper.make_node("If", ["c"], ["y"], then_branch=conv_graph("t", []), else_branch=conv_graph("e", []))]
    elif kind == "loop":
        initializers += [numpy_helper.from_array(np.array(5, np.int64), "n"), numpy_helper.from_array(np.array(True), "c")]
        body = helper.make_graph([helper.make_node("Identity", ["ci"], ["co"]), helper.make_node("Conv", ["x", "w"], ["by"])],
                                 "body", [info("i", TensorProto.INT64, []), info("ci", TensorProto.BOOL, [])],
                                 [info("co", TensorProto.BOOL, []), info("by", TensorProto.FLOAT, None)])
        nodes = [helper.make_node("Loop", ["n", "c"], ["y"], body=body)]
    else:
        nodes = [helper.make_node("Conv", ["x", "w"], ["y"])]
    shapes = {"if": [1, 1, 28, 28], "loop": [1, 1, 28, 28], "dynamic": ["n", 1, "h", "w"], "channels": [1, 3, 28, 28],
              "noshape": None}
    graph = helper.make_graph(nodes, "g", [info("x", TensorProto.FLOAT, shapes[kind])], [info("y", TensorProto.FLOAT, None)],
                              initializers)
    path = s.root / f"{name}.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def flops_case(case_id: str, kind: str, extra: list[str], expect: str):
    def run(s: Scratch):
        done = cli(["flops", str(_onnx(s, f"flops-{case_id}", kind)), *extra, "--json", "-w", str(s.ws("empty"))], s.root)
        ok, detail = judge(done, expect, True)
        if ok and kind == "noshape" and expect == "works":
            ok = json.loads(done.stdout)["macs"] == 4 * 26 * 26 * 9
        return ok, detail
    CASES.append((case_id, run))


flops_case("169", "if", [], "warn")
flops_case("170", "loop", [], "warn")
flops_case("171", "dynamic", [], "either")
flops_case("172", "dynamic", ["--input-shape", "1x1x28x28"], "either")
flops_case("173", "channels", [], "either")
flops_case("174", "noshape", [], "either")
flops_case("175", "noshape", ["--input-shape", "1x1x28x28"], "works")


# ---- profiles the machine cannot serve (176-181), and a calibration the fit cannot use (182) ------
def profile_case(case_id: str, text: str, args: list[str]):
    def run(s: Scratch):
        ws = s.ws("profiles")
        (ws / "profiles").mkdir(exist_ok=True)
        (ws / "profiles" / f"p{case_id}.toml").write_text(text)
        model = next((s.root / "a" / "models").rglob("*.onnx"))
        argv = [a.replace("{P}", f"p{case_id}").replace("{MODEL}", str(model)) for a in args]
        return clean(cli([*argv, "-w", str(ws)], s.root))
    CASES.append((case_id, run))


BIG = 'runtime = "onnxruntime"\nprovider = "CPUExecutionProvider"\nbatch = 1000000000\n'
TRT = 'runtime = "onnxruntime"\nprovider = "TensorrtExecutionProvider"\n'
for number, (text, args) in enumerate(((BIG, ["time", "-d", "{P}", "--model", "{MODEL}"]),
                                       (BIG, ["calibrate", "-d", "{P}"]), (BIG, ["predict", "-d", "{P}", "-c", "8,12,3,1"]),
                                       (TRT, ["time", "-d", "{P}", *QUICK]), (TRT, ["calibrate", "-d", "{P}", "--share", "0"]),
                                       (TRT, ["predict", "-d", "{P}", "-c", "8,12,3,1"])), 176):
    profile_case(str(number), text, args)


@case("182")
def calibration_without_networks(s: Scratch):
    ws = s.fresh("nonets")
    fits = ws / "models" / "fits"
    fits.mkdir(parents=True)
    payload = json.loads(gzip.decompress((REFERENCE / "fits" / "cpu-deb299df8670.calibration.json.gz").read_bytes()))
    payload["networks"] = {}
    (fits / f"cpu-{s.hardware_id}.calibration.json.gz").write_bytes(gzip.compress(json.dumps(payload).encode()))
    ok, detail = clean(cli(["predict", "-d", "cpu", "-c", "8,12,3,1", "-w", str(ws)], s.root))
    return ok and "move it away" in detail, detail


def build(root: Path) -> Scratch:
    """Workspace 'a': two untrained models and a run timing them; its bundle is the base of the bundle
    cases, imported into copies of workspace 'b' (one other model and run)."""
    from cpbench.timing.environment import fingerprint

    for name, config in (("a", "4,8,3,1"), ("b", "2,8,1,1")):
        ws = root / name
        configs = ["--config", config] + (["--config", "8,12,3,2"] if name == "a" else [])
        for step in (["export", *configs, "--untrained"], ["time", "-d", "cpu-1thread", *QUICK]):
            done = cli([*step, "-w", str(ws)], root)
            if done.returncode != 0:
                sys.exit(f"set-up step failed ({' '.join(step)}): {done.stderr.strip()[-400:]}")
    bundle = root / "a.bundle.json"
    cli(["results", "export", str(bundle), "-w", str(root / "a")], root)
    return Scratch(root, fingerprint()["hardware_id"], json.loads(bundle.read_text()))


def replay(verbose: bool = False, only: list[str] | None = None) -> tuple[int, int, list[str]]:
    """(clean, cases, ids not clean); one line per case that is not clean (every case with verbose)."""
    done_ok, total, failures = 0, 0, []
    with tempfile.TemporaryDirectory(prefix="cpbench-review-2-") as tmp:
        scratch = build(Path(tmp))
        for case_id, run in CASES:
            if only and case_id not in only:
                continue
            try:
                ok, detail = run(scratch)
            except subprocess.TimeoutExpired:
                ok, detail = False, "hang"
            total += 1
            done_ok += bool(ok)
            if not ok:
                failures.append(case_id)
            if verbose or not ok:
                print(f"{'ok' if ok else 'NOT OK':6s} {case_id:8s} {str(detail)[:150]}", flush=True)
    return done_ok, total, failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--only", nargs="*")
    args = parser.parse_args()
    started = time.perf_counter()
    ok, total, failures = replay(args.verbose, args.only)
    print(json.dumps({"clean": ok, "cases": total, "not_ok": failures, "seconds": round(time.perf_counter() - started)}))
    print(f"{ok} of {total} cases of the second table clean")


if __name__ == "__main__":
    main()
