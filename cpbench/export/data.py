"""Datasets held in memory as tensors: FashionMNIST from its IDX files (default) or any ImageFolder tree.

Images are resized to the config's input size s with antialiasing and normalised per channel with
the training set's mean and std at that size; the normalisation travels with every model.
"""

from __future__ import annotations

import hashlib

import gzip
import os
import random
import struct
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cpbench.errors import UsageError, check_choice

DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
INSTALL_HINT = (
    "install it with 'apt-get install dataset-fashion-mnist' (as root), or pass --data-dir "
    "(or set CPBENCH_DATA) to a folder holding the four IDX files"
)
IMAGE_FOLDER_TEST_SHARE = 0.2
IMAGE_FOLDER_SPLIT_SEED = 0


@lru_cache(maxsize=16)
def folder_identity(path: Path) -> str:
    """sha256 of an image folder's resolved path and its files' relative names and sizes."""
    digest = hashlib.sha256(str(path.resolve()).encode())
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path)}\0{file.stat().st_size}\n".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class DatasetSpec:
    """What the user asked for: 'fashionmnist' or 'imagefolder:PATH'."""

    kind: str
    path: Path | None = None

    @classmethod
    def parse(cls, text: str) -> "DatasetSpec":
        name = text.strip()
        if name.lower() in ("fashionmnist", "fashion-mnist", "fashion_mnist"):
            return cls("fashionmnist")
        if name.lower().startswith("imagefolder:"):
            path = Path(name.split(":", 1)[1]).expanduser()
            if not str(path) or not path.is_dir():
                raise UsageError(
                    f"image folder {str(path)!r} does not exist; pass --dataset imagefolder:PATH "
                    "with one subfolder per class (or train/ and test/ folders of class subfolders)"
                )
            return cls("imagefolder", path.resolve())
        check_choice(name, ("fashionmnist", "imagefolder:PATH"), "dataset")
        raise AssertionError("unreachable: check_choice refuses every other name")

    @property
    def slug(self) -> str:
        """Short name used in model names and file paths: for an image folder its name and a hash
        of what it is (resolved path, file names and sizes), so two folders of one name never share models."""
        if self.kind == "fashionmnist":
            return "fashionmnist"
        assert self.path is not None
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in self.path.name)
        return f"imagefolder-{safe}-{folder_identity(self.path)[:8]}"


@dataclass
class RawSplit:
    """uint8 images [N, C, s, s] and int64 labels."""

    images: torch.Tensor
    labels: torch.Tensor


@dataclass
class PreparedData:
    """Normalised float tensors at one input size, ready for the training loop."""

    dataset: str
    size: int
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: tuple[str, ...]
    source: str
    mean: tuple[float, ...] = field(default=())
    std: tuple[float, ...] = field(default=())

    @property
    def channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def normalization(self) -> dict:
        return {
            "scale": 1 / 255,
            "mean": list(self.mean),
            "std": list(self.std),
            "resize": f"bilinear with antialias to {self.size}x{self.size}",
            "layout": "NCHW float32",
        }


# ---------------------------------------------------------------------------------------------
# FashionMNIST


def fashion_search_dirs(data_dir: Path | None) -> list[Path]:
    """Where FashionMNIST is looked for. An explicit --data-dir is the only place searched."""
    if data_dir is not None:
        roots = [Path(data_dir).expanduser()]
    else:
        roots = []
        if os.environ.get("CPBENCH_DATA"):
            roots.append(Path(os.environ["CPBENCH_DATA"]).expanduser())
        roots += [DEBIAN_FASHION_DIR, Path("data"), Path.home() / ".cache" / "cpbench" / "data"]
    dirs = []
    for root in roots:
        # the folder itself, then torchvision's layout ROOT/FashionMNIST/raw
        dirs += [root, root / "FashionMNIST" / "raw", root / "fashion-mnist"]
    return dirs


