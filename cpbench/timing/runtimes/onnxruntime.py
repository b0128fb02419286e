"""ONNX Runtime with any execution provider, timed through IO binding (CPU: preallocated outputs; CUDA: on the device)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np

from cpbench.timing.profiles import Profile
from cpbench.timing.runtime_options import OrtOptions
from cpbench.timing.runtimes import DeviceUnavailable



def _gpu_hint() -> str:
    """Why a CUDA provider may not have loaded, in words a user can act on."""
    if not (shutil.which("nvidia-smi") or os.path.exists("/dev/nvidia0") or os.path.exists("/dev/nvidiactl")):
        return "no NVIDIA GPU is visible on this machine (no /dev/nvidia*, no nvidia-smi)"
    return "the CUDA or cuDNN libraries could not be loaded; install torch's nvidia-* pip packages or set LD_LIBRARY_PATH"


class OnnxRuntime:
    name = "onnxruntime"

    def load(self, path: Path, profile: Profile, inputs: dict[str, np.ndarray]) -> "OrtModel":
        import onnxruntime as ort

        ort.set_default_logger_severity(4)  # failures are reported by cpbench in one line, not by ORT's C++ log
        provider = profile.provider or "CPUExecutionProvider"
        if provider != "CPUExecutionProvider" and hasattr(ort, "preload_dlls"):
            try:
                ort.preload_dlls()  # CUDA/cuDNN from the pip nvidia-* packages, where torch brought them
            except Exception:
                pass
        available = ort.get_available_providers()
        if provider not in available:
            raise DeviceUnavailable(
                f"{provider} is not in this onnxruntime build (it has {', '.join(available)}); "
                "install onnxruntime-gpu for CUDA, or pick another profile"
            )
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = profile.threads
        options.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[profile.graph_optimization]
        chosen: OrtOptions = profile.runtime_options or OrtOptions.parse(profile.options)
        for key in OrtOptions.SESSION:
            value = getattr(chosen, key)
            if value is None:
                continue
            if key == "execution_mode":
                value = ort.ExecutionMode.ORT_PARALLEL if value == "parallel" else ort.ExecutionMode.ORT_SEQUENTIAL
            setattr(options, key, value)
        for key, value in chosen.config.items():
            options.add_session_config_entry(key, value)
        pinned = pin_threads(options, profile.threads) if chosen.pin_threads and provider == "CPUExecutionProvider" else None
        provider_options = dict(chosen.provider)
        started = time.perf_counter()
        session = ort.InferenceSession(str(path), options, providers=[(provider, provider_options)])
        load_s = time.perf_counter() - started
        in_use = session.get_providers()
        if not in_use or in_use[0] != provider:
            hint = _gpu_hint() if "CUDA" in provider or "Tensorrt" in provider else "the provider failed to initialise"
            raise DeviceUnavailable(
                f"asked for {provider} but ONNX Runtime runs on {', '.join(in_use) or 'nothing'}: {hint}; no timings were taken"
            )
        return OrtModel(session, provider, provider_options, inputs, load_s, pinned)


def pin_threads(options, threads: int) -> list[int]:
    """Pin this process's calling thread to its first allowed CPU and each other intra-op thread to
    a CPU of its own (ONNX Runtime never pins the calling thread); returns the CPUs used, calling
    thread first. An option, off in every shipped profile: pinning removed a per-process slow state on
    one 2-vCPU VM and not on another (docs/decisions/0003-pinning-off.md). threads = 0 means one per
    physical core, as ONNX Runtime's default."""
    import psutil

    # the profile cannot run on this machine as written: a run-level error (no numbers), as a missing device is
    if not hasattr(os, "sched_setaffinity"):
        raise DeviceUnavailable("options.pin_threads needs Linux's sched_setaffinity; remove it from the profile on this system")
    allowed = _process_cpus()
    count = threads or psutil.cpu_count(logical=False) or len(allowed)
    if count > len(allowed):
        raise DeviceUnavailable(f"options.pin_threads: {count} intra-op threads but this process may run on {len(allowed)} CPUs "
                                f"({allowed}); lower 'threads' or remove pin_threads")
    used = allowed[:count]
    os.sched_setaffinity(0, {used[0]})  # the calling thread runs the session's own share of the work
    options.intra_op_num_threads = count
    if count > 1:  # ONNX Runtime numbers logical processors from 1; one entry per thread it creates
        options.add_session_config_entry("session.intra_op_thread_affinities", ";".join(str(cpu + 1) for cpu in used[1:]))
    return used


_PROCESS_CPUS: list[int] = []


def _process_cpus() -> list[int]:
    """The CPUs this process was allowed before its first pin: after it, the calling thread's own
    set is one CPU, and a second session loaded in the same worker (a calibration loads thousands)
    must pin the same way as the first."""
    if not _PROCESS_CPUS:
        _PROCESS_CPUS.extend(sorted(os.sched_getaffinity(0)))
    return _PROCESS_CPUS


class OrtModel:
    def __init__(self, session, provider: str, provider_options: dict, inputs: dict[str, np.ndarray], load_s: float,
                 pinned: list[int] | None = None) -> None:
        import onnxruntime as ort

        self.session = session
        self.pinned = pinned  # CPUs the threads were pinned to (calling thread first), or None
        self.provider = provider
        self.load_s = load_s
        self.outputs = [o.name for o in session.get_outputs()]
        # IO binding everywhere: inputs bound once; on the CPU the outputs are preallocated at the
        # shapes of a first run, so a timed call is ORT's Run alone (no output allocation and no
        # conversion to numpy, which cost about as much as a small network's whole inference).
        device = "cuda" if "CUDA" in provider or "Tensorrt" in provider else "cpu"
        device_id = int(provider_options.get("device_id", 0))
        self.bound = all(a.dtype != np.dtype(object) for a in inputs.values()) and not any(
            o.type == "tensor(string)" for o in session.get_outputs())
        if not self.bound:  # strings cannot be bound as OrtValues: the plain call, which converts them
            self._inputs = inputs
            self.run = self._run_plain
            return
        self.binding = session.io_binding()
        self._keep = []
        for name, array in inputs.items():
            value = ort.OrtValue.ortvalue_from_numpy(array, device, device_id)
            self._keep.append(value)
            self.binding.bind_ortvalue_input(name, value)
        if device == "cpu":
            for name, array in zip(self.outputs, session.run(self.outputs, inputs)):
                value = ort.OrtValue.ortvalue_from_numpy(np.empty_like(array), "cpu", 0)
                self._keep.append(value)
                self.binding.bind_ortvalue_output(name, value)
            self.run = self._run_cpu
        else:
            # outputs stay on the device; Run is synchronised below
            for name in self.outputs:
                self.binding.bind_output(name, device, device_id)
            self.run = self._run_bound

    def _run_plain(self) -> None:
        self.session.run(self.outputs, self._inputs)

    def _run_cpu(self) -> None:
        self.session.run_with_iobinding(self.binding)

    def _run_bound(self) -> None:
        self.session.run_with_iobinding(self.binding)
        self.binding.synchronize_outputs()

    def describe(self) -> dict:
        import onnxruntime as ort

        options = self.session.get_session_options()
        return {
            "runtime": "onnxruntime",
            "version": ort.__version__,
            "providers_in_use": self.session.get_providers(),
            "intra_op_num_threads": options.intra_op_num_threads,
            "inter_op_num_threads": options.inter_op_num_threads,
            "pinned_cpus": self.pinned,
            "io_binding": ("none (string tensors)" if not self.bound else "inputs and preallocated outputs"
                           if self.provider == "CPUExecutionProvider" else "inputs and device outputs"),
        }
