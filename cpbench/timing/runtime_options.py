"""Each runtime's options as a dataclass, checked when a profile loads: a typo or a wrong type in
`[options]` is one error naming the key before any model runs, not one failure per model.

A new runtime is one entry in OPTIONS (its options class) and one in runtimes.REGISTRY.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from cpbench.errors import check_choice


class OptionError(ValueError):
    """A bad key or value in a profile's [options]; the message names the key."""


def _check(key: str, value: object, kind: type | tuple, choices: tuple = ()) -> object:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise OptionError(f"'options.{key}' must be {' or '.join(k.__name__ for k in kinds)}, got a boolean")
    if not isinstance(value, kinds):
        raise OptionError(f"'options.{key}' must be {' or '.join(k.__name__ for k in kinds)}, got {type(value).__name__}")
    if choices and str(value).upper() not in {str(c).upper() for c in choices}:
        raise OptionError(f"'options.{key}' is {value!r}; use one of {', '.join(map(str, choices))}")
    return value


@dataclass(frozen=True)
class OrtOptions:
    """ONNX Runtime: SessionOptions fields, session config entries and the provider's options."""

    reports_own_latency: ClassVar[bool] = False  # no per-run latency short of its profiler: clock = "wall" only

    inter_op_num_threads: int | None = None
    execution_mode: str | None = None  # sequential | parallel
    enable_mem_pattern: bool | None = None
    enable_cpu_mem_arena: bool | None = None
    enable_mem_reuse: bool | None = None
    pin_threads: bool = False  # each intra-op thread on its own CPU, the calling thread on the first (see runtimes.onnxruntime.pin_threads)
    config: dict[str, str] = field(default_factory=dict)  # add_session_config_entry, e.g. session.intra_op.allow_spinning
    provider: dict[str, object] = field(default_factory=dict)  # provider options, e.g. device_id for CUDA

    SESSION: ClassVar[dict[str, tuple]] = {
        "inter_op_num_threads": (int, ()), "execution_mode": (str, ("sequential", "parallel")),
        "enable_mem_pattern": (bool, ()), "enable_cpu_mem_arena": (bool, ()), "enable_mem_reuse": (bool, ()),
    }

    @classmethod
    def parse(cls, options: dict) -> "OrtOptions":
        values: dict = {}
        for key, value in options.items():
            if key in cls.SESSION:
                kind, choices = cls.SESSION[key]
                values[key] = _check(key, value, kind, choices)
                if key == "inter_op_num_threads" and not 0 <= value <= 1024:
                    raise OptionError(f"'options.{key}' must be in 0..1024, got {value}")
            elif key == "pin_threads":
                values[key] = _check(key, value, bool)
            elif key in ("config", "provider"):
                _check(key, value, dict)
                for sub, item in value.items():
                    _check(f"{key}.{sub}", item, (str, int, float, bool))
                values[key] = {str(k): (str(v) if key == "config" else v) for k, v in value.items()}
            else:
                known = [f"options.{k}" for k in (*cls.SESSION, "pin_threads", "config", "provider")]
                check_choice(f"options.{key}", known, "ONNX Runtime option", OptionError)
        return cls(**values)


# OpenVINO properties a CPU/GPU profile may set: name -> (types, choices). Values go to compile_model as strings.
OPENVINO_PROPERTIES: dict[str, tuple[tuple, tuple]] = {
    "PERFORMANCE_HINT": ((str,), ("LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT")),
    "PERFORMANCE_HINT_NUM_REQUESTS": ((int, str), ()),
    "NUM_STREAMS": ((int, str), ()),
    "INFERENCE_NUM_THREADS": ((int, str), ()),
    "INFERENCE_PRECISION_HINT": ((str,), ("f32", "bf16", "f16")),
    "EXECUTION_MODE_HINT": ((str,), ("PERFORMANCE", "ACCURACY")),
    "ENABLE_CPU_PINNING": ((bool, str), ()),
    "ENABLE_HYPER_THREADING": ((bool, str), ()),
    "SCHEDULING_CORE_TYPE": ((str,), ("ANY_CORE", "PCORE_ONLY", "ECORE_ONLY")),
    "CACHE_DIR": ((str,), ()),
    "ENABLE_MMAP": ((bool, str), ()),
    "DYNAMIC_QUANTIZATION_GROUP_SIZE": ((int, str), ()),
    "KV_CACHE_PRECISION": ((str,), ()),
    "LOG_LEVEL": ((str,), ("LOG_NONE", "LOG_ERROR", "LOG_WARNING", "LOG_INFO", "LOG_DEBUG", "LOG_TRACE")),
}


@dataclass(frozen=True)
class OpenVinoOptions:
    """OpenVINO compile-time properties, by their names in the OpenVINO documentation."""

    reports_own_latency: ClassVar[bool] = True  # InferRequest.latency: the request's own time (clock = "runtime")
    properties: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, options: dict) -> "OpenVinoOptions":
        out = {}
        for key, value in options.items():
            check_choice(f"options.{key}", [f"options.{k}" for k in OPENVINO_PROPERTIES], "OpenVINO property", OptionError)
            kinds, choices = OPENVINO_PROPERTIES[key]
            _check(key, value, kinds, choices)
            if key in ("NUM_STREAMS", "INFERENCE_NUM_THREADS", "PERFORMANCE_HINT_NUM_REQUESTS") and not (
                    (isinstance(value, int) and 0 <= value <= 1024) or str(value).upper() in ("AUTO", "NUMA")
                    or (isinstance(value, str) and value.isdigit() and int(value) <= 1024)):
                raise OptionError(f"'options.{key}' must be an integer in 0..1024 (or AUTO), got {value!r}")
            out[key] = ("YES" if value else "NO") if isinstance(value, bool) else str(value)
        return cls(out)


OPTIONS: dict[str, type] = {"onnxruntime": OrtOptions, "openvino": OpenVinoOptions}
