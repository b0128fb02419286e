"""The any-network latency model judged on networks no calibration saw: calibrate a profile
(`cpbench calibrate --kernels any`), export the classic torchvision networks at 224 and two smaller
input sizes, time each in two separate timing runs (the noise floor), and predict each. Prints per
network and per family measured, predicted, error and whether the 95 % interval held; MAPE with a
bootstrap interval, the share within ±10 % with a Clopper-Pearson interval, beside the noise floor
and beside FLOPs alone and eq. (1) (alpha1 * MACs + alpha0) fitted on the same calibration's
synthetic networks.

    python benchmarks/any_network.py --device cpu-1thread [--workspace DIR] [--reuse] [--record]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

NETWORKS = ("alexnet", "vgg11", "googlenet", "resnet18", "resnet50", "densenet121", "mobilenet_v2",
            "mobilenet_v3_large", "efficientnet_b0", "squeezenet1_1", "shufflenet_v2_x1_0", "mnasnet1_0")
SIZES = (224, 160, 128)


def cli(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "cpbench.cli", *args], stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        sys.exit(f"cpbench {' '.join(args)} failed with exit code {done.returncode}")
    return done.stdout


def export(ws: Path, sizes: tuple[int, ...], networks: tuple[str, ...]) -> list[Path]:
    files = []
    for size in sizes:
        cli("zoo", "export", "--models", ",".join(networks), "--input", str(size), "-w", str(ws), "--json")
        files += [ws / "models" / "zoo" / f"{name}-c3-s{size}.onnx" for name in networks]
    return [f for f in files if f.is_file()]


def time_networks(device: str, files: list[Path], seed: int) -> dict[str, float]:
    """One timing run: every network in two rounds of fresh processes, the calibration's statistic."""
    from cpbench.anynet.calibration import AnyDesign, time_items
    from cpbench.timing.profiles import load_profile

    profile = load_profile(device, Path("profiles"))
    times: dict[str, list[float]] = {}
    design = AnyDesign(seed=seed, chunk=6)  # the calibration's statistic: its runs, warm-up and rounds
    time_items(profile, {f.name: str(f) for f in files}, design, set(),
               lambda r, item, seconds, bracket: times.setdefault(item, []).append(seconds), lambda s: None)
    return {item: float(np.median(v)) for item, v in times.items()}


def baselines(model_path: Path, calibration_path: Path) -> dict:
    """FLOPs alone and eq. (1), fitted on the calibration's synthetic networks (MACs -> time)."""
    import onnx

    from cpbench.anynet.calibration import load_any_calibration
    from cpbench.anynet.ops import read_ops
    from cpbench.anynet.synthetic import random_network

    calibration = load_any_calibration(calibration_path)
    macs, seconds = [], []
    for name, seed in calibration.networks.items():
        _, graph = random_network(seed)
        macs.append(sum(op.macs for op in read_ops(onnx.load_from_string(graph))))
        seconds.append(calibration.statistic(name))
    m, t = np.array(macs, float), np.array(seconds)
    proportional = float(np.sum(m * t / t**2) / np.sum(m**2 / t**2))  # relative least squares
    A = np.column_stack([m / t, 1 / t])
    (alpha1, alpha0), *_ = np.linalg.lstsq(A, np.ones_like(t), rcond=None)
    return {"flops_only": {"a": proportional}, "eq1": {"alpha1": float(alpha1), "alpha0": float(alpha0)}}


def summary(errors: np.ndarray, held: np.ndarray | None = None) -> dict:
    from cpbench.fitting.intervals import error_summary

    out = error_summary(np.abs(errors))
    if held is not None:
        out["interval_held"] = float(np.mean(held))
    return out