def _idx_file(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def locate_fashion_mnist(data_dir: Path | None = None) -> Path:
    """The first folder holding all four FashionMNIST IDX files (raw or .gz)."""
    searched = fashion_search_dirs(data_dir)
    for folder in searched:
        if all(_idx_file(folder, stem) for stem in FASHION_FILES.values()):
            return folder
    where = ", ".join(str(p) for p in searched[:: 3])
    raise UsageError(f"FashionMNIST not found (searched {where}); {INSTALL_HINT}")


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzip-compressed or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            blob = handle.read()
    except (OSError, EOFError) as exc:
        raise UsageError(f"cannot read {path}: {exc}; replace the file with a fresh copy") from None
    if len(blob) < 4 or blob[0:2] != b"\x00\x00" or blob[2] != 0x08:
        raise UsageError(f"{path} is not an unsigned-byte IDX file; replace it with a fresh copy")
    ndim = blob[3]
    if ndim == 0 or len(blob) < 4 + 4 * ndim:
        raise UsageError(f"{path} has a header cut short ({len(blob)} bytes for {ndim} dimensions); replace it with a fresh copy")
    dims = struct.unpack(">" + "I" * ndim, blob[4 : 4 + 4 * ndim])
    payload = np.frombuffer(blob, dtype=np.uint8, offset=4 + 4 * ndim)
    if payload.size != int(np.prod(dims)):
        raise UsageError(f"{path} is truncated ({payload.size} of {int(np.prod(dims))} values); replace it")
    return payload.reshape(dims)


def _load_fashion_split(folder: Path, train: bool) -> RawSplit:
    prefix = "train" if train else "test"
    images_path = _idx_file(folder, FASHION_FILES[f"{prefix}_images"])
    labels_path = _idx_file(folder, FASHION_FILES[f"{prefix}_labels"])
    images = read_idx(images_path)  # type: ignore[arg-type]
    labels = read_idx(labels_path)  # type: ignore[arg-type]
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise UsageError(f"{images_path} holds an array of shape {images.shape}, not N x 28 x 28 images "
                         "(images and labels swapped?); replace it with a fresh copy")
    if labels.ndim != 1:
        raise UsageError(f"{labels_path} holds an array of shape {labels.shape}, not N labels "
                         "(images and labels swapped?); replace it with a fresh copy")
    if len(images) != len(labels):
        raise UsageError(f"FashionMNIST in {folder} has {len(images)} images but {len(labels)} labels; replace the files")
    if labels.size and int(labels.max()) > 9:
        raise UsageError(f"{labels_path} has labels up to {int(labels.max())}; FashionMNIST has classes 0-9: replace it")
    return RawSplit(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)))


def _load_fashion_torchvision(folder: Path, train: bool) -> RawSplit | None:
    """Use torchvision's FashionMNIST class when the files sit in its ROOT/FashionMNIST/raw layout."""
    if folder.parts[-2:] != ("FashionMNIST", "raw"):
        return None
    from torchvision.datasets import FashionMNIST

    try:
        dataset = FashionMNIST(root=str(folder.parent.parent), train=train, download=False)
    except RuntimeError:  # its check wants uncompressed files; fall back to our reader
        return None
    return RawSplit(dataset.data.unsqueeze(1).clone(), dataset.targets.clone().long())


# ---------------------------------------------------------------------------------------------
# ImageFolder


def _image_folder_roots(path: Path) -> tuple[Path, Path | None]:
    for test_name in ("test", "val"):
        if (path / "train").is_dir() and (path / test_name).is_dir():
            return path / "train", path / test_name
    return path, None


def image_folder_classes(path: Path) -> tuple[str, ...]:
    train_root, _ = _image_folder_roots(path)
    classes = tuple(sorted(p.name for p in train_root.iterdir() if p.is_dir() and not p.name.startswith(".")))
    if len(classes) < 2:
        raise UsageError(
            f"image folder {path} needs at least two class subfolders (found {len(classes)}); "
            "lay it out as PATH/<class>/<image> or PATH/train/<class>/... and PATH/test/<class>/..."
        )
    return classes


def _load_image_folder(root: Path, size: int) -> tuple[RawSplit, tuple[str, ...]]:
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import v2

    transform = v2.Compose([v2.PILToTensor(), v2.Resize((size, size), antialias=True)])
    try:
        dataset = ImageFolder(str(root), transform=transform)
    except (FileNotFoundError, OSError) as exc:
        raise UsageError(f"cannot read image folder {root}: {exc}") from None
    images, labels = [], []
    for index, (path, _) in enumerate(dataset.samples):
        try:
            image, label = dataset[index]
        except (OSError, ValueError, SyntaxError) as exc:  # PIL's UnidentifiedImageError is an OSError
            raise UsageError(f"cannot read image {path} in image folder {root} ({type(exc).__name__}); "
                             "remove or replace the file") from None
        images.append(image)
        labels.append(label)
    return RawSplit(torch.stack(images), torch.tensor(labels, dtype=torch.int64)), tuple(dataset.classes)


