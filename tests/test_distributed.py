"""Scale-out under torch.distributed: the split runs give what one process gives, resume, stop alike."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from conftest import make_tiny_real, write_tiny_npz
from datadistill.cli import main
from datadistill.distributed import SINGLE, Group
from datadistill.errors import ConfigError, DivergenceError
from datadistill.methods import METHODS

TINY = {"width": 8, "batch_real": 8, "compile": False, "checkpoint_every": 2, "init": "real"}
CONFIGS = {
    "dm": {**TINY, "iterations": 6, "pool_size": 2, "refresh_every": 2},
    "dm-multilayer": {**TINY, "iterations": 4, "pool_size": 0},
    "dc": {**TINY, "iterations": 4, "outer_loop": 3, "inner_loop": 2, "pool_size": 0},
    "dsa": {**TINY, "iterations": 4, "outer_loop": 3, "inner_loop": 2, "pool_size": 2, "refresh_every": 2},
}


class _Stop(Exception):
    pass


def _stop_at(k: int):
    def cb(progress) -> None:
        if progress.step == k:
            raise _Stop
    return cb


def _worker(rank: int, world: int, store: str, job: str, out: str) -> None:
    """One process of a group of `world` (world 1: the single-process reference, alike in threads)."""
    torch.set_num_threads(1)
    group = SINGLE
    if world > 1:
        torch.distributed.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
        group = Group(rank=rank, world=world)
    real = make_tiny_real()
    results: dict = {}
    if job == "distill":
        for name, cfg in CONFIGS.items():
            syn = METHODS.get(name)(**cfg).distill(real, 3, seed=1, group=group)
            results[name] = (syn.images, syn.meta["final_loss"])
    elif job == "resume":
        run = Path(out).parent / "run"
        method = METHODS.get("dsa")(**CONFIGS["dsa"])
        try:
            method.distill(real, 3, seed=1, run_dir=run, callbacks=[_stop_at(3)], group=group)
        except _Stop:
            pass
        results["resumed"] = method.distill(real, 3, seed=1, run_dir=run, resume=True, group=group).images
        results["files"] = sorted(p.name for p in run.iterdir())
    elif job == "evaluate":
        from datadistill.evaluation import evaluate

        syn = METHODS.get("random")().distill(real, 2, seed=0)
        seen: list = []
        res = evaluate(syn, real, "dc", epochs=3, num_models=5, compile=False, on_model=seen.append, group=group)
        results["per_model"], results["seen"] = res.per_model, [r["accuracy"] for r in seen]
    elif job == "diverge":
        method = METHODS.get("dm")(**CONFIGS["dm"])
        with torch.no_grad():  # a non-finite image in the last class, which only the last process owns
            real.train.x[real.train.y == 3] = float("nan")
        try:
            method.distill(real, 3, seed=1, group=group)
            results["raised"] = None
        except DivergenceError as e:
            results["raised"] = str(e)
    elif job == "refuse":
        try:
            METHODS.get("random")().distill(real, 2, seed=0, group=group)
            results["raised"] = None
        except ConfigError as e:
            results["raised"] = str(e)
    torch.save(results, f"{out}.{rank}")
    group.close()


def _run(tmp_path: Path, job: str, world: int, tag: str) -> list[dict]:
    out = tmp_path / tag
    out.mkdir()
    mp.spawn(_worker, args=(world, str(out / "store"), job, str(out / "result")), nprocs=world, join=True)
    return [torch.load(out / f"result.{r}", weights_only=False) for r in range(world)]


def test_blocks_cover_the_classes_once_in_order():
    for n in (1, 4, 10, 11):
        for world in range(1, n + 1):
            blocks = [Group(rank=r, world=world).block(n) for r in range(world)]
            assert [c for b in blocks for c in b] == list(range(n))
            assert max(map(len, blocks)) - min(map(len, blocks)) <= 1 and min(map(len, blocks)) >= 1


def test_split_matching_runs_give_one_process_images(tmp_path):
    one = _run(tmp_path, "distill", 1, "one")[0]
    split = _run(tmp_path, "distill", 2, "two")
    for name in CONFIGS:
        ref_images, ref_loss = one[name]
        for r in range(2):  # every process returns the whole set
            images, loss = split[r][name]
            assert torch.allclose(images, ref_images, atol=1e-5, rtol=0), name
            assert loss == pytest.approx(ref_loss, rel=1e-5), name
    # the runs moved their images: the four methods start from the same real images (seed 1)
    assert len({one[name][0].sum().item() for name in CONFIGS}) == len(CONFIGS)


def test_a_split_run_resumes_to_what_one_process_gives(tmp_path):
    one = _run(tmp_path, "resume", 1, "one")[0]
    split = _run(tmp_path, "resume", 2, "two")
    for r in range(2):
        assert torch.allclose(split[r]["resumed"], one["resumed"], atol=1e-5, rtol=0)
    assert split[0]["files"] == one["files"]  # only the main process writes, and what one process writes


def test_split_evaluation_trains_each_model_as_one_process_does(tmp_path):
    one = _run(tmp_path, "evaluate", 1, "one")[0]
    split = _run(tmp_path, "evaluate", 3, "three")
    for r in range(3):
        assert split[r]["per_model"] == one["per_model"]  # the same bits: each model is seeded by its index
    assert split[0]["seen"] == one["per_model"] and split[1]["seen"] == [] == split[2]["seen"]


def test_a_divergence_on_one_process_stops_them_all(tmp_path):
    got = _run(tmp_path, "diverge", 2, "two")
    assert all(g["raised"] and "became nan" in g["raised"] for g in got)


def test_a_method_that_cannot_split_is_refused(tmp_path):
    got = _run(tmp_path, "refuse", 2, "two")
    assert all(g["raised"] and "does not split across processes" in g["raised"] and "dsa" in g["raised"] for g in got)
    METHODS.get("random")().distill(make_tiny_real(), 2, seed=0, group=SINGLE)  # one process: fine


def test_commands_that_do_not_split_are_refused_under_torchrun(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    code = main(["-q", "show", str(tmp_path), "--out", str(tmp_path / "g.png")])
    err = capsys.readouterr().err
    assert code == 2 and "does not split across processes" in err and err.count("\n") == 1


def test_torchrun_distill_and_evaluate_match_one_process(tmp_path):
    npz = tmp_path / "tiny.npz"
    write_tiny_npz(npz)
    sets = ["--set", "iterations=4", "--set", "width=8", "--set", "batch_real=8", "--set", "pool_size=2",
            "--set", "refresh_every=2", "--set", "compile=false", "--set", "init=real"]
    ev = ["--protocol", "dc", "--eval-set", "epochs=2", "--eval-set", "num_models=3", "--eval-set", "compile=false"]
    argv = ["-q", "distill", "--dataset", "tensors", "--data-dir", str(npz), "--method", "dm", "--ipc", "2",
            *sets, "--evaluate", *ev]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    one = subprocess.run([sys.executable, "-m", "datadistill", *argv, "--out", str(tmp_path / "one")],
                         env=env, capture_output=True, text=True)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--standalone", "-m", "datadistill", *argv, "--out", str(tmp_path / "two")],
                         env=env, capture_output=True, text=True)
    assert two.returncode == 0, two.stderr
    assert two.stdout.count("dm: 8 images") == 1  # only the main process prints
    a, b = (json.loads((tmp_path / d / "manifest.json").read_text()) for d in ("one", "two"))
    assert a["evaluation"]["convnet"]["per_model"] == b["evaluation"]["convnet"]["per_model"]
    # a method that does not split: one line from each process, a non-zero exit, nothing written
    bad = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--standalone", "-m", "datadistill", "-q", "distill", "--dataset", "tensors",
                          "--data-dir", str(npz), "--method", "random", "--ipc", "2", "--out", str(tmp_path / "bad")],
                         env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "does not split across processes" in bad.stderr
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("argv, needle", [
    (["speed", "--what", "scaleout", "--method", "rded"], "must be one of dm, dm-multilayer, dc, dsa"),
    (["speed", "--what", "scaleout", "--processes", "1"], "processes must be at least 2, got 1"),
    (["speed", "--what", "dm", "--processes", "2"], "apply to --what scaleout"),
])
def test_speed_scaleout_rejects_bad_input_in_one_line(argv, needle, capsys, tmp_path):
    code = main(["-q", *argv, "--results", str(tmp_path / "res")])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and err.count("\n") == 1
    assert not (tmp_path / "res").exists()
