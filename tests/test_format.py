"""The distilled-set format: round trip, manifest, loading without datadistill, exporters."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from datadistill import SyntheticSet, load
from datadistill.errors import FormatError, RunDirError
from datadistill.export import SyntheticDataset, export_folder, export_npz, save_grid


def make_set(soft: bool = False, lr: bool = False, n_per: int = 2, k: int = 3) -> SyntheticSet:
    g = torch.Generator().manual_seed(0)
    images = torch.randn(n_per * k, 1, 8, 8, generator=g)
    labels = torch.arange(k).repeat_interleave(n_per)
    if soft:
        labels = torch.softmax(torch.randn(n_per * k, k, generator=g), 1)
    return SyntheticSet(images=images, labels=labels, dataset="tiny", class_names=["a", "b/c", "d"], mean=(0.5,),
                        std=(0.25,), ipc=n_per, method="random", config={"x": 1}, seed=3,
                        lr=torch.tensor([0.02]) if lr else None)


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("lr", [False, True])
def test_round_trip_is_exact(tmp_path, soft, lr):
    syn = make_set(soft=soft, lr=lr)
    syn.meta["wall_time_s"] = 1.5
    syn.save(tmp_path / "run")
    back = load(tmp_path / "run")
    assert torch.equal(back.images, syn.images)
    assert torch.equal(back.labels, syn.labels)
    assert back.soft_labels == soft
    assert (back.lr is not None) == lr
    if lr:
        assert torch.equal(back.lr, syn.lr)
    assert back.class_names == syn.class_names and back.mean == syn.mean and back.std == syn.std
    assert back.ipc == 2 and back.seed == 3 and back.method == "random" and back.config == {"x": 1}
    assert back.meta["wall_time_s"] == 1.5


def test_manifest_is_self_describing(tmp_path):
    syn = make_set(soft=True)
    syn.save(tmp_path)
    m = json.loads((tmp_path / "manifest.json").read_text())
    for key in ("format_version", "dataset", "class_names", "num_classes", "image_shape", "mean", "std", "ipc",
                "method", "config", "seed", "library_version", "storage_bytes", "labels"):
        assert key in m
    assert m["labels"] == "soft"
    # images 6*64*4 bytes, soft labels 6*3*4 bytes
    assert m["storage_bytes"]["images"] == 6 * 64 * 4
    assert m["storage_bytes"]["labels"] == 6 * 3 * 4
    assert m["storage_bytes"]["total"] == 6 * 64 * 4 + 6 * 3 * 4


def test_resave_keeps_the_code_that_made_the_set(tmp_path):
    """`evaluate` re-saves a loaded set with its results: the manifest must still name the code
    that made the images, not the code that evaluated them (it stamped its own revision before)."""
    from datadistill import __version__
    from datadistill.synthetic import _git_revision

    make_set().save(tmp_path)
    m = json.loads((tmp_path / "manifest.json").read_text())
    assert m["library_version"] == __version__ and m["git_revision"] == _git_revision()
    m.update(library_version="0.0.1", git_revision="f" * 40)
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    back = load(tmp_path)
    back.meta["validation"] = {"convnet": {"mean": 50.0}}
    back.save(tmp_path)
    again = json.loads((tmp_path / "manifest.json").read_text())
    assert again["library_version"] == "0.0.1" and again["git_revision"] == "f" * 40
    assert again["validation"] == {"convnet": {"mean": 50.0}}
    assert "made_by" not in again


def test_loadable_with_only_torch_and_safetensors(tmp_path):
    """What the README shows: no datadistill import needed."""
    make_set().save(tmp_path)
    from safetensors.torch import load_file

    t = load_file(str(tmp_path / "synthetic.safetensors"))
    m = json.loads((tmp_path / "manifest.json").read_text())
    assert t["images"].shape == (6, 1, 8, 8) and t["labels"].dtype == torch.int64
    pixels = t["images"] * torch.tensor(m["std"]).view(1, -1, 1, 1) + torch.tensor(m["mean"]).view(1, -1, 1, 1)
    assert pixels.shape == (6, 1, 8, 8)
    ds = torch.utils.data.TensorDataset(t["images"], t["labels"])
    x, y = next(iter(torch.utils.data.DataLoader(ds, batch_size=6)))
    assert x.shape[0] == 6


def test_missing_or_broken_files_raise_format_error(tmp_path):
    with pytest.raises(FormatError, match="missing"):
        load(tmp_path)
    make_set().save(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(FormatError, match="manifest.json"):
        load(tmp_path)
    make_set().save(tmp_path)
    (tmp_path / "synthetic.safetensors").write_bytes(b"garbage")
    with pytest.raises(FormatError, match="synthetic.safetensors"):
        load(tmp_path)


def test_invalid_sets_rejected():
    with pytest.raises(FormatError):
        SyntheticSet(images=torch.zeros(2, 1, 4, 4), labels=torch.tensor([0, 5]), dataset="d", class_names=["a", "b"],
                     mean=(0.0,), std=(1.0,), ipc=1, method="m")
    with pytest.raises(FormatError):
        SyntheticSet(images=torch.zeros(2, 1, 4, 4), labels=torch.tensor([0]), dataset="d", class_names=["a", "b"],
                     mean=(0.0,), std=(1.0,), ipc=1, method="m")


def test_save_is_atomic_keeps_old_files_on_failure(tmp_path, monkeypatch):
    make_set().save(tmp_path)
    before = (tmp_path / "synthetic.safetensors").read_bytes()
    import datadistill.synthetic as S

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(S, "save_file", boom)
    with pytest.raises(OSError):
        make_set(soft=True).save(tmp_path)
    assert (tmp_path / "synthetic.safetensors").read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_export_folder_and_npz(tmp_path):
    syn = make_set(soft=True)
    out = export_folder(syn, tmp_path / "imgs")
    pngs = sorted(out.rglob("*.png"))
    assert len(pngs) == 6
    assert Image.open(pngs[0]).size == (8, 8)
    assert (out / "labels.json").is_file()
    with pytest.raises(RunDirError):
        export_folder(syn, tmp_path / "imgs")
    export_folder(syn, tmp_path / "imgs", force=True)
    path = export_npz(syn, tmp_path / "s.npz")
    with np.load(path, allow_pickle=False) as z:
        assert z["x"].shape == (6, 1, 8, 8) and z["y"].shape == (6, 3) and z["pixels"].dtype == np.uint8
        np.testing.assert_allclose(z["pixels"][..., 0] / 255.0, syn.pixels()[:, 0].numpy(), atol=1 / 255)
    with pytest.raises(RunDirError):
        export_npz(syn, path)


def test_dataset_and_grid(tmp_path):
    syn = make_set()
    ds = SyntheticDataset(syn)
    assert len(ds) == 6 and ds[0][0].shape == (1, 8, 8)
    p = save_grid(syn, tmp_path / "g.png", scale=1)
    im = Image.open(p)
    assert im.size == ((8 + 1) * 2 + 1, (8 + 1) * 3 + 1)


def test_saved_files_get_the_usual_mode_not_mkstemps_private_one(tmp_path):
    import os
    import stat

    from datadistill._io import atomic_write_bytes, atomic_write_with

    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"x")
        atomic_write_with(tmp_path / "b.bin", lambda p: p.write_bytes(b"y"))
    finally:
        os.umask(old)
    for name in ("a.bin", "b.bin"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
