"""Replay bad inputs from the reliability review (../shared/reviews/reliability.md) against the CLI
and print how many are rejected cleanly: exit 2, one stderr line starting with 'error:', no
traceback, nothing on stdout, and no run or model stored for the attempt.

It rebuilds the review's scratch inputs (corrupt IDX files, non-ONNX files, broken profiles and
stores) in a temporary folder, so it runs anywhere; each row names its id in the review's table.
This is a representative subset of the table's rejected inputs (every category, every defect the
review reported, defects 16-17's values once accepted silently and misleading messages among them),
not all 296 rows.

    python benchmarks/bad_inputs.py [--verbose]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CPBENCH = [sys.executable, "-m", "cpbench.cli"]


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def fashion(folder: Path, damage: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    names = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
             "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 40), ("test", 20)):
        write_idx(folder / names[f"{prefix}_images"], rng.integers(0, 255, (n, 28, 28)))
        write_idx(folder / names[f"{prefix}_labels"], np.arange(n) % 10)
    images, labels = folder / names["train_images"], folder / names["train_labels"]
    if damage == "trunc_hdr":
        images.write_bytes(images.read_bytes()[:9])
    elif damage == "swapped":
        blob = images.read_bytes()
        images.write_bytes(labels.read_bytes())
        labels.write_bytes(blob)
    elif damage == "badlabels":
        write_idx(labels, np.arange(40) % 13)
    elif damage == "truncated":
        images.write_bytes(images.read_bytes()[:-100])
    return folder


def scratch(root: Path) -> dict[str, Path]:
    from PIL import Image

    paths = {"ws": root / "ws", "data": root / "data"}
    for damage in ("trunc_hdr", "swapped", "badlabels", "truncated"):
        paths[damage] = fashion(root / "data" / damage, damage)
    paths["ok"] = fashion(root / "data" / "ok")
    (root / "data" / "empty").mkdir(parents=True)
    paths["empty"] = root / "data" / "empty"
    one = root / "data" / "if_one"
    for c in "ab":
        (one / c).mkdir(parents=True)
        Image.fromarray(np.zeros((10, 10), np.uint8)).save(one / c / "0.png")
    paths["if_one"] = one
    onnx = root / "onnx"
    onnx.mkdir()
    (onnx / "empty.onnx").write_bytes(b"")
    (onnx / "text.onnx").write_text("hello, I am not a model\n")
    (onnx / "random.onnx").write_bytes(np.random.default_rng(0).bytes(4096))
    (onnx / "adir.onnx").mkdir()
    import onnx as onnx_lib
    from onnx import TensorProto, helper

    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    future = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 99)])
    future.ir_version = 99
    (onnx / "ir99.onnx").write_bytes(future.SerializeToString())
    cyclic = helper.make_graph([helper.make_node("Add", ["x", "b"], ["a"]), helper.make_node("Relu", ["a"], ["b"])], "c",
                               [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                               [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 4])])
    cycle = helper.make_model(cyclic, opset_imports=[helper.make_opsetid("", 18)])
    cycle.ir_version = 9
    (onnx / "cycle.onnx").write_bytes(cycle.SerializeToString())
    valid = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    valid.ir_version = 9
    onnx_lib.save(valid, str(onnx / "valid.onnx"))
    (root / "afile").write_text("not a folder\n")
    paths["afile"] = root / "afile"
    paths["onnx"] = onnx
    profiles = paths["ws"] / "profiles"
    profiles.mkdir(parents=True)
    bad = {
        "p_typo": 'runtime = "onnxruntime"\nprovider = "CPUExecutionProvider"\nthreds = 1\n',
        "p_ort_option": 'runtime = "onnxruntime"\nprovider = "CPUExecutionProvider"\n[options]\nintra_op_spin = 0\n',
        "p_ov_property": 'runtime = "openvino"\n[options]\nNUM_STREAM = "1"\n',
        "p_threads_huge": 'runtime = "onnxruntime"\nprovider = "CPUExecutionProvider"\nthreads = 100000\n',
        "p_inf_max": 'runtime = "openvino"\n[measure]\nmax_time_s = inf\n',
        "p_fitted_garbage": 'runtime = "openvino"\n[fitted]\nformat = 1\nmodels = 7\nbest = "x"\n',
        "p_fitted_future": 'runtime = "openvino"\n[fitted]\nformat = 99\nmodels = {}\n',
        "p_minruns_float": 'runtime = "onnxruntime"\nprovider = "CPUExecutionProvider"\n[measure]\nmin_runs = 2.5\n',
    }
    (profiles / "p_isdir.toml").mkdir()
    for name, text in bad.items():
        (profiles / f"{name}.toml").write_text(text)
    (profiles / "p_badutf8.toml").write_bytes(b'runtime = "openvino"\n# caf\xff\n')
    for name, content in (("s_garbage", b"this is not sqlite" * 100), ("s_future", None), ("s_other", None)):
        folder = root / name
        folder.mkdir()
        store = folder / "cpbench.sqlite"
        if content is not None:
            store.write_bytes(content)
            continue
        db = sqlite3.connect(store)
        if name == "s_future":
            db.execute("PRAGMA user_version = 99")
        else:
            db.execute("CREATE TABLE other (x)")
            db.execute("PRAGMA user_version = 5")
        db.commit()
        db.close()
        paths[name] = folder
    paths["s_garbage"] = root / "s_garbage"
    return paths


def cases(p: dict[str, Path]) -> list[tuple[str, list[str]]]:
    ws = ["-w", str(p["ws"])]
    quick = ["--min-time", "0.05", "--min-runs", "5", "--warmup", "1"]
    train = ["--config", "4,12,3,1", "--epochs", "1", "--train-subset", "2000", "--threads", "1", "--force"]
    return [
        ("c01", ["export", "--config=-8,12,3,1", *ws]),
        ("c05", ["export", "--config", "a,b,c,d", *ws]),
        ("c07", ["export", "--config", "8,12,3", *ws]),
        ("c09", ["export", "--config", "8,7,3,3", *ws]),
        ("c11", ["export", "--config", "100000,28,5,3", "--dry-run", *ws]),
        ("c12", ["export", "--config", "8,100000,3,1", "--dry-run", *ws]),
        ("c13", ["export", "--config", f"{2**70},28,5,3", "--dry-run", *ws]),
        ("c22", ["export", "--preset", "bogus", *ws]),
        ("c23", ["export", "--config", "8,12,3,1", "--recipe", "bogus", *ws]),
        ("c24", ["export", "--config", "8,12,3,1", "--dataset", "cifar10", *ws]),
        ("c26", ["export", "--config", "8,12,3,1", "--epochs", "0", *ws]),
        ("c31", ["export", "--config", "8,12,3,1", "--threads", "-1", *ws]),
        ("c33", ["export", "--config", "8,12,3,1", "--space", "bogus", *ws]),
        ("c34", ["export", "--config", "8,12,3,1", "--exporter", "bogus", *ws]),
        ("c36", ["export", "--config", "8,12,3,1", "--train-device", "cuda", *ws]),
        ("c38", ["export", *ws]),
        ("c39", ["export", "--config", "8,12,3,1", "--untrained", "--epochs", "2", *ws]),
        ("d01", ["export", *train, "--data-dir", str(p["empty"]), *ws]),
        ("d05", ["export", *train, "--data-dir", str(p["truncated"]), *ws]),
        ("d06", ["export", *train, "--data-dir", str(p["trunc_hdr"]), *ws]),
        ("d07", ["export", *train, "--data-dir", str(p["swapped"]), *ws]),
        ("d09", ["export", *train, "--data-dir", str(p["badlabels"]), *ws]),
        ("i02", ["export", *train, "--dataset", f"imagefolder:{p['if_one']}", *ws]),
        ("f-empty", ["flops", str(p["onnx"] / "empty.onnx")]),
        ("f-text", ["flops", str(p["onnx"] / "text.onnx")]),
        ("f-dir", ["flops", str(p["onnx"] / "adir.onnx")]),
        ("tm-empty", ["time", "--device", "cpu", "--model", str(p["onnx"] / "empty.onnx"), *quick, *ws]),
        ("tm-random", ["time", "--device", "cpu", "--model", str(p["onnx"] / "random.onnx"), *quick, *ws]),
        ("tm-text", ["time", "--device", "cpu", "--model", str(p["onnx"] / "text.onnx"), *quick, *ws]),
        ("tm2-dir", ["time", "--device", "cpu", "--model", str(p["onnx"] / "adir.onnx"), *quick, *ws]),
        ("t-threads", ["time", "--device", "cpu", "--threads", "100000", *ws]),
        ("t-batch", ["time", "--device", "cpu", "--batch", "0", *ws]),
        ("pr-typo", ["time", "--device", "p_typo", *quick, *ws]),
        ("pr-ort-option", ["time", "--device", "p_ort_option", *quick, *ws]),
        ("pr-ov-property", ["time", "--device", "p_ov_property", *quick, *ws]),
        ("pr-threads-huge", ["time", "--device", "p_threads_huge", *quick, *ws]),
        ("pr-inf-max", ["time", "--device", "p_inf_max", *quick, *ws]),
        ("pr-badutf8", ["time", "--device", "p_badutf8", *quick, *ws]),
        ("pf01", ["predict", "--device", "p_fitted_garbage", "--config", "8,12,3,1", *ws]),
        ("pf-future", ["predict", "--device", "p_fitted_future", "--config", "8,12,3,1", *ws]),
        ("p04", ["predict", "--device", "cpu", "--config", f"{2**70},28,5,3", *ws]),
        ("r-target", ["recommend", "--device", "cpu", "--target", "1.5", *ws]),
        ("r-confidence", ["recommend", "--device", "cpu", "--target", "0.9", "--confidence", "1.5", *ws]),
        ("r-grid", ["recommend", "--device", "cpu", "--target", "0.9", "--grid", "hex", *ws]),
        ("st-garbage", ["models", "-w", str(p["s_garbage"])]),
        ("st-future", ["models", "-w", str(p["s_future"])]),
        ("st-other-models", ["models", "-w", str(p["s_other"])]),
        ("study-shard", ["study", "run", "--shard", "3/2", *ws]),
        # defects 16-17 of the review: values once accepted silently, and misleading messages
        ("c-subset", ["export", "--config", "8,12,3,1", "--epochs", "1", "--train-subset", "100000", "--data-dir", str(p["ok"]), *ws]),
        ("c-epochs", ["export", "--config", "8,12,3,1", "--epochs", "1000000000", "--dry-run", *ws]),
        ("c-retries", ["export", "--config", "8,12,3,1", "--executor", "ray", "--max-retries", "-1", "--dry-run", *ws]),
        ("c-l1000", ["export", "--config", "8,12,3,1000", "--dry-run", *ws]),
        ("pr-minruns", ["time", "--device", "p_minruns_float", *quick, *ws]),
        ("pr-isdir", ["time", "--device", "p_isdir", *quick, *ws]),
        ("pr-nopath", ["time", "--device", "/nope/x.toml", *quick, *ws]),
        ("tm-both", ["time", "--device", "cpu", "--models", "family/*", "--model", str(p["onnx"] / "valid.onnx"), *quick, *ws]),
        ("fit-batch0", ["fit", "--device", "cpu", "--batch", "0", *ws]),
        ("fit-folds", ["fit", "--device", "cpu", "--folds", "1", *ws]),
        ("w-typo", ["runs", "-w", str(p["ws"]) + "-typo"]),
        ("w-file", ["models", "-w", str(p["afile"])]),
        ("f-ir99", ["flops", str(p["onnx"] / "ir99.onnx")]),
        ("f-cycle", ["flops", str(p["onnx"] / "cycle.onnx")]),
        ("cal-rounds", ["calibrate", "--device", "cpu", "--rounds", "0", *ws]),
        ("cal-batch", ["calibrate", "--device", "p_typo", *ws]),
        ("cal-share", ["calibrate", "--device", "cpu", "--share", "2", *ws]),
    ]


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    env = {**os.environ, "CPBENCH_DEBUG": ""}
    with tempfile.TemporaryDirectory() as tmp:
        paths = scratch(Path(tmp))
        rows = cases(paths)
        good = 0
        for case_id, argv in rows:
            done = subprocess.run(CPBENCH + argv, capture_output=True, text=True, env=env, timeout=300)
            ok, detail = clean(done)
            good += ok
            if args.verbose or not ok:
                print(f"{'clean' if ok else 'NOT CLEAN':9s} {case_id:16s} {detail[:150]}")
        store = paths["ws"] / "cpbench.sqlite"
        stored = {"models": 0, "runs": 0}
        if store.exists():
            db = sqlite3.connect(store)
            stored = {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in stored}
        print(json.dumps({"clean": good, "cases": len(rows), "stored_by_rejected_inputs": stored}))
        print(f"{good} of {len(rows)} clean; rows or runs stored by rejected inputs: {stored['models'] + stored['runs']}")


if __name__ == "__main__":
    main()
