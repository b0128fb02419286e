"""Replay the whole bad-input table of the reliability review against the CLI and print how many of
its rejected inputs are rejected cleanly (exit 2, one stderr line starting with 'error:', no
traceback, nothing on stdout) and how many of its valid inputs still work.

The table (all 351 logged trials: id, workspace, command, what was expected, the review's verdict)
is `benchmarks/reliability_table.tsv`, copied from the first reliability review's Table 1. The
review's scratch inputs (corrupt IDX files, image folders, odd and hostile ONNX files, 35 broken
profiles, damaged, future, read-only and 0-byte stores) are rebuilt from their names and the
review's descriptions in a temporary folder, so it runs anywhere FashionMNIST is installed. Rows
run in table order, each in its workspace, as the review ran them; a few rows get a set-up step
the review describes (a model file replaced before `time`, a run to compare with itself).

Where a later decision went otherwise than the table's "expected" column, the
issue wins, and the row says so: a broken sibling profile is skipped with a warning (it no longer
fails every device), and a 0-byte store beside model files is refused (it was treated as new).

The second table (182 cases on the commands and files added since) is replayed after it by
bad_inputs_added.py, and both counts are printed.

    python benchmarks/bad_inputs.py [--verbose] [--only ID ...] [--keep DIR] [--table first|second|both]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import shutil
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TABLE = Path(__file__).with_name("reliability_table.tsv")
CPBENCH = [sys.executable, "-m", "cpbench.cli"]
QUICK = ["--min-time", "0.05", "--min-runs", "5", "--warmup", "1"]

# rows whose command the table cannot carry exactly (empty or space-padded arguments, HTML, notes);
# "{S}" is the scratch folder
ARGV = {
    "c10": ["export", "--config", "", "--epochs", "1", "--train-subset", "2000"],
    "c16": ["export", "--config", " 8 , 12 , 3 , 1 ", "--dry-run"],
    "dv-empty": ["time", "--device", "", *QUICK, "--models", "*f8-s12*"],
    "sec04": ["zoo", "export", "--models", " , "],
    "rp03": ["report", "--name", ""],
    "rp05": ["report", "--name", "<script>alert(1)<"],
    "f-big": ["flops", "{S}/onnx/big.onnx"],
}
# the review expected a warning or a refusal: either is right
WARN_OR_REJECT = {"c11", "c12", "c13", "c30", "c42", "c46", "f-opset99", "f-badconv", "st-s_empty0-models",
                  "st-s_empty0-export", "p03", "co03", "co07", "dv-both", "fi14", "tm3-static-ov", "w04", "w05"}
# one broken profile in profiles/ must not break other devices : skipped with a warning
SIBLING = {"pf06", "pf07", "pf08", "pf06b", "pf07b", "pf08b", "pf07c", "pf07d", "pf08d"}
# a read-only workspace is readable: read commands work, writing ones are refused cleanly;
# a store with one bad row still takes new models (the bad row is named when it is read)
READABLE = {"ro-s_ro-models", "ro-s_ro-runs", "ro-s_ro-flops_family", "ro-s_ro-fit_--device", "ro-s_ro-fit-precisio",
            "ro-s_ro_top-models", "ro-s_ro_top-runs", "ro-s_ro_top-flops_family", "ro-s_ro_top-fit_--device",
            "ro-s_ro_top-fit-precisio", "st-badjson-export"}
# a 0-byte store beside model files is refused, whatever the command
# a report name is a plain folder name (letters, digits, '.', '_', '-'): markup in one is refused, not escaped
PLAIN_NAMES = {"rp05"}
EMPTY_STORE = {"st-s_empty0-runs", "st-s_empty0-time", "st-s_empty0-report", "st-s_empty0-flops"}
DOCUMENTED_EXIT_1 = "model recorded failed, exit 1 (documented)"


# ---- scratch inputs ------------------------------------------------------------------------------


def write_idx(path: Path, array: np.ndarray, code: int = 0x08) -> None:
    header = bytes([0, 0, code, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape)
    path.write_bytes(header + array.tobytes())


NAMES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
         "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}


def fashion(folder: Path, damage: str | None = None) -> None:
    """Four small FashionMNIST-format IDX files, then the named damage."""
    import gzip

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 60), ("test", 20)):
        write_idx(folder / NAMES[f"{prefix}_images"], rng.integers(0, 255, (n, 28, 28)).astype(np.uint8))
        write_idx(folder / NAMES[f"{prefix}_labels"], (np.arange(n) % 10).astype(np.uint8))
    f = {k: folder / v for k, v in NAMES.items()}
    if damage == "trunc_hdr":
        f["train_images"].write_bytes(f["train_images"].read_bytes()[:9])
    elif damage in ("swapped", "swapped_test"):
        a, b = (f["train_images"], f["train_labels"]) if damage == "swapped" else (f["test_images"], f["test_labels"])
        blob = a.read_bytes()
        a.write_bytes(b.read_bytes())
        b.write_bytes(blob)
    elif damage == "badlabels":
        write_idx(f["train_labels"], (np.arange(60) % 13).astype(np.uint8) * 20)
    elif damage == "trunc_raw":
        f["train_images"].write_bytes(f["train_images"].read_bytes()[:-100])
    elif damage == "mismatch":
        write_idx(f["train_labels"], (np.arange(50) % 10).astype(np.uint8))
    elif damage == "floatidx":
        write_idx(f["train_images"], rng.random((60, 28, 28)).astype(">f4"), code=0x0D)
    elif damage == "three":
        f["test_labels"].unlink()
    elif damage == "dirfiles":
        for p in f.values():
            p.unlink()
            p.mkdir()
    elif damage in ("trunc_gz", "fakegz"):
        for p in f.values():
            blob = p.read_bytes()
            (p.parent / (p.name + ".gz")).write_bytes(gzip.compress(blob)[:-40] if damage == "trunc_gz" else blob)
            p.unlink()


def image_folder(folder: Path, classes: dict[str, int], mode: str = "RGB", bad: bool = False) -> None:
    from PIL import Image

    rng = np.random.default_rng(1)
    for name, count in classes.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            shape = (16, 16, 3) if mode == "RGB" else (16, 16)
            Image.fromarray(rng.integers(0, 255, shape).astype(np.uint8), mode).save(folder / name / f"{i}.png")
    if bad:
        (folder / next(iter(classes)) / "broken.png").write_bytes(b"\x89PNG this is not an image")


def onnx_files(folder: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder.mkdir(parents=True)
    f32 = TensorProto.FLOAT

    def save(name: str, nodes, inputs, outputs, inits=(), opset: int = 18, ir: int = 9, domains=()) -> None:
        graph = helper.make_graph(nodes, name, inputs, outputs, list(inits))
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset), *domains])
        model.ir_version = ir
        onnx.save(model, str(folder / f"{name}.onnx"))

    vi = helper.make_tensor_value_info
    relu = [helper.make_node("Relu", ["x"], ["y"])]
    save("valid", relu, [vi("x", f32, ["N", 4])], [vi("y", f32, ["N", 4])])
    save("static1", relu, [vi("x", f32, [1, 4])], [vi("y", f32, [1, 4])])
    save("opset99", relu, [vi("x", f32, [1, 4])], [vi("y", f32, [1, 4])], opset=99, ir=99)
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    save("dynamic", [helper.make_node("Conv", ["x", "w"], ["y"])], [vi("x", f32, [1, 3, "H", "W"])], [vi("y", f32, None)], [w])
    bad_w = numpy_helper.from_array(np.ones((4, 5, 3, 3), np.float32), "w")
    save("badconv", [helper.make_node("Conv", ["x", "w"], ["y"])], [vi("x", f32, [1, 3, 8, 8])], [vi("y", f32, None)], [bad_w])
    save("huge_input", [helper.make_node("ReduceMax", ["x"], ["y"], keepdims=0)], [vi("x", f32, [1, 3, 100000, 100000])],
         [vi("y", f32, None)], opset=13)
    save("negdim", relu, [vi("x", f32, [1, -4])], [vi("y", f32, [1, -4])])
    save("two_inputs", [helper.make_node("MatMul", ["a", "b"], ["y"])], [vi("a", f32, [1, 16]), vi("b", f32, [16, 8])], [vi("y", f32, [1, 8])])
    save("two_inputs_dyn", [helper.make_node("Add", ["a", "b"], ["y"])], [vi("a", f32, ["N", 8]), vi("b", f32, ["N", 8])], [vi("y", f32, ["N", 8])])
    save("string_input", [helper.make_node("Identity", ["x"], ["y"])], [vi("x", TensorProto.STRING, [1, 2])], [vi("y", TensorProto.STRING, [1, 2])])
    save("nonodes", [], [vi("x", f32, [1, 4])], [vi("x", f32, [1, 4])])
    c = numpy_helper.from_array(np.ones((1, 4), np.float32), "c")
    save("noinputs", [helper.make_node("Relu", ["c"], ["y"])], [], [vi("y", f32, [1, 4])], [c])
    save("custom", [helper.make_node("MyOp", ["x"], ["y"], domain="com.example")], [vi("x", f32, [1, 4])], [vi("y", f32, [1, 4])],
         domains=[helper.make_opsetid("com.example", 1)])
    cyclic = [helper.make_node("Add", ["x", "b"], ["a"]), helper.make_node("Relu", ["a"], ["b"])]
    save("cycle", cyclic, [vi("x", f32, [1, 4])], [vi("b", f32, [1, 4])])
    big = numpy_helper.from_array(np.random.default_rng(0).random((1024, 2048), dtype=np.float32), "w")
    save("big", [helper.make_node("Gemm", ["x", "w"], ["y"])], [vi("x", f32, ["N", 1024])], [vi("y", f32, ["N", 2048])], [big])
    valid = (folder / "valid.onnx").read_bytes()
    (folder / "truncated.onnx").write_bytes((folder / "big.onnx").read_bytes()[:4_000_000])
    (folder / "truncated_small.onnx").write_bytes(valid[: len(valid) // 2])
    (folder / "empty.onnx").write_bytes(b"")
    (folder / "text.onnx").write_text("hello, I am not a model\n")
    (folder / "notes.txt").write_text("notes\n")
    (folder / "random.onnx").write_bytes(np.random.default_rng(0).bytes(4096))
    (folder / "adir.onnx").mkdir()
    # external data: legit, missing, and pointing outside the model's folder
    for sub, _location in (("legit", "m.bin"), ("missing", "gone.bin"), ("sub", None)):
        (folder / "ext" / sub).mkdir(parents=True)
    weights = np.ones((4, 4), np.float32)

    def external(path: Path, location: str) -> None:
        tensor = numpy_helper.from_array(weights, "w")
        tensor.data_location = TensorProto.EXTERNAL
        tensor.ClearField("raw_data")
        entry = tensor.external_data.add()
        entry.key, entry.value = "location", location
        graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "ext", [vi("x", f32, ["N", 4])],
                                  [vi("y", f32, ["N", 4])], [tensor])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
        model.ir_version = 9
        path.write_bytes(model.SerializeToString())

    (folder / "ext" / "legit" / "m.bin").write_bytes(weights.tobytes())
    external(folder / "ext" / "legit" / "m.onnx", "m.bin")
    external(folder / "ext" / "missing" / "m.onnx", "gone.bin")
    external(folder / "ext" / "sub" / "passwd_rel.onnx", "../../../../../../../../etc/passwd")
    external(folder / "ext" / "sub" / "passwd_abs.onnx", "/etc/passwd")
    (folder / "ext" / "sub" / "link.bin").symlink_to("/etc/passwd")
    external(folder / "ext" / "sub" / "symlink.onnx", "link.bin")


ORT = 'runtime = "onnxruntime"\nprovider = "CPUExecutionProvider"\n'
OV = 'runtime = "openvino"\ndevice = "CPU"\n'
PROFILES = {
    "p_unknownkey": ORT + "threds = 1\n",
    "p_wrongtype": ORT + 'threads = "two"\n',
    "p_wrongtype_bool": ORT + "threads = true\n",
    "p_invalid": ORT + "threads = = 1\n",
    "p_unknownrt": 'runtime = "tensorflow"\n',
    "p_norun": 'provider = "CPUExecutionProvider"\n',
    "p_noprovider": 'runtime = "onnxruntime"\nprovider = ""\n',
    "p_badprovider": 'runtime = "onnxruntime"\nprovider = "FooExecutionProvider"\n',
    "p_ortopt": ORT + "[options]\nintra_op_spin = 0\n",
    "p_ortopt_type": ORT + '[options]\ninter_op_num_threads = "x"\n',
    "p_ortopt_mode": ORT + '[options]\nexecution_mode = "bogus"\n',
    "p_ortprov_opt": ORT + "[options.provider]\nbogus_option = 1\n",
    "p_ovhint": OV + '[options]\nPERFORMANCE_HINT = "BOGUS"\n',
    "p_ovprop": OV + '[options]\nNOT_A_PROPERTY = "1"\n',
    "p_ovdevice": 'runtime = "openvino"\ndevice = "GPU"\n',
    "p_ovdevice2": 'runtime = "openvino"\ndevice = "NPU"\n',
    "p_ovdevice_bogus": 'runtime = "openvino"\ndevice = "BOGUS"\n',
    "p_minruns_neg": ORT + "[measure]\nmin_runs = -5\n",
    "p_minruns_float": ORT + "[measure]\nmin_runs = 2.5\n",
    "p_batch0": ORT + "batch = 0\n",
    "p_threads_neg": ORT + "threads = -2\n",
    "p_threads_huge": ORT + "threads = 100000\n",
    "p_measure_unknown": ORT + "[measure]\nmin_runz = 5\n",
    "p_measure_str": ORT + '[measure]\nmin_runs = "many"\n',
    "p_maxlt": ORT + "[measure]\nmin_runs = 100\nmax_runs = 10\n",
    "p_rounds0": ORT + "[measure]\nrounds = 0\n",
    "p_rounds_float": ORT + "[measure]\nrounds = 1.5\n",
    "p_graphopt": ORT + 'graph_optimization = "max"\n',
    "p_nan": ORT + "[measure]\nmin_time_s = nan\n",
    "p_options_notable": ORT + "options = 5\n",
    "p_empty": "",
    "p_inf_max": OV + "[measure]\nmax_time_s = inf\n",
    "p_fitted_garbage": OV + '[fitted]\nformat = 1\nmodels = 7\nbest = "x"\n',
    "p_fitted_partial": OV + '[fitted]\nformat = 1\nbest = "linear"\nn = 5\n[fitted.models.linear]\nfeatures = ["macs"]\n'
                             '[fitted.models.linear.coefficients]\nalpha0 = { value = 1e-5, ci_low = 1e-5, ci_high = 1e-5 }\n',
}


def cli(args: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(CPBENCH + args, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "CPBENCH_DEBUG": ""})


def must(done: subprocess.CompletedProcess, what: str) -> subprocess.CompletedProcess:
    if done.returncode != 0:
        sys.exit(f"set-up step failed ({what}): {done.stderr.strip()[-500:]}")
    return done


def build_scratch(s: Path) -> dict[str, str]:
    """Everything the table's commands name, under `s` (the review's scratch/)."""
    data = s / "data"
    for damage in ("trunc_hdr", "swapped", "swapped_test", "badlabels", "trunc_raw", "mismatch", "floatidx", "three",
                   "dirfiles", "trunc_gz", "fakegz"):
        fashion(data / damage, damage)
    (data / "empty").mkdir(parents=True)
    (data / "afile").write_text("a file, not a folder\n")
    image_folder(data / "if_ok", {"cat": 6, "dog": 6})
    image_folder(data / "other" / "if_ok", {"ant": 6, "bee": 6, "fly": 6})
    image_folder(data / "if_one", {"only": 6})
    image_folder(data / "if_emptyclass", {"cat": 6})
    (data / "if_emptyclass" / "dog").mkdir()
    image_folder(data / "if_badimg", {"cat": 6, "dog": 6}, bad=True)
    image_folder(data / "if_split" / "train", {"cat": 6, "dog": 6})
    image_folder(data / "if_split" / "test", {"cat": 2, "fish": 2})
    image_folder(data / "if_tiny", {"cat": 1, "dog": 1})
    image_folder(data / "if_gray", {"cat": 6, "dog": 6}, mode="L")
    image_folder(data / "xss" / "<b>bold<", {"cat": 6, "dog": 6})
    # torchvision's processed/ layout with a pickle that would run a command if it were unpickled
    real = Path(os.environ.get("CPBENCH_DATA", "/usr/share/datasets/fashion-mnist"))
    tv = data / "tv"
    tv.mkdir()
    for p in real.glob("*ubyte*"):
        (tv / p.name).symlink_to(p)
    (tv / "FashionMNIST" / "processed").mkdir(parents=True)
    pwned = s / "PWNED_BY_PICKLE"
    (tv / "FashionMNIST" / "processed" / "training.pt").write_bytes(
        b"cos\nsystem\n(S'touch " + str(pwned).encode() + b"'\ntR.")
    onnx_files(s / "onnx")
    (s / "afile").write_text("a file\n")
    (s / "evil").write_text('runtime = "onnxruntime"\n')
    for name in ("ws1", "ws2", "ws4", "ws5", "ws6", "ws7", "ws9", "ws10", "ws_empty", "ws", "ws_xss"):
        (s / name).mkdir()
    profiles = s / "ws5" / "profiles"
    profiles.mkdir()
    for name, text in PROFILES.items():
        (profiles / f"{name}.toml").write_text(text)
    (profiles / "p_badutf8.toml").write_bytes(b'runtime = "openvino"\n# caf\xff\n')
    (profiles / "p_isdir.toml").mkdir()
    xss = s / "ws_xss" / "profiles"
    xss.mkdir()
    (xss / "<img src=x onerror=alert(1)>.toml").write_text(OV + 'description = "<script>alert(1)</script>"\n')
    # stores
    must(cli(["export", "--config", "2,8,1,1", "--untrained"], s / "ws_empty"), "a store to damage")
    good = s / "ws_empty" / "cpbench.sqlite"
    for name in ("s_garbage", "s_trunc", "s_future", "s_empty0", "s_other", "s_badjson", "s_dir"):
        (s / name).mkdir()
    (s / "s_garbage" / "cpbench.sqlite").write_bytes(b"this is not sqlite" * 100)
    shutil.copy(good, s / "s_trunc" / "cpbench.sqlite")
    with open(s / "s_trunc" / "cpbench.sqlite", "r+b") as handle:
        handle.truncate(1500)
    shutil.copy(good, s / "s_future" / "cpbench.sqlite")
    db = sqlite3.connect(s / "s_future" / "cpbench.sqlite")
    db.execute("PRAGMA user_version = 999")
    db.commit()
    db.close()
    (s / "s_empty0" / "cpbench.sqlite").write_bytes(b"")
    smoke = s / "s_empty0" / "models" / "family" / "fashionmnist-smoke"
    smoke.mkdir(parents=True)
    for config in ("f8-s12-k3-l1", "f8-s16-k2-l2", "f6-s12-k3-l2"):
        shutil.copy(s / "onnx" / "valid.onnx", smoke / f"{config}.onnx")
    db = sqlite3.connect(s / "s_other" / "cpbench.sqlite")
    db.execute("PRAGMA user_version = 3")
    db.commit()
    db.close()
    shutil.copytree(s / "ws_empty", s / "s_badjson", dirs_exist_ok=True)
    db = sqlite3.connect(s / "s_badjson" / "cpbench.sqlite")
    db.execute("UPDATE models SET recipe = '{bad'")
    db.commit()
    db.close()
    (s / "s_dir" / "cpbench.sqlite").mkdir()
    shutil.rmtree(s / "ws_empty")
    (s / "ws_empty").mkdir()
    # workspaces the review had filled before its rows: trained models and a run (ws5), timed configs (ws10)
    must(cli(["export", "--preset", "smoke", "--threads", "1"], s / "ws5"), "ws5 smoke export")
    timed = json.loads(must(cli(["time", "--device", "cpu", *QUICK, "--models", "*f8-s12*", "--rounds", "1", "--json"],
                                s / "ws5"), "ws5 run").stdout)
    configs = ["8,12,3,1", "8,16,3,2", "6,12,3,2", "12,20,3,1", "4,8,1,1", "16,12,5,2", "2,16,2,3", "10,24,4,2",
               "6,28,3,1", "14,8,2,2", "3,20,5,1", "9,16,1,3"]
    must(cli(["export", "--untrained", *[a for c in configs for a in ("--config", c)]], s / "ws10"), "ws10 export")
    must(cli(["time", "--device", "cpu", *QUICK, "--rounds", "1"], s / "ws10"), "ws10 time")
    return {"cpu-20261122-073011-d0f1": timed["run_id"], "pwned": str(pwned)}


# ---- rows ----------------------------------------------------------------------------------------


def argv_of(row: dict, s: Path, ids: dict[str, str]) -> tuple[list[str], str | None]:
    """(cpbench arguments, None) or (["bash", "-c", ...], None) for rows that set a ulimit."""
    command = row["command"]
    if row["id"] in ARGV:
        return [a.replace("{S}", str(s)) for a in ARGV[row["id"]]], None
    for old, new in ids.items():
        command = command.replace(old, new)
    command = command.replace("scratch/", f"{s}/")
    if command.startswith("bash -c "):
        inner = shlex.split(command)[2].replace("cpbench ", " ".join(map(shlex.quote, CPBENCH)) + " ", 1)
        return ["bash", "-c", inner], "shell"
    args = shlex.split(command)[1:]
    for i, a in enumerate(args[:-1]):  # the review's -w paths are under scratch/
        if a == "-w" and not os.path.isabs(args[i + 1]):
            args[i + 1] = str(s / args[i + 1])
    return args, None


def prepare(row_id: str, s: Path) -> None:
    """The set-up the review describes for a few rows."""
    models = s / "ws4" / "models" / "family" / "fashionmnist-smoke"
    if row_id == "m01":  # one model file deleted, one garbage, one replaced by another valid model
        files = sorted(models.glob("*.onnx"))
        files[0].unlink()
        files[1].write_bytes(b"garbage" * 100)
        shutil.copy(s / "onnx" / "valid.onnx", files[2])
    elif row_id == "m03":  # a much bigger model copied over a stored one
        shutil.copy(s / "onnx" / "big.onnx", models / "f6-s12-k3-l2.onnx")
    elif row_id == "ro-s_ro-models":  # read-only copies of a store with models (chattr as root, like the review)
        for name, top_only in (("s_ro", False), ("s_ro_top", True)):
            shutil.copytree(s / "ws1", s / name)
            lock(s / name, top_only)


def lock(folder: Path, top_only: bool) -> None:
    if os.geteuid() == 0 and shutil.which("chattr"):
        subprocess.run(["chattr", "+i", str(folder)] if top_only else ["chattr", "-R", "+i", str(folder)], check=True)
    else:
        for p in [folder] if top_only else [folder, *folder.rglob("*")]:
            p.chmod(p.stat().st_mode & ~0o222)


def unlock(s: Path) -> None:
    for name in ("s_ro", "s_ro_top"):
        if (s / name).exists() and os.geteuid() == 0 and shutil.which("chattr"):
            subprocess.run(["chattr", "-R", "-i", str(s / name)], check=False)


def clean(done: subprocess.CompletedProcess) -> tuple[bool, str]:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    problems = []
    if done.returncode != 2:
        problems.append(f"exit {done.returncode}")
    if "Traceback" in done.stderr:
        problems.append("traceback")
    if len(lines) != 1 or not lines[0].startswith("error: "):
        problems.append(f"{len(lines)} stderr lines")
    if done.stdout.strip():
        problems.append("stdout not empty")
    return not problems, ", ".join(problems) or (lines[0] if lines else "")


def judge(row: dict, done: subprocess.CompletedProcess, s: Path, ids: dict[str, str]) -> tuple[str, bool, str]:
    """(kind, ok, detail); kind is 'rejected' or 'valid', as the table counts them."""
    row_id, expected = row["id"], row["expected"]
    first = next((line for line in done.stderr.splitlines() if line.strip()), "")
    traceback = "Traceback" in done.stderr or "Traceback" in done.stdout
    if row_id in EMPTY_STORE or row_id in SIBLING or row_id in PLAIN_NAMES:
        kind = "rejected"
    else:
        kind = "valid" if expected.startswith("works") or expected in (DOCUMENTED_EXIT_1, "HTML escaped") else "rejected"
    if row_id in SIBLING:  # the device itself is fine: it answers, and the bad sibling is named in a warning
        ok = not traceback and done.returncode in (0, 1) and "skipped" in done.stderr + done.stdout
        return kind, ok or clean(done)[0], first
    if row_id == "x01":
        html = (s / "ws_xss" / "reports" / "xss" / "index.html")
        text = html.read_text() if html.exists() else ""
        return kind, done.returncode == 0 and "<script>alert" not in text and "&lt;script&gt;" in text, "report escaped" if text else first
    if row_id == "i10":  # a different folder of the same name is a different dataset: trained, not skipped
        try:
            payload = json.loads(done.stdout)
        except ValueError:
            return kind, False, first
        statuses = [m.get("status") for m in (payload.get("models") or [])] if isinstance(payload, dict) else []
        return kind, done.returncode == 0 and statuses == ["exported"], f"statuses {statuses}"
    if row_id in ("sec16", "sec17"):
        ok = not Path(ids["pwned"]).exists() and not traceback and (done.returncode == 0 or clean(done)[0])
        return kind, ok, first or "no pickle run"
    if row_id == "c30":  # "reject (like -1) or document 0 = all cores": documented in --help
        documented = "0 or unset: all cores" in cli(["export", "--help"], s).stdout
        return kind, (done.returncode == 0 and documented and not traceback) or clean(done)[0], "0 = all cores, documented"
    if kind == "valid":
        allowed = (0, 1) if expected == DOCUMENTED_EXIT_1 or row_id == "r07" else (0,)
        ok = done.returncode in allowed and not traceback
        if not ok and expected == DOCUMENTED_EXIT_1:  # refused before a run is created: better than documented
            ok, detail = clean(done)
            return kind, ok, detail
        if ok and "--json" in row["command"] and done.returncode == 0:
            try:
                json.loads(done.stdout)
            except ValueError:
                ok = False
        return kind, ok, first or f"exit {done.returncode}"
    ok, detail = clean(done)
    if not ok and row_id in READABLE:
        ok, detail = not traceback and done.returncode == 0, f"exit {done.returncode}: works"
    if not ok and row_id in WARN_OR_REJECT:
        ok = not traceback and done.returncode == 0 and "warning" in (done.stderr + done.stdout).lower()
        detail = first if ok else detail
    return kind, ok, detail


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--only", nargs="*", help="replay these row ids only (set-up still runs)")
    parser.add_argument("--keep", type=Path, help="build the scratch folder here and keep it")
    parser.add_argument("--table", choices=("first", "second", "both"), default="both")
    args = parser.parse_args()
    if args.table != "second":
        replay_first(args)
    if args.table != "first":
        sys.path.insert(0, str(Path(__file__).parent))
        from bad_inputs_added import replay

        ok, total, failures = replay(args.verbose, args.only)
        print(json.dumps({"second_table_clean": ok, "cases": total, "not_ok": failures}))
        print(f"{ok} of {total} cases of the second table clean")


def replay_first(args: argparse.Namespace) -> None:
    rows = list(csv.DictReader(TABLE.open(encoding="utf-8"), delimiter="\t"))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cpbench-review-") as tmp:
        s = (args.keep or Path(tmp)) / "scratch"
        s.mkdir(parents=True, exist_ok=False)
        try:
            ids = build_scratch(s)
            counts = {"rejected": [0, 0], "valid": [0, 0]}
            failures = []
            for row in rows:
                if args.only and row["id"] not in args.only:
                    continue
                prepare(row["id"], s)
                argv, shell = argv_of(row, s, ids)
                cwd = s / row["cwd"]
                try:
                    if shell:
                        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600,
                                              env={**os.environ, "CPBENCH_DEBUG": ""})
                    else:
                        done = cli(argv, cwd)
                    kind, ok, detail = judge(row, done, s, ids)
                except subprocess.TimeoutExpired:
                    kind, ok, detail = "valid" if row["expected"].startswith("works") else "rejected", False, "hang (600 s)"
                counts[kind][0] += ok
                counts[kind][1] += 1
                if not ok:
                    failures.append(row["id"])
                if args.verbose or not ok:
                    print(f"{'ok' if ok else 'NOT OK':6s} {kind:8s} {row['id']:22s} {detail[:140]}", flush=True)
            junk = sqlite3.connect(s / "ws2" / "cpbench.sqlite").execute(
                "SELECT count(*) FROM runs r WHERE NOT EXISTS (SELECT 1 FROM measurements m WHERE m.run_id = r.id "
                "AND m.status = 'ok')").fetchone()[0] if (s / "ws2" / "cpbench.sqlite").exists() else 0
        finally:
            unlock(s)
    (rejected_ok, rejected), (valid_ok, valid) = counts["rejected"], counts["valid"]
    print(json.dumps({"rejected_clean": rejected_ok, "rejected": rejected, "valid_ok": valid_ok, "valid": valid,
                      "runs_without_a_measurement_in_ws2": junk, "not_ok": failures,
                      "seconds": round(time.perf_counter() - started)}))
    print(f"{rejected_ok} of {rejected} rejected inputs clean (exit 2, one line, no traceback); {valid_ok} of {valid} "
          f"valid inputs work; runs kept with no measurement: {junk}")


if __name__ == "__main__":
    main()
