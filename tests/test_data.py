import gzip
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from cpbench.export.data import (
    FASHION_FILES,
    DatasetSpec,
    dataset_shape,
    load_raw,
    locate_fashion_mnist,
    prepare,
    read_idx,
)
from cpbench.errors import UsageError


def write_idx(path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape)
    blob = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(str(path) + ".gz", "wb") as handle:
            handle.write(blob)
    else:
        path.write_bytes(blob)


def fake_fashion(folder, n_train=40, n_test=20, compress=True, size=28):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("test", n_test)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 50, (n, size, size))
        images[:, :, :] += (labels * 20)[:, None, None]  # a class-dependent brightness
        write_idx(folder / FASHION_FILES[f"{prefix}_images"], images, compress)
        write_idx(folder / FASHION_FILES[f"{prefix}_labels"], labels, compress)
    return folder


def test_read_idx_gzip_and_raw_agree(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a", array, compress=True)
    write_idx(tmp_path / "b", array, compress=False)
    assert (read_idx(tmp_path / "a.gz") == array).all()
    assert (read_idx(tmp_path / "b") == array).all()


def test_truncated_and_garbage_idx_are_clear_errors(tmp_path):
    write_idx(tmp_path / "a", np.zeros((10, 5, 5)), compress=False)
    (tmp_path / "t").write_bytes((tmp_path / "a").read_bytes()[:-7])
    with pytest.raises(UsageError, match="truncated"):
        read_idx(tmp_path / "t")
    (tmp_path / "g").write_bytes(b"garbage!" * 4)
    with pytest.raises(UsageError, match="not an unsigned-byte IDX"):
        read_idx(tmp_path / "g")


def test_explicit_data_dir_is_the_only_place_searched(tmp_path):
    with pytest.raises(UsageError, match="FashionMNIST not found.*apt-get install dataset-fashion-mnist"):
        locate_fashion_mnist(tmp_path / "empty")
    folder = fake_fashion(tmp_path / "mine")
    assert locate_fashion_mnist(tmp_path / "mine") == folder


def test_env_var_is_searched(tmp_path, monkeypatch):
    fake_fashion(tmp_path / "envdata")
    monkeypatch.setenv("CPBENCH_DATA", str(tmp_path / "envdata"))
    assert locate_fashion_mnist(None) == tmp_path / "envdata"


def test_torchvision_layout_is_read_through_torchvision(tmp_path):
    fake_fashion(tmp_path / "FashionMNIST" / "raw", compress=False)
    train, test, classes, source = load_raw(DatasetSpec.parse("fashionmnist"), 28, tmp_path)
    assert source.endswith("FashionMNIST/raw")
    assert train.images.shape == (40, 1, 28, 28) and test.images.shape == (20, 1, 28, 28)
    assert train.labels.dtype == torch.int64 and len(classes) == 10


def test_resize_with_antialias_and_normalisation_recorded(tmp_path):
    fake_fashion(tmp_path / "d")
    data = prepare(DatasetSpec.parse("fashionmnist"), 12, tmp_path / "d")
    assert data.x_train.shape == (40, 1, 12, 12) and data.x_test.shape == (20, 1, 12, 12)
    assert abs(float(data.x_train.mean())) < 1e-4 and abs(float(data.x_train.std()) - 1) < 1e-2
    norm = data.normalization()
    assert len(norm["mean"]) == 1 and norm["std"][0] > 0 and "antialias" in norm["resize"]


def test_real_fashion_mnist_is_installed():
    """CI installs Debian's dataset-fashion-mnist; the full splits must load."""
    data = prepare(DatasetSpec.parse("fashionmnist"), 28)
    assert data.x_train.shape == (60000, 1, 28, 28) and data.x_test.shape == (10000, 1, 28, 28)
    assert sorted(data.y_test.unique().tolist()) == list(range(10))


def make_image_folder(root, classes=("female", "male"), per_class=10, size=20):
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.full((size, size + 4, 3), 40 + 150 * c, dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_image_folder_is_split_and_resized(tmp_path):
    root = make_image_folder(tmp_path / "lfw")
    spec = DatasetSpec.parse(f"imagefolder:{root}")
    assert spec.slug.startswith("imagefolder-lfw-") and len(spec.slug) == len("imagefolder-lfw-") + 8
    other = make_image_folder(tmp_path / "elsewhere" / "lfw", per_class=6)  # same name, other data
    assert DatasetSpec.parse(f"imagefolder:{other}").slug != spec.slug
    assert dataset_shape(spec) == (3, 2)
    data = prepare(spec, 8)
    assert data.x_train.shape == (16, 3, 8, 8) and data.x_test.shape == (4, 3, 8, 8)
    assert data.classes == ("female", "male")
    assert sorted(data.y_test.tolist()) == [0, 0, 1, 1]  # stratified


def test_image_folder_errors(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        DatasetSpec.parse(f"imagefolder:{tmp_path / 'missing'}")
    (tmp_path / "one" / "onlyclass").mkdir(parents=True)
    with pytest.raises(UsageError, match="at least two class subfolders"):
        dataset_shape(DatasetSpec.parse(f"imagefolder:{tmp_path / 'one'}"))
    with pytest.raises(UsageError, match="unknown dataset"):
        DatasetSpec.parse("cifar10")


@pytest.mark.parametrize("damage, message", [
    ("header", "header cut short"),
    ("swapped", "images and labels swapped"),
    ("labels", "labels up to 12"),
])
def test_corrupt_fashionmnist_files_are_named_with_what_is_wrong(tmp_path, cli, damage, message):
    from test_cli import assert_one_line_error

    folder = fake_fashion(tmp_path / "data", compress=False)
    images, labels = folder / FASHION_FILES["train_images"], folder / FASHION_FILES["train_labels"]
    if damage == "header":
        images.write_bytes(images.read_bytes()[:9])
    elif damage == "swapped":
        blob = images.read_bytes()
        images.write_bytes(labels.read_bytes())
        labels.write_bytes(blob)
    else:
        write_idx(labels, (np.arange(40) % 13), compress=False)
    done = cli("export", "--config", "4,12,3,1", "--epochs", "1", "--data-dir", str(folder), "-w", str(tmp_path / "ws"))
    assert_one_line_error(done, message)


def test_a_small_image_folder_trains_with_a_named_recipe_but_an_explicit_subset_beyond_it_is_refused(cli, tmp_path):
    """The quick recipe's 12,000-image subset means "up to" for a 16-image folder; asking for more
    images than there are with --train-subset is a one-line error."""
    import json as json_lib

    from test_cli import assert_one_line_error

    root = make_image_folder(tmp_path / "faces", per_class=10)
    common = ["export", "--config", "2,8,1,1", "--epochs", "1", "--threads", "1", "--dataset", f"imagefolder:{root}",
              "-w", str(tmp_path / "ws")]
    done = cli(*common, "--json")
    assert done.returncode == 0, done.stderr
    assert [m["status"] for m in json_lib.loads(done.stdout)["models"]] == ["exported"]
    assert_one_line_error(cli(*common, "--train-subset", "500"), "--train-subset 500 is more than the 16 training images")


def test_an_unreadable_image_is_named_and_a_bad_folder_is_refused_before_any_output(cli, tmp_path):
    from test_cli import assert_one_line_error

    root = make_image_folder(tmp_path / "faces", per_class=4)
    (root / "male" / "broken.png").write_bytes(b"\x89PNG not an image")
    with pytest.raises(UsageError, match="cannot read image .*broken.png"):
        prepare(DatasetSpec.parse(f"imagefolder:{root}"), 8)
    (tmp_path / "one" / "onlyclass").mkdir(parents=True)
    done = cli("export", "--config", "2,8,1,1", "--untrained", "--dataset", f"imagefolder:{tmp_path / 'one'}", "-w", str(tmp_path / "ws"))
    assert_one_line_error(done, "at least two class subfolders")
    assert done.stdout == ""  # no progress bar left behind on stdout
