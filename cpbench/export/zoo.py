"""Classic networks from torchvision.models (paper 003's AlexNet, VGG16, GoogLeNet, ResNet18,
DenseNet, and any other classification model), randomly initialised and exported to ONNX.

No pretrained weights are downloaded: latency and MACs do not depend on weight values.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import asdict, dataclass
from functools import lru_cache

import torch
from torch import nn

from cpbench import __version__
from cpbench.counting.count import GraphCount, count_model
from cpbench.errors import UsageError, check_choice
from cpbench.export.onnx_export import export_onnx, to_onnx
from cpbench.family.network import count_parameters
from cpbench.workspace.files import stable_hash
from cpbench.workspace.records import ModelRecord
from cpbench.export.sweep import UNTRAINED, JobResult, SweepObserver, model_file, untrained_fields

# Paper 003, Table 1: (row label, torchvision model, GFLOPs as printed). Its FLOPs are 2 x MACs at 224x224.
PAPER_003_TABLE_1 = (
    ("Alex", "alexnet", 1.42),
    ("VGG16", "vgg16", 30.94),
    ("Googlenet", "googlenet", 3.02),
    ("ResNet18", "resnet18", 3.64),
    ("DenseNet", "densenet121", 157.0),
)
PAPER_003_MODELS = tuple(row[1] for row in PAPER_003_TABLE_1)
DENSENETS = ("densenet121", "densenet161", "densenet169", "densenet201")
# Random weights make deep nets' logits large; parity is checked relative to that scale.
ZOO_PARITY_TOLERANCE = 1e-3
MAX_INPUT = 1024  # 21x the activations of the usual 224: a few GB for the largest torchvision classifiers
MAX_CHANNELS = 64
MAX_CLASSES = 100_000
AGREEMENT = 0.02  # a printed value within 2 % of cpbench's count agrees (they are rounded to 3 digits)


@lru_cache(maxsize=1)
def classification_models() -> tuple[str, ...]:
    import torchvision.models

    return tuple(torchvision.models.list_models(module=torchvision.models))


def check_model_name(name: str) -> str:
    check_choice(name, classification_models(), "torchvision classification model")
    return name


@dataclass(frozen=True)
class PublishedFigures:
    """What torchvision's weights metadata says about a model (for its first weights entry)."""

    gmacs: float | None  # torchvision calls these 'GFLOPS'; they are MACs of conv + linear (+ attention matmuls)
    params: int | None
    input_size: int
    min_size: int


def published(name: str) -> PublishedFigures:
    from torchvision.models import get_model_weights

    weights = next(iter(get_model_weights(check_model_name(name))))
    meta = weights.meta
    crop = getattr(weights.transforms(), "crop_size", [224])
    return PublishedFigures(
        gmacs=meta.get("_ops"),
        params=meta.get("num_params"),
        input_size=int(crop[0]),
        min_size=int(max(meta.get("min_size", (1, 1)))),
    )


@dataclass(frozen=True)
class ZooJob:
    """One torchvision network at one input size and channel count, exported untrained."""

    model: str
    input_size: int = 224
    channels: int = 3
    num_classes: int = 1000
    seed: int = 0
    exporter: str = "auto"

    def __post_init__(self) -> None:
        check_model_name(self.model)
        if not (1 <= self.channels <= MAX_CHANNELS and 2 <= self.num_classes <= MAX_CLASSES):
            raise UsageError(f"--channels must be in [1, {MAX_CHANNELS}] and --classes in [2, {MAX_CLASSES}]")
        if self.input_size > MAX_INPUT:
            raise UsageError(f"--input {self.input_size} is above {MAX_INPUT}: a network's activations grow with its "
                             f"square (VGG16 needs ~240 GB at 100000); pass --input {MAX_INPUT} or less")
        minimum = published(self.model).min_size
        if self.input_size < minimum:
            raise UsageError(f"{self.model} needs inputs of at least {minimum}x{minimum}; pass --input {minimum} or more")

    @property
    def label(self) -> str:
        return f"{self.model}@{self.channels}x{self.input_size}"

    @property
    def name(self) -> str:
        suffix = "" if self.num_classes == 1000 else f"-n{self.num_classes}"
        return f"zoo/{self.model}-c{self.channels}-s{self.input_size}{suffix}"

    @property
    def relative_file(self) -> str:
        return model_file(self.name)

    @property
    def recipe_name(self) -> str:
        return UNTRAINED

    @property
    def recipe_fields(self) -> dict:
        return untrained_fields(self.seed)

    @property
    def recipe_hash(self) -> str:
        return stable_hash(self.recipe_fields)

    def run(self, observer: SweepObserver | None = None) -> JobResult:
        started = time.perf_counter()
        torch.manual_seed(self.seed)
        model = build_zoo_model(self.model, self.channels, self.num_classes)
        shape = (self.channels, self.input_size, self.input_size)
        metadata = {"cpbench.name": self.name, "cpbench.zoo": json.dumps(asdict(self)), "cpbench.version": __version__}
        exported = export_onnx(model, shape, metadata, exporter=self.exporter, tolerance=ZOO_PARITY_TOLERANCE)
        return JobResult(
            exported=exported,
            count=count_model(exported.proto),
            params=count_parameters(model),
            input_shape=shape,
            num_classes=self.num_classes,
            wall_s=time.perf_counter() - started,
        )

    def to_record(self, result: JobResult) -> ModelRecord:
        return ModelRecord(
            name=self.name, kind="zoo", dataset="none", input_shape=result.input_shape,
            num_classes=self.num_classes, recipe_name=self.recipe_name, recipe_hash=self.recipe_hash,
            recipe=self.recipe_fields, params=result.params, file=self.relative_file,
            sha256=result.exported.sha256, opset=result.exported.opset, exporter=result.exported.exporter,
            parity_max_abs_diff=result.exported.max_abs_diff, cpbench_version=__version__,
        )


