"""Device profiles: profiles/<name>.toml says how to run a model (runtime, provider or device,
threads, batch, graph optimisation, runtime options, measurement settings).

A profile holds settings only, written by hand; what is measured lives apart, per machine, in
the workspace's models/fits (`cpbench fit`, `cpbench calibrate`). Every key is checked: a typo or a wrong type is an error that names the key, never a silently
ignored setting.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from cpbench.errors import UsageError
from cpbench.timing.protocol import CLOCKS, MeasureSettings
from cpbench.timing.runtime_options import OPTIONS, OptionError

GRAPH_OPTIMIZATION = ("disable", "basic", "extended", "all")
RUNTIMES = tuple(OPTIONS)
MAX_THREADS = 1024
TOP_LEVEL = {
    "name": str, "description": str, "runtime": str, "provider": str, "device": str, "threads": int,
    "batch": int, "graph_optimization": str, "options": dict, "measure": dict, "clock": str,
}


@dataclass(frozen=True)
class Profile:
    name: str
    runtime: str
    provider: str | None = None  # ONNX Runtime execution provider, e.g. CPUExecutionProvider
    device: str | None = None  # OpenVINO device, e.g. CPU or GPU
    threads: int = 0  # 0: the runtime's default (all cores)
    batch: int = 1
    graph_optimization: str = "all"
    options: dict = field(default_factory=dict)  # runtime-specific: ORT session/provider options, OpenVINO config
    measure: MeasureSettings = field(default_factory=MeasureSettings)
    clock: str = "wall"  # what a run's time is: protocol.CLOCKS ('runtime': the runtime's own request latency)
    description: str = ""
    path: Path | None = None
    runtime_options: object | None = None  # the runtime's options dataclass, parsed from `options` at load

    def __post_init__(self) -> None:
        if self.runtime_options is None and self.runtime in OPTIONS:
            try:
                object.__setattr__(self, "runtime_options", OPTIONS[self.runtime].parse(dict(self.options)))
            except OptionError as exc:
                where = self.path or f"profile {self.name}"
                raise UsageError(f"invalid profile {where}: {exc}") from None
        if self.clock not in CLOCKS:
            raise UsageError(f"invalid profile {self.path or self.name}: key 'clock' is {self.clock!r}; use one of {', '.join(CLOCKS)}")
        if self.clock == "runtime" and not getattr(OPTIONS.get(self.runtime), "reports_own_latency", False):
            raise UsageError(f"invalid profile {self.path or self.name}: clock = \"runtime\" needs a runtime that reports its "
                             f"own request latency, and {self.runtime} does not; set clock = \"wall\"")
        provider_options = getattr(self.runtime_options, "provider", None)
        if self.provider == "CPUExecutionProvider" and provider_options:  # ORT would ignore them without a word
            raise UsageError(f"invalid profile {self.path or self.name}: CPUExecutionProvider takes no provider options "
                             f"(got {', '.join(map(repr, provider_options))}); remove [options.provider]")

    def with_overrides(self, **changes: object) -> "Profile":
        from dataclasses import replace

        given = {k: v for k, v in changes.items() if v is not None}
        return replace(self, **given, runtime_options=None) if given else self  # options are parsed again

    def as_dict(self) -> dict:
        return {
            "name": self.name, "runtime": self.runtime, "provider": self.provider, "device": self.device,
            "threads": self.threads, "batch": self.batch, "graph_optimization": self.graph_optimization,
            "options": dict(self.options), "measure": self.measure.as_dict(), "clock": self.clock,
            "description": self.description,
            "path": str(self.path) if self.path else None,
        }


def _fail(path: Path, message: str) -> UsageError:
    return UsageError(f"invalid profile {path}: {message}")


def parse_profile(text: str, path: Path) -> Profile:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _fail(path, f"not valid TOML ({exc})") from None
    for key, value in data.items():
        if key == "fitted":
            raise _fail(path, "a profile holds settings only, and its [fitted] table is not read: fits live in "
                              "models/fits; remove the table and run 'cpbench fit' or 'cpbench calibrate' for this profile")
        if key not in TOP_LEVEL:
            raise _fail(path, f"unknown key '{key}'; known keys: {', '.join(TOP_LEVEL)}")
        expected = TOP_LEVEL[key]
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise _fail(path, f"key '{key}' must be a {expected.__name__}, got {type(value).__name__}")
    runtime = data.get("runtime")
    if runtime is None:
        raise _fail(path, f"missing key 'runtime' (one of {', '.join(RUNTIMES)})")
    if runtime not in RUNTIMES:
        raise _fail(path, f"key 'runtime' is {runtime!r}; use one of {', '.join(RUNTIMES)}")
    if runtime == "onnxruntime" and not data.get("provider"):
        raise _fail(path, "key 'provider' is required for onnxruntime (e.g. CPUExecutionProvider)")
    if data.get("graph_optimization", "all") not in GRAPH_OPTIMIZATION:
        raise _fail(path, f"key 'graph_optimization' must be one of {', '.join(GRAPH_OPTIMIZATION)}")
    for key in ("threads", "batch"):
        if key in data and data[key] < (0 if key == "threads" else 1):
            raise _fail(path, f"key '{key}' must be >= {0 if key == 'threads' else 1}, got {data[key]}")
        if key in data and data[key] > MAX_THREADS:
            raise _fail(path, f"key '{key}' must be <= {MAX_THREADS}, got {data[key]}")
    measure_fields = {f.name: f.type for f in fields(MeasureSettings)}
    measure = data.get("measure", {})
    for key, value in measure.items():
        if key not in measure_fields:
            raise _fail(path, f"unknown key 'measure.{key}'; known keys: {', '.join(measure_fields)}")
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise _fail(path, f"key 'measure.{key}' must be a number, got {type(value).__name__}")
        if str(measure_fields[key]) in ("int", "<class 'int'>") and not isinstance(value, int):
            raise _fail(path, f"key 'measure.{key}' is a count and must be a whole number, got {value!r}")
    merged = {**MeasureSettings().as_dict(), **measure}
    bad = MeasureSettings.invalid_key(merged)
    if bad:
        raise _fail(path, f"key 'measure.{bad}' is out of range ({merged[bad]!r})")
    settings = MeasureSettings(**measure)
    return Profile(
        name=data.get("name", path.stem),
        runtime=runtime,
        provider=data.get("provider"),
        device=data.get("device", "CPU" if runtime == "openvino" else None),
        threads=data.get("threads", 0),
        batch=data.get("batch", 1),
        graph_optimization=data.get("graph_optimization", "all"),
        options=data.get("options", {}),
        measure=settings,
        clock=data.get("clock", "wall"),
        description=data.get("description", ""),
        path=path,
    )


# The profiles shipped with cpbench: the repository's profiles/ folder (a clone is a workspace).
SHIPPED = Path(__file__).resolve().parents[2] / "profiles"


def available_profiles(folder: Path) -> list[str]:
    names = set()
    for place in (folder, SHIPPED):
        if place.is_dir():
            names.update(p.stem for p in place.glob("*.toml") if p.is_file())
    return sorted(names)


def load_profile(name_or_path: str, folder: Path) -> Profile:
    """A profile by path to a .toml file, or by name: the workspace's profiles/<name>.toml, else the shipped one."""
    path = Path(name_or_path)
    if path.suffix == ".toml" and path.is_dir():
        raise UsageError(f"{path} is a folder, not a profile file; pass a .toml file or a profile name")
    if path.suffix == ".toml" and ("/" in name_or_path or path.exists()) and not path.is_file():
        raise UsageError(f"no profile file {path}; check the path, or pass a profile name ({', '.join(available_profiles(folder))})")
    if not (path.suffix == ".toml" and path.is_file()):
        candidates = [folder / f"{name_or_path}.toml", SHIPPED / f"{name_or_path}.toml"]
        path = next((c for c in candidates if c.is_file()), candidates[0])
        if candidates[0].is_dir():
            raise UsageError(f"{candidates[0]} is a folder, not a profile file; move it away or pick another profile")
    if not path.is_file():
        known = ", ".join(available_profiles(folder)) or "none"
        raise UsageError(
            f"no device profile '{name_or_path}' (available: {known}); "
            f"write {folder / (name_or_path + '.toml')} or pick one of those"
        )
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(path, f"not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise _fail(path, f"cannot be read ({exc.strerror or type(exc).__name__}); check its permissions") from None
    return parse_profile(text, path)


def loadable_profiles(folder: Path) -> tuple[list[Profile], list[str]]:
    """Every profile that loads, and one warning per profile that does not: one broken sibling
    must not stop commands that look at all of them."""
    profiles, warnings = [], []
    for name in available_profiles(folder):
        try:
            profiles.append(load_profile(name, folder))
        except UsageError as exc:
            warnings.append(f"skipped: {exc}")
    return profiles, warnings