def show(s: dict) -> str:
    return (f"MAPE {s['mape']:.1%} [{s['mape_ci'][0]:.1%}, {s['mape_ci'][1]:.1%}], within ±10 % {s['within_10']:.0%} "
            f"[{s['within_10_ci'][0]:.0%}, {s['within_10_ci'][1]:.0%}], max {s['max_ape']:.1%}, n {s['n']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu-1thread")
    parser.add_argument("--workspace", type=Path, default=Path("bench-any-network"))
    parser.add_argument("--seed", type=int, default=None, help="calibration seed; default: a fresh random one, printed")
    parser.add_argument("--scale", type=float, default=1.0, help="calibrate's --scale")
    parser.add_argument("--reuse", action="store_true", help="use the workspace's calibration if there is one")
    parser.add_argument("--networks", default=",".join(NETWORKS))
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--record", action="store_true", help="write a dated record to benchmarks/results/")
    args = parser.parse_args()

    import secrets

    from cpbench.anynet.calibration import calibration_file
    from cpbench.anynet.model import load_any_model, model_file
    from cpbench.timing.environment import fingerprint

    hardware = fingerprint()
    here = hardware["hardware_id"]
    ws = args.workspace
    ws.mkdir(parents=True, exist_ok=True)
    model_path = model_file(ws / "models", args.device, here)
    calibration = None
    if not (args.reuse and model_path.is_file()):
        seed = args.seed if args.seed is not None else secrets.randbelow(1_000_000)
        print(f"calibrating '{args.device}' for any network, seed {seed}", flush=True)
        calibration = json.loads(cli("calibrate", "--device", args.device, "--kernels", "any", "--seed", str(seed),
                                     "--scale", str(args.scale), "-w", str(ws), "--json"))
    model = load_any_model(model_path)
    files = export(ws, tuple(int(s) for s in args.sizes.split(",")), tuple(args.networks.split(",")))
    print(f"timing {len(files)} networks twice", flush=True)
    first = time_networks(args.device, files, 1)
    second = time_networks(args.device, files, 2)
    fitted = baselines(model_path, calibration_file(ws / "models", args.device, here))
    rows = []
    for f in files:
        p = model.predict_file(f)
        measured = float(np.mean([first[f.name], second[f.name]]))
        rows.append({"network": f.stem, "family": f.stem.split("-c3-")[0], "macs": p.macs, "run1_s": first[f.name],
                     "run2_s": second[f.name], "measured_s": measured, "predicted_s": p.seconds, "low_s": p.low_s,
                     "high_s": p.high_s, "error": p.seconds / measured - 1, "held": bool(p.low_s <= measured <= p.high_s),
                     "noise": abs(first[f.name] / second[f.name] - 1),
                     "flops_only_error": fitted["flops_only"]["a"] * p.macs / measured - 1,
                     "eq1_error": (fitted["eq1"]["alpha1"] * p.macs + fitted["eq1"]["alpha0"]) / measured - 1,
                     "uncovered": p.uncovered})
    print(f"\n{args.device} on {hardware['hardware'].get('cpu')} (hardware id {here})")
    print(f"{'network':34} {'MACs':>8} {'run 1':>10} {'run 2':>10} {'predicted':>10} {'error':>7} {'held':>5} {'noise':>6}")
    for r in rows:
        print(f"{r['network']:34} {r['macs'] / 1e9:7.2f}G {r['run1_s'] * 1e3:8.2f}ms {r['run2_s'] * 1e3:8.2f}ms "
              f"{r['predicted_s'] * 1e3:8.2f}ms {r['error']:+6.1%} {'yes' if r['held'] else 'NO':>5} {r['noise']:5.1%}")
    errors = np.array([r["error"] for r in rows])
    overall = summary(errors, np.array([r["held"] for r in rows]))
    families = {}
    for family in dict.fromkeys(r["family"] for r in rows):
        picked = [r for r in rows if r["family"] == family]
        families[family] = {"mape": float(np.mean([abs(r["error"]) for r in picked])),
                            "within_10": float(np.mean([abs(r["error"]) <= 0.1 for r in picked]))}
        print(f"  {family:22} MAPE {families[family]['mape']:5.1%}, within ±10 % {families[family]['within_10']:.0%}")
    noise = np.array([r["noise"] for r in rows])
    flops = summary(np.array([r["flops_only_error"] for r in rows]))
    eq1 = summary(np.array([r["eq1_error"] for r in rows]))
    print(f"kernel model : {show(overall)}; 95 % interval held {overall['interval_held']:.0%}")
    print(f"FLOPs alone  : {show(flops)}")
    print(f"eq. (1)      : {show(eq1)}")
    print(f"noise floor  : run-to-run median {np.median(noise):.1%}, max {noise.max():.1%}")
    if calibration:
        print(f"calibration  : {calibration['duration_s']:.0f} s, seed {calibration['seed']}, held-out synthetic "
              f"networks MAPE {calibration['held_out']['mape']:.1%}")
    figures = {"rows": rows, "overall": overall, "families": families, "flops_only": flops, "eq1": eq1,
               "noise_median": float(np.median(noise)), "noise_max": float(noise.max()),
               "calibration": calibration, "model_held_out": model.held_out}
    if args.record:
        from _record import record

        print(f"recorded {record('any_network', args.device, figures, hardware)}")


if __name__ == "__main__":
    main()