def count_zoo_model(name: str, input_size: int | None = None, channels: int = 3) -> GraphCount:
    """Count a torchvision model at its published input size (or `input_size`) without writing a file
    or checking parity: the quick path for tables and for checking counts against torchvision."""
    size = input_size or published(name).input_size
    torch.manual_seed(0)
    model = build_zoo_model(name, channels)
    proto, _ = to_onnx(model, torch.randn(1, channels, size, size))
    return count_model(proto)


def build_zoo_model(name: str, channels: int = 3, num_classes: int = 1000) -> nn.Module:
    """A randomly initialised torchvision model, its first convolution adapted to `channels`."""
    from torchvision.models import get_model

    kwargs: dict = {"weights": None, "num_classes": num_classes}
    if name in ("googlenet", "inception_v3"):
        kwargs.update(aux_logits=False, init_weights=True)  # the auxiliary heads only exist in training
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = get_model(check_model_name(name), **kwargs).eval()
    if channels != 3:
        _adapt_first_conv(model, channels)
    return model


def _adapt_first_conv(model: nn.Module, channels: int) -> None:
    for path, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            parent_path, _, attr = path.rpartition(".")
            parent = model.get_submodule(parent_path) if parent_path else model
            replacement = nn.Conv2d(
                channels, module.out_channels, module.kernel_size, module.stride, module.padding,
                module.dilation, 1, module.bias is not None, module.padding_mode,
            )
            setattr(parent, attr, replacement)
            if hasattr(model, "transform_input"):  # GoogLeNet/Inception re-normalise 3 channels
                model.transform_input = False
            return
    raise UsageError("this model has no Conv2d whose input channels could be changed; use --channels 3")


@dataclass
class Table1Row:
    label: str
    model: str
    paper_gflops: float
    cpbench_gflops: float  # 2 x conv+linear+matmul MACs at 224x224x3, paper 003's convention
    torchvision_gmacs: float | None
    agrees: bool
    note: str

    def as_dict(self) -> dict:
        return asdict(self)


def family_of(model: str) -> str:
    """'densenet121' -> 'densenet': the variants a printed number may have meant instead."""
    return model.rstrip("0123456789_").split("_")[0]


def table_1(core_gmacs: dict[str, float]) -> list[Table1Row]:
    """Paper 003's Table 1 beside cpbench's counts; `core_gmacs` maps model -> counted GMACs at 224,
    for the paper's five and any variants of theirs (the other DenseNets) used to explain a mismatch."""
    rows = []
    for label, model, printed in PAPER_003_TABLE_1:
        ours = 2 * core_gmacs[model]
        agrees = abs(printed / ours - 1) <= AGREEMENT
        note = "matches 2 x MACs" if agrees else _disagreement(model, printed, core_gmacs)
        rows.append(Table1Row(label, model, printed, ours, published(model).gmacs, agrees, note))
    return rows


def _disagreement(model: str, printed: float, core_gmacs: dict[str, float]) -> str:
    variants = {m: 2 * g for m, g in core_gmacs.items() if family_of(m) == family_of(model)}
    for variant, gflops in variants.items():
        if abs(printed / gflops - 1) <= AGREEMENT:
            return f"matches {variant}, not {model}"
    listing = ", ".join(f"{m}: {v:.2f}" for m, v in sorted(variants.items()))
    return f"matches no torchvision {family_of(model)} at 224 (GFLOPs {listing}); likely a typo or another unit"