def _split_stratified(split: RawSplit, test_share: float, seed: int) -> tuple[RawSplit, RawSplit]:
    rng = random.Random(seed)
    train_idx: list[int] = []
    test_idx: list[int] = []
    for label in sorted(set(split.labels.tolist())):
        members = [i for i, y in enumerate(split.labels.tolist()) if y == label]
        rng.shuffle(members)
        cut = max(1, round(len(members) * test_share))
        test_idx += members[:cut]
        train_idx += members[cut:]
    pick = lambda idx: RawSplit(split.images[idx], split.labels[idx])  # noqa: E731
    return pick(sorted(train_idx)), pick(sorted(test_idx))


# ---------------------------------------------------------------------------------------------
# Loading and preparing


def dataset_shape(spec: DatasetSpec) -> tuple[int, int]:
    """(input channels, classes) without loading any image, for untrained exports."""
    if spec.kind == "fashionmnist":
        return 1, len(FASHION_CLASSES)
    assert spec.path is not None
    return 3, len(image_folder_classes(spec.path))


def load_raw(spec: DatasetSpec, size: int, data_dir: Path | None = None) -> tuple[RawSplit, RawSplit, tuple[str, ...], str]:
    """uint8 train and test splits resized to size x size, their class names and where they came from."""
    if spec.kind == "fashionmnist":
        folder = locate_fashion_mnist(data_dir)
        train = _load_fashion_torchvision(folder, True) or _load_fashion_split(folder, True)
        test = _load_fashion_torchvision(folder, False) or _load_fashion_split(folder, False)
        return _resize(train, size), _resize(test, size), FASHION_CLASSES, str(folder)
    assert spec.path is not None
    image_folder_classes(spec.path)
    train_root, test_root = _image_folder_roots(spec.path)
    train, classes = _load_image_folder(train_root, size)
    if test_root is None:
        train, test = _split_stratified(train, IMAGE_FOLDER_TEST_SHARE, IMAGE_FOLDER_SPLIT_SEED)
    else:
        test, test_classes = _load_image_folder(test_root, size)
        if test_classes != classes:
            raise UsageError(f"{test_root} and {train_root} have different class folders; make them match")
    counts = np.bincount(train.labels.numpy(), minlength=len(classes))
    if len(test.labels) == 0 or counts.min() < 1 or len(train.labels) < 2:
        raise UsageError(f"image folder {spec.path} is too small to train and test on ({int(counts.min())} training image(s) "
                         "in its smallest class after the test split); give each class at least 2 images")
    return train, test, classes, str(spec.path)


def _resize(split: RawSplit, size: int) -> RawSplit:
    if split.images.shape[-1] == size and split.images.shape[-2] == size:
        return split
    resized = F.interpolate(split.images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return RawSplit(resized.round().clamp(0, 255).to(torch.uint8), split.labels)


@lru_cache(maxsize=4)
def _prepared_cached(spec: DatasetSpec, size: int, data_dir: Path | None) -> PreparedData:
    train, test, classes, source = load_raw(spec, size, data_dir)
    x_train = train.images.float().div_(255.0)
    x_test = test.images.float().div_(255.0)
    mean = x_train.mean(dim=(0, 2, 3))
    std = x_train.std(dim=(0, 2, 3)).clamp_min(1e-6)
    x_train = (x_train - mean[None, :, None, None]) / std[None, :, None, None]
    x_test = (x_test - mean[None, :, None, None]) / std[None, :, None, None]
    return PreparedData(
        dataset=spec.slug,
        size=size,
        x_train=x_train.contiguous(),
        y_train=train.labels,
        x_test=x_test.contiguous(),
        y_test=test.labels,
        classes=classes,
        source=source,
        mean=tuple(round(float(v), 6) for v in mean),
        std=tuple(round(float(v), 6) for v in std),
    )


def prepare(spec: DatasetSpec, size: int, data_dir: Path | None = None) -> PreparedData:
    """Train and test tensors at input size `size`, normalised with the training set's statistics."""
    return _prepared_cached(spec, size, Path(data_dir) if data_dir else None)
