"""Training recipes and the training loop: in-memory tensors, AdamW + OneCycle, seeded.

The loop indexes pre-normalised tensors directly (no DataLoader, no per-sample Python), so the
time goes into the network, and the same seed and thread count give the same accuracy on CPU.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cpbench.errors import UsageError, check_choice, choose
from cpbench.family.network import fold_batchnorm, insert_batchnorm
from cpbench.workspace.files import stable_hash


AUTOCAST_MODES = ("fp32", "bf16")


def cpu_has_native_bf16() -> bool:
    """True where oneDNN runs bf16 natively (AMX or AVX512-BF16); elsewhere bf16 is emulated and slow."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def effective_autocast(requested: str, device: torch.device) -> str:
    """What a recipe's autocast becomes on this device: bf16 only where it is native, else fp32."""
    if requested == "bf16" and (device.type == "cuda" or cpu_has_native_bf16()):
        return "bf16"
    return "fp32"


# fields added after recipes were first hashed, with the value that leaves an older recipe's hash alone
_LATER_FIELDS = {"autocast": "fp32", "erase": 0.0, "ema": 0.0, "distill": 0.0, "distill_temperature": 4.0,
                 "batchnorm": False}

MAX_EPOCHS = 10_000  # far beyond convergence for any network of the family; a typo, not a plan


@dataclass(frozen=True)
class Recipe:
    """How a config is trained. Two recipes with the same fields are the same recipe, whatever the name."""

    name: str
    epochs: int
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 5e-4
    train_subset: int | None = None  # first-N of a seeded shuffle; None = the whole training set
    shift: int = 0  # augmentation: random translation by up to this many pixels, per sample
    flip: bool = False  # augmentation: random horizontal flips, per sample
    label_smoothing: float = 0.0
    erase: float = 0.0  # augmentation: probability of random erasing (one zeroed rectangle) per sample
    ema: float = 0.0  # > 0: evaluate and export an exponential moving average of the weights, this decay per step
    distill: float = 0.0  # > 0: weight of a distillation loss from a teacher network (Hinton et al. 2015)
    distill_temperature: float = 4.0
    seed: int = 0
    autocast: str = "fp32"  # "bf16": bf16 autocast where the CPU has native bf16 (AMX, AVX512-BF16), else fp32
    # train with a BatchNorm after every conv, folded into the conv before evaluation and export: the
    # network that is evaluated, exported and timed is the family's own (conv, ReLU, pool), only its weights differ
    batchnorm: bool = False

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise UsageError(f"epochs must be >= 1, got {self.epochs}")
        if self.epochs > MAX_EPOCHS:
            raise UsageError(f"epochs={self.epochs} is above cpbench's limit of {MAX_EPOCHS}; use fewer epochs")
        if self.batch_size < 1:
            raise UsageError(f"batch size must be >= 1, got {self.batch_size}")
        check_choice(self.autocast, AUTOCAST_MODES, "autocast")
        if self.train_subset is not None and self.train_subset < 1:
            raise UsageError(f"train subset must be >= 1 image, got {self.train_subset}")
        if not 0.0 <= self.erase <= 1.0:
            raise UsageError(f"erase is a probability, got {self.erase}; use a value in [0, 1]")
        if not 0.0 <= self.distill <= 1.0:
            raise UsageError(f"distill is the weight of the distillation loss, got {self.distill}; use a value in [0, 1]")
        if not 0.0 <= self.ema < 1.0:
            raise UsageError(f"ema is a decay per step, got {self.ema}; use 0 (off) or a value in (0, 1), e.g. 0.999")
        if self.ema and self.batchnorm:
            raise UsageError("ema and batchnorm together would average weights whose BatchNorm statistics were "
                             "never measured; use one of them")

    def fields(self) -> dict:
        """Everything that changes the trained weights (the name does not)."""
        values = dataclasses.asdict(self)
        values.pop("name")
        for name, default in _LATER_FIELDS.items():
            if values[name] == default:
                values.pop(name)  # recipes from before the field existed keep their hash
        return values

    @property
    def hash(self) -> str:
        return stable_hash(self.fields())

    def with_overrides(self, **overrides: object) -> "Recipe":
        """The recipe with some fields changed; renamed '<name>-<hash>' when anything changed."""
        changes = {k: v for k, v in overrides.items() if v is not None and getattr(self, k) != v}
        if not changes:
            return self
        changed = dataclasses.replace(self, **changes)
        return dataclasses.replace(changed, name=f"{self.name}-{changed.hash[:6]}")


