"""The environment fingerprint stored with every timing run: what hardware and software made the numbers."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys

import psutil

from cpbench import __version__
from cpbench.workspace.files import stable_hash

LIBRARIES = ("onnxruntime-gpu", "onnxruntime", "openvino", "onnx", "torch", "numpy", "scipy")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpus() -> list[dict]:
    """NVIDIA GPUs as nvidia-smi reports them; [] where there is none."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    rows = []
    for line in done.stdout.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3:
            rows.append({"name": parts[0], "driver": parts[1], "memory": parts[2]})
    return rows


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8")


def cpu_features() -> dict:
    """The CPU's vendor and the vector and matrix extensions runtimes choose kernels by (Linux)."""
    vendor, flags = None, set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() == "vendor_id" and vendor is None:
                    vendor = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    return {"vendor": vendor or platform.processor() or None, "isa": [f for f in ISA_FLAGS if f in flags]}


def fingerprint() -> dict:
    freq = psutil.cpu_freq()
    hardware = {
        "cpu": cpu_model(),
        "physical_cores": psutil.cpu_count(logical=False),
        "logical_cores": psutil.cpu_count(logical=True),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "gpus": gpus(),
    }
    return {
        "hardware": hardware,
        "hardware_id": stable_hash(hardware),
        "cpu_features": cpu_features(),
        "cpu_freq_mhz": None if freq is None else {"current": round(freq.current), "max": round(freq.max)},
        "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "os": f"{platform.system()} {platform.release()}",
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "libraries": library_versions(),
        "cpbench": __version__,
    }


def machine_summary() -> dict:
    """What names a machine in a result: its CPU, core count and hardware id."""
    hardware = fingerprint()["hardware"]
    return {"cpu": hardware["cpu"], "logical_cores": hardware["logical_cores"], "hardware_id": stable_hash(hardware)}