RECIPES: dict[str, Recipe] = {
    # seconds: for tests and a first look
    "smoke": Recipe("smoke", epochs=1, train_subset=6000, lr=1e-2),
    # the quick preset trains in about five minutes on two cores without native bf16 (less with it),
    # so that `make demo` fits in fifteen minutes install included
    "quick": Recipe("quick", epochs=2, train_subset=12000, lr=4e-3, autocast="bf16"),
    # the paper preset's recipe: the FashionMNIST baseline (64,28,5,3) reached 0.9348 with it (seed 0)
    "paper": Recipe("paper", epochs=20, lr=3e-3, shift=1, flip=True, weight_decay=0.05),
    # what recommend's precision study is trained with: the baseline reaches 0.935 or more, and bf16
    # autocast (where the CPU has it natively) trains about 2.5x the images per second of fp32
    "converged": Recipe("converged", epochs=20, lr=3e-3, shift=1, flip=True, weight_decay=0.05,
                        label_smoothing=0.1, autocast="bf16"),
    # as converged, trained with BatchNorm folded into the convs at export: the same exported
    # networks, about 0.2 points more precise where a 2x pick at 0.93 lives (48,28,4,3: 0.9334
    # against 0.9314, the mean of three converged seeds; benchmarks/recipe_probe.py)
    "converged-bn": Recipe("converged-bn", epochs=20, lr=3e-3, shift=1, flip=True, weight_decay=0.05,
                           label_smoothing=0.1, autocast="bf16", batchnorm=True),
}


def get_recipe(name: str) -> Recipe:
    return choose(RECIPES, name, "recipe")


@dataclass
class TrainResult:
    accuracy: float  # on the whole test split: the precision P(T)
    final_loss: float  # mean training loss over the last epoch
    epochs: int
    train_size: int
    test_size: int
    seed: int
    threads: int
    wall_s: float
    torch_version: str
    device: str = "cpu"
    determinism: dict = dataclasses.field(default_factory=dict)  # what makes the run repeatable, as set
    autocast: str = "fp32"  # what training ran in here (a bf16 recipe runs fp32 where bf16 is not native)
    images_per_s: float = 0.0  # training images per second, evaluation excluded

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


ProgressCallback = Callable[[int, int, float], None]  # (epoch, step within all steps, running loss)


def seeded_subset(n_total: int, n: int | None, seed: int) -> torch.Tensor | None:
    if n is None or n >= n_total:
        return None
    generator = torch.Generator().manual_seed(seed + 1)
    return torch.randperm(n_total, generator=generator)[:n].sort().values


def augment_batch(x: torch.Tensor, generator: torch.Generator, pad: int = 2, flip: bool = True) -> torch.Tensor:
    """Per-sample random shift by up to `pad` pixels (zero fill) and random horizontal flip, vectorised."""
    b, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, None, :]
    if flip:
        mirrored = torch.rand(b, generator=generator) < 0.5
        cols = torch.where(mirrored[:, None, None, None], cols.flip(-1), cols)
    batch_idx = torch.arange(b)[:, None, None, None]
    chan_idx = torch.arange(c)[None, :, None, None]
    return padded[batch_idx, chan_idx, rows, cols]


def erase_batch(x: torch.Tensor, generator: torch.Generator, p: float, area: tuple[float, float] = (0.02, 0.25),
                max_aspect: float = 3.0) -> torch.Tensor:
    """Random erasing (Zhong et al. 2017), vectorised: with probability p a sample gets one rectangle
    of area fraction in `area` and aspect ratio up to `max_aspect` set to 0, the normalised mean."""
    b, _, h, w = x.shape
    chosen = torch.rand(b, generator=generator) < p
    frac = area[0] + (area[1] - area[0]) * torch.rand(b, generator=generator)
    log_aspect = (2 * torch.rand(b, generator=generator) - 1) * math.log(max_aspect)
    eh = (torch.sqrt(frac * h * w * torch.exp(log_aspect))).round().clamp(1, h)
    ew = (torch.sqrt(frac * h * w / torch.exp(log_aspect))).round().clamp(1, w)
    y0 = (torch.rand(b, generator=generator) * (h - eh + 1)).floor()
    x0 = (torch.rand(b, generator=generator) * (w - ew + 1)).floor()
    rows = torch.arange(h)[None, :]
    cols = torch.arange(w)[None, :]
    in_rows = (rows >= y0[:, None]) & (rows < (y0 + eh)[:, None])
    in_cols = (cols >= x0[:, None]) & (cols < (x0 + ew)[:, None])
    mask = (in_rows[:, :, None] & in_cols[:, None, :]) & chosen[:, None, None]
    return x.masked_fill(mask[:, None], 0.0)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000, device: torch.device | None = None) -> float:
    model.eval()
    correct = 0
    for start in range(0, len(x), batch_size):
        batch = x[start : start + batch_size].to(device or "cpu").contiguous(memory_format=torch.channels_last)
        logits = model(batch)
        correct += int((logits.argmax(dim=1).cpu() == y[start : start + batch_size]).sum())
    return correct / max(1, len(x))


TRAINING_DEVICES = ("cpu", "cuda")


def training_device(name: str) -> torch.device:
    """'cpu' or 'cuda' (or 'cuda:N'); a GPU that is not there is an error, never a silent CPU run."""
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    check_choice(getattr(device, "type", name), TRAINING_DEVICES, "training device")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--train-device cuda, but torch sees no CUDA GPU on this machine; train with --train-device cpu")
    return device


def determinism_settings(device: torch.device, seed: int, threads: int) -> dict:
    """Set what makes training repeatable on `device` and return it, to be stored with the model."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    return {
        "device": str(device), "seed": seed, "threads": threads,
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic), "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
    }


def train_model(
    model: nn.Module,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    recipe: Recipe,
    threads: int,
    on_step: ProgressCallback | None = None,
    device: str = "cpu",
    teacher: nn.Module | None = None,
) -> TrainResult:
    """Train in place with AdamW + OneCycle; return the test accuracy and the run's facts.

    The model must have been built right after `torch.manual_seed(recipe.seed)` for the run to be
    reproducible; `train_family_config` does that.
    """
    torch.set_num_threads(threads)
    started = time.perf_counter()
    if recipe.distill and teacher is None:
        raise UsageError(f"recipe {recipe.name} distils from a teacher network, and none was given")
    target = training_device(device)
    if recipe.distill:
        teacher.to(device=target, memory_format=torch.channels_last).eval()
    determinism = determinism_settings(target, recipe.seed, threads)
    if recipe.batchnorm:
        insert_batchnorm(model)  # BatchNorm's init draws no random numbers: the seeded init is unchanged
    # channels-last runs oneDNN's convolutions about 20 % faster on CPU; the ONNX export is unaffected
    model.to(device=target, memory_format=torch.channels_last)
    subset = seeded_subset(len(x_train), recipe.train_subset, recipe.seed)
    if subset is not None:
        x_train, y_train = x_train[subset], y_train[subset]
    n = len(x_train)
    steps_per_epoch = math.ceil(n / recipe.batch_size)
    total_steps = steps_per_epoch * recipe.epochs
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe.lr, total_steps=total_steps)
    generator = torch.Generator().manual_seed(recipe.seed)
    autocast = effective_autocast(recipe.autocast, target)
    params = list(model.parameters())
    averaged = [p.detach().clone() for p in params] if recipe.ema else None
    step = 0
    epoch_loss = float("nan")
    for epoch in range(recipe.epochs):
        model.train()
        order = torch.randperm(n, generator=generator)
        loss_sum = torch.zeros(())
        for start in range(0, n, recipe.batch_size):
            idx = order[start : start + recipe.batch_size]
            xb, yb = x_train[idx], y_train[idx]
            if recipe.shift or recipe.flip:
                xb = augment_batch(xb, generator, pad=recipe.shift, flip=recipe.flip)
            if recipe.erase:
                xb = erase_batch(xb, generator, recipe.erase)
            xb = xb.to(target, non_blocking=True).contiguous(memory_format=torch.channels_last)
            yb = yb.to(target, non_blocking=True)
            with torch.autocast(target.type, dtype=torch.bfloat16, enabled=autocast == "bf16"):
                logits = model(xb)
                loss = F.cross_entropy(logits, yb, label_smoothing=recipe.label_smoothing)
                if recipe.distill:
                    with torch.no_grad():
                        soft = F.log_softmax(teacher(xb).float() / recipe.distill_temperature, dim=1)
                    student = F.log_softmax(logits.float() / recipe.distill_temperature, dim=1)
                    kd = F.kl_div(student, soft, log_target=True, reduction="batchmean") * recipe.distill_temperature**2
                    loss = (1.0 - recipe.distill) * loss + recipe.distill * kd
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            if averaged is not None:
                with torch.no_grad():
                    # the decay ramps up as in TensorFlow's EMA, so early steps do not pin the average to the init
                    decay = min(recipe.ema, (1 + step) / (10 + step))
                    torch._foreach_lerp_(averaged, [p.detach() for p in params], 1.0 - decay)
            loss_sum += loss.detach().cpu() * len(idx)
            step += 1
            if on_step is not None and (step % 20 == 0 or step == total_steps):
                on_step(epoch, step, float(loss.detach()))
        epoch_loss = float(loss_sum) / n
    train_s = time.perf_counter() - started
    if averaged is not None:  # the averaged weights are the model from here on: evaluated, exported
        with torch.no_grad():
            for p, a in zip(params, averaged):
                p.copy_(a)
    if recipe.batchnorm:
        model.eval()
        fold_batchnorm(model)  # from here on the family's own network, as exported
    # evaluated in fp32, as exported: the accuracy is the ONNX model's, not the bf16 one's
    accuracy = evaluate(model, x_test, y_test, device=target)
    model.to("cpu")  # exported and counted on the CPU
    return TrainResult(
        accuracy=accuracy,
        final_loss=round(epoch_loss, 6),
        epochs=recipe.epochs,
        train_size=n,
        test_size=len(x_test),
        seed=recipe.seed,
        threads=threads,
        wall_s=round(time.perf_counter() - started, 3),
        torch_version=torch.__version__,
        device=str(target),
        determinism=determinism,
        autocast=autocast,
        images_per_s=round(n * recipe.epochs / max(train_s, 1e-9), 1),
    )
