"""The shared matching loop (checkpoints, resume, NaN handling, metrics) and the matching methods'
behaviour, on tiny data (12x12 images, 4 classes, narrow networks, a few iterations)."""
from __future__ import annotations

import json

import pytest
import torch
from conftest import make_dm_defaults_tiny, make_tiny_real, write_tiny_npz

from datadistill.cli import main
from datadistill.errors import ConfigError, DivergenceError, RunDirError
from datadistill.methods import get_method
from datadistill.methods._matching import CHECKPOINT_FILE, METRICS_FILE, read_metrics
from datadistill.methods.dm import DM
from datadistill.synthetic import SyntheticSet

MATCHING = ["dm", "dm-multilayer", "dc", "dsa"]
TINY = {"width": 8, "batch_real": 8, "compile": False, "pool_size": 3, "refresh_every": 2, "log_every": 1,
        "outer_loop": 2, "inner_loop": 2, "init": "real"}


def tiny(name: str, **kw):
    have = {f for f in get_method(name).config.__dataclass_fields__}
    opts = {k: v for k, v in {**TINY, **kw}.items() if k in have}  # method-specific knobs apply where they exist
    return get_method(name, **opts)


@pytest.fixture(scope="module")
def real():
    return make_tiny_real(num_classes=4, per_class=24, size=12)


class Stop(Exception):
    pass


def stop_at(step: int):
    def cb(p):
        if p.step == step:
            raise Stop
    return cb


@pytest.mark.parametrize("name", MATCHING)
def test_loss_goes_down(name, real):
    pool = 2 if name.startswith("dm") else 0  # DC's pool only caches the first outer step; tested below
    m = tiny(name, iterations=30, pool_size=pool, refresh_every=0, dsa=False, init="noise", lr_img=0.5)
    seen = []
    m.distill(real, 2, seed=0, callbacks=[lambda p: seen.append(p.loss)])
    first, last = sum(seen[:3]) / 3, sum(seen[-3:]) / 3
    assert last < 0.5 * first, (first, last)


@pytest.mark.parametrize("name", MATCHING)
def test_resume_after_kill_is_bit_identical(name, real, tmp_path):
    full = tiny(name, iterations=9, checkpoint_every=3).distill(real, 2, seed=5, run_dir=tmp_path / "a")
    run = tmp_path / "b"
    with pytest.raises(Stop):  # killed after iteration 7: the last checkpoint is at 6
        tiny(name, iterations=9, checkpoint_every=3).distill(real, 2, seed=5, run_dir=run, callbacks=[stop_at(7)])
    assert (run / CHECKPOINT_FILE).exists()
    resumed = tiny(name, iterations=9, checkpoint_every=3).distill(real, 2, seed=5, run_dir=run, resume=True)
    assert torch.equal(full.images, resumed.images)
    # metrics: one line per iteration, no duplicates from the replayed iteration 7
    assert [r["iteration"] for r in read_metrics(run)] == list(range(1, 10))
    assert [r["loss"] for r in read_metrics(run)] == [r["loss"] for r in read_metrics(tmp_path / "a")]


@pytest.mark.parametrize("name,pool", [("dm", 2), ("dsa", 2), ("dc", 0)])
def test_resume_with_pool_refresh_and_checkpoint_mid_refresh_cycle(name, pool, real, tmp_path):
    kw = {"iterations": 10, "checkpoint_every": 3, "pool_size": pool, "refresh_every": 4}
    full = tiny(name, **kw).distill(real, 3, seed=1)
    with pytest.raises(Stop):
        tiny(name, **kw).distill(real, 3, seed=1, run_dir=tmp_path, callbacks=[stop_at(5)])
    resumed = tiny(name, **kw).distill(real, 3, seed=1, run_dir=tmp_path, resume=True)
    assert torch.equal(full.images, resumed.images)


@pytest.mark.parametrize("pool,expected", [(0, 6 * 4), (2, 2 * 4)])
def test_dc_pool_caches_the_first_outer_steps_real_gradients(pool, expected, real, monkeypatch):
    """At IPC 1 (one outer step) the real side runs once per view, not once per iteration; the
    reference schedule (pool_size=0) computes it every iteration."""
    m = tiny("dc", iterations=6, pool_size=pool, refresh_every=0, outer_loop=0, inner_loop=0)
    calls = []
    real_gradients = type(m).real_gradients
    monkeypatch.setattr(type(m), "real_gradients", lambda self, *a: calls.append(1) or real_gradients(self, *a))
    s = m.distill(real, 1, seed=0)
    assert len(calls) == expected
    assert torch.isfinite(s.images).all()


def test_dc_pooled_view_holds_the_gradients_of_its_network(real):
    """A view's cached real gradients are those of its stored weights and augmentation."""
    from datadistill.augment import DSAConfig
    from datadistill.methods._matching import MatchingState

    m = tiny("dsa", precision="fp32")
    g = torch.Generator().manual_seed(0)
    images, labels = m.initial_images(real, 2, 0, g)
    state = MatchingState(real=real, ipc=2, config=m.config, images=images.requires_grad_(True), labels=labels,
                          optimizer=torch.optim.SGD([images], lr=0.1), generator=g, seed=0, dsa=DSAConfig())
    m.setup(state)
    view = m.build_view(state, torch.Generator().manual_seed(3))
    replay = torch.Generator().manual_seed(3)
    net = m.network(real, replay)
    assert all(torch.equal(net.state_dict()[k], v) for k, v in view.weights.items())
    for c in range(real.num_classes):
        grads, aug = m.real_gradients(state, net, dict(net.named_parameters()), c, replay)
        assert all(torch.equal(a, b) for a, b in zip(grads, view.grads[c]))
        assert aug.op == view.augs[c].op
    assert len(view.grads[0]) == len(m.matched(net)) == 4  # three convs and the classifier; no biases or norms


def test_dc_pretrain_steps_match_at_networks_briefly_trained_on_real_data(real):
    import torch.nn.functional as F

    from datadistill.augment import DSAConfig
    from datadistill.methods._matching import MatchingState

    def state_of(m):
        g = torch.Generator().manual_seed(0)
        images, labels = m.initial_images(real, 2, 0, g)
        state = MatchingState(real=real, ipc=2, config=m.config, images=images.requires_grad_(True), labels=labels,
                              optimizer=torch.optim.SGD([images], lr=0.1), generator=g, seed=0, dsa=DSAConfig())
        m.setup(state)
        return state

    plain, trained = tiny("dsa", precision="fp32"), tiny("dsa", precision="fp32", pretrain_steps=20, lr_net=0.05)
    nets = [m.fresh_network(state_of(m), torch.Generator().manual_seed(3)) for m in (plain, trained)]
    with torch.no_grad():
        losses = [float(F.cross_entropy(n(real.train.x.float()), real.train.y)) for n in nets]
    assert losses[1] < 0.8 * losses[0]  # trained on real data: it fits it better than at initialisation
    again = trained.fresh_network(state_of(trained), torch.Generator().manual_seed(3))
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), nets[1].state_dict().values()))
    runs = [tiny("dsa", iterations=2, pretrain_steps=k).distill(real, 2, seed=0).images for k in (0, 2)]
    assert not torch.equal(runs[0], runs[1])
    with pytest.raises(ConfigError, match="pretrain_steps"):
        get_method("dsa", pretrain_steps=-1)


def test_resume_refuses_a_different_run(real, tmp_path):
    with pytest.raises(Stop):
        tiny("dm", iterations=6, checkpoint_every=2).distill(real, 2, seed=0, run_dir=tmp_path, callbacks=[stop_at(3)])
    with pytest.raises(RunDirError, match="seed"):
        tiny("dm", iterations=6, checkpoint_every=2).distill(real, 2, seed=1, run_dir=tmp_path, resume=True)
    with pytest.raises(RunDirError, match="config"):
        tiny("dm", iterations=7, checkpoint_every=2).distill(real, 2, seed=0, run_dir=tmp_path, resume=True)
    with pytest.raises(RunDirError, match="nothing to resume"):
        tiny("dm", iterations=6).distill(real, 2, seed=0, run_dir=tmp_path / "empty", resume=True)


def test_corrupt_checkpoint_is_a_clear_error(real, tmp_path):
    (tmp_path / CHECKPOINT_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(RunDirError, match="unreadable checkpoint"):
        tiny("dm", iterations=3).distill(real, 2, seed=0, run_dir=tmp_path, resume=True)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(real, tmp_path, monkeypatch):
    original = DM.match_loss

    def poisoned(self, syn, targets):
        loss = original(self, syn, targets)
        return loss * float("nan") if self._calls_left() <= 0 else loss

    calls = {"n": 0}

    def calls_left(self):
        calls["n"] += 1
        return 5 - calls["n"]

    monkeypatch.setattr(DM, "match_loss", poisoned)
    monkeypatch.setattr(DM, "_calls_left", calls_left, raising=False)
    with pytest.raises(DivergenceError, match=r"nan at iteration 4.*checkpoint \(iteration 4\)"):
        tiny("dm", iterations=10, checkpoint_every=2).distill(real, 2, seed=0, run_dir=tmp_path)
    before = (tmp_path / CHECKPOINT_FILE).read_bytes()
    ckpt_it = json.loads(__import__("safetensors").safe_open(str(tmp_path / CHECKPOINT_FILE), "pt")
                         .metadata()["datadistill_checkpoint"])["iteration"]
    assert ckpt_it == 4
    from safetensors.torch import load
    assert torch.isfinite(load(before)["images"]).all()


def test_metrics_and_validation_accuracy(real, tmp_path):
    tiny("dm", iterations=4, log_every=2, val_every=4, val_epochs=3).distill(real, 1, seed=0, run_dir=tmp_path)
    rows = read_metrics(tmp_path)
    assert [r["iteration"] for r in rows] == [2, 4]
    assert "val_accuracy" in rows[-1] and "val_accuracy" not in rows[0]
    assert 0 <= rows[-1]["val_accuracy"] <= 100


def test_validation_never_touches_the_test_split(real, monkeypatch):
    import datadistill.evaluation as ev

    splits = []
    original = ev.evaluate

    def spy(*a, **k):
        splits.append(k.get("split"))
        return original(*a, **k)

    monkeypatch.setattr(ev, "evaluate", spy)
    tiny("dm", iterations=2, log_every=1, val_every=1, val_epochs=2).distill(real, 1, seed=0)
    assert splits == ["val", "val"]


@pytest.mark.parametrize("init", ["real", "noise", "kmeans", "random"])
def test_initialisation(init, real):
    m = tiny("dm", iterations=1, init=init)
    s = m.distill(real, 2, seed=0)
    assert s.images.shape == (8, 1, 12, 12)
    assert s.labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]


def test_real_init_with_too_large_ipc_suggests_noise(real):
    with pytest.raises(ConfigError, match="init=noise"):
        tiny("dm", iterations=1).distill(real, 25, seed=0)


def test_pool_views_do_not_depend_on_iteration_order(real):
    """The pool at iteration `it` is a function of (seed, it) alone: what makes resume exact."""
    m = tiny("dm", pool_size=3, refresh_every=2)
    assert m._slot_views(0) == [0, 1, 2]
    assert m._slot_views(4) == [3, 4, 2]
    assert m._slot_views(7) == [3, 4, 5]
    assert m._slot_views(8) == [6, 4, 5]


def test_dm_matches_the_straightforward_per_class_loss(real):
    """The batched, cached loss equals the reference's per-class loop for the same view."""
    from datadistill.augment.dsa import DSAParams, apply
    from datadistill.methods._matching import MatchingState
    from datadistill.augment.dsa import expand_params

    m = tiny("dm", precision="fp32", pool_size=0)
    g = torch.Generator().manual_seed(0)
    images, labels = m.initial_images(real, 3, 0, g)
    images.requires_grad_(True)
    from datadistill.augment import DSAConfig
    state = MatchingState(real=real, ipc=3, config=m.config, images=images, labels=labels,
                          optimizer=torch.optim.SGD([images], lr=1.0), generator=g, seed=0,
                          dsa=DSAConfig())
    m.setup(state)
    view = m.build_view(state, torch.Generator().manual_seed(1))
    x = apply(images, expand_params(view.aug, 3))
    feats = state.extra["features"](view.params, view.buffers, x)
    batched = m.match_loss(m.statistics(feats, 4, 3), view.targets)
    # the reference: per class, real and synthetic through the same net and augmentation
    from datadistill.models import get_model
    net = get_model("convnet", channels=1, num_classes=4, image_size=(12, 12), width=8, fast_first_block=False)
    net.load_state_dict({k[len("net."):]: v for k, v in view.params.items()}, strict=False)
    total = 0.0
    for c in range(4):
        per = DSAParams(view.aug.op, {k: (v[c:c + 1].expand(3, *v.shape[1:]) if isinstance(v, torch.Tensor) else v)
                                      for k, v in view.aug.values.items()})
        syn_c = net.embed(apply(images[c * 3:(c + 1) * 3], per))
        total = total + ((view.targets[0][c] - syn_c.mean(0)) ** 2).sum()
    assert torch.allclose(batched, total, rtol=1e-4)


def test_multilayer_matches_more_statistics(real):
    m = tiny("dm-multilayer", layers="1,3", moments=2, statistic="flat", iterations=2)
    assert m.matched_layers() == (1, 3)
    s = m.distill(real, 1, seed=0)
    assert torch.isfinite(s.images).all()
    with pytest.raises(ConfigError, match="depth"):
        tiny("dm-multilayer", layers="1,5", iterations=1).distill(real, 1, seed=0)
    with pytest.raises(ConfigError, match="convnet"):
        tiny("dm-multilayer", model="mlp", iterations=1).distill(real, 1, seed=0)


def test_multilayer_channel_statistics(real):
    m = tiny("dm-multilayer", layers="1,2", statistic="channel", moments=2, iterations=1)
    assert m.matched_layers() == (1, 2, 3)  # the last block for DM's embedding term
    feats = [torch.randn(4 * 3, 8, 6, 6), torch.randn(12, 8, 3, 3), torch.randn(12, 8, 1, 1)]
    stats = m.statistics(feats, 4, 3)
    assert [tuple(t.shape) for t in stats] == [(4, 8)] * 4 + [(4, 8)]
    f = feats[0].view(4, 3, 8, 36)
    assert torch.allclose(stats[0], f.mean((1, 3)))
    assert torch.allclose(stats[1], (f * f).mean((1, 3)))
    assert torch.allclose(stats[4], feats[2].view(4, 3, 8).mean(1))  # the embedding, flattened
    # weights: embedding 1, the others (embedding dim / their dim) x layer_weight
    zero = [torch.zeros_like(t) for t in stats]
    ones = [torch.ones_like(t) for t in stats]
    m2 = tiny("dm-multilayer", layers="1,2", statistic="channel", moments=2, layer_weight=0.5)
    assert float(m2.match_loss(zero, ones)) == pytest.approx(4 * 8 + 4 * (4 * 8 * 0.5))


def test_multilayer_flat_loss_is_the_weighted_sum(real):
    m = tiny("dm-multilayer", layers="1,3", moments=1, statistic="flat", layer_weight=0.25)
    targets = [torch.ones(4, 32), torch.ones(4, 8)]
    syn = [torch.zeros(4, 32), torch.zeros(4, 8)]
    # block 1: 128 squared errors x (8 / 32) x 0.25; block 3 (the last listed): 32 x 1
    assert float(m.match_loss(syn, targets)) == pytest.approx(128 * 0.25 * 0.25 + 32)


def test_multilayer_channel_without_layer_terms_is_dm(real):
    a = tiny("dm", iterations=3, precision="fp32").distill(real, 2, seed=0)
    b = tiny("dm-multilayer", layers="1", statistic="channel", layer_weight=0.0, iterations=3,
             precision="fp32").distill(real, 2, seed=0)
    assert torch.allclose(a.images, b.images, atol=1e-5)


def test_dm_works_with_other_architectures(real):
    s = tiny("dm", model="mlp", iterations=2).distill(real, 1, seed=0)
    assert torch.isfinite(s.images).all()


@pytest.mark.parametrize("name", ["dm", "dsa"])
def test_compiled_and_eager_agree(name, real):
    a = tiny(name, iterations=3, compile=False, precision="fp32").distill(real, 2, seed=0)
    b = tiny(name, iterations=3, compile=True, precision="fp32").distill(real, 2, seed=0)
    assert torch.allclose(a.images, b.images, atol=1e-4)


# ---- CLI ----------------------------------------------------------------------------------------------

def _cli_distill(tmp_path, data, out, *extra):
    return main(["-q", "distill", "--dataset", "tensors", "--data-dir", str(data), "--method", "dm",
                 "--ipc", "2", "--out", str(out), "--set", "iterations=6", "--set", "checkpoint_every=2",
                 "--set", "width=8", "--set", "batch_real=8", "--set", "compile=false", "--set", "pool_size=2",
                 "--set", "log_every=1", *extra])


def test_cli_resume_after_kill(tmp_path, capsys):
    import subprocess
    import sys
    import time

    data = tmp_path / "d.npz"
    write_tiny_npz(data)
    assert _cli_distill(tmp_path, data, tmp_path / "full") == 0
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "datadistill.cli", "-q", "distill", "--dataset", "tensors", "--data-dir", str(data),
           "--method", "dm", "--ipc", "2", "--out", str(out), "--set", "iterations=400", "--set", "checkpoint_every=2",
           "--set", "width=8", "--set", "batch_real=8", "--set", "compile=false", "--set", "pool_size=2",
           "--set", "log_every=1"]
    proc = subprocess.Popen(cmd)
    deadline = time.time() + 120
    while not (out / CHECKPOINT_FILE).exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    assert (out / CHECKPOINT_FILE).exists() and not (out / "synthetic.safetensors").exists()
    # without --resume the directory is protected, with a hint
    assert _cli_distill(tmp_path, data, out) == 2
    assert "--resume" in capsys.readouterr().err
    # the killed run was a different config (400 iterations): resuming it with 6 is refused
    assert _cli_distill(tmp_path, data, out, "--resume") == 2
    assert "differs in ['config']" in capsys.readouterr().err


def test_cli_resume_finishes_like_an_uninterrupted_run(tmp_path, capsys):
    data = tmp_path / "d.npz"
    write_tiny_npz(data)
    assert _cli_distill(tmp_path, data, tmp_path / "full") == 0
    run = tmp_path / "run"
    # stop a run after its checkpoint at iteration 4 by making iteration 5 diverge
    import datadistill.methods.dm as dm_mod

    original = dm_mod.DM.iteration

    def failing(self, state, it):
        if it == 4:
            raise KeyboardInterrupt
        return original(self, state, it)

    dm_mod.DM.iteration = failing
    try:
        assert _cli_distill(tmp_path, data, run) == 130
    finally:
        dm_mod.DM.iteration = original
    assert _cli_distill(tmp_path, data, run, "--resume") == 0
    a, b = SyntheticSet.load(tmp_path / "full"), SyntheticSet.load(run)
    assert torch.equal(a.images, b.images)
    assert (run / METRICS_FILE).exists() and (run / "loss.png").exists()
    assert _cli_distill(tmp_path, data, run, "--resume") == 2  # finished runs are not resumed
    assert "already finished" in capsys.readouterr().err
    assert main(["-q", "show", str(run)]) == 0


def test_cli_resume_errors(tmp_path, capsys):
    data = tmp_path / "d.npz"
    write_tiny_npz(data)
    assert _cli_distill(tmp_path, data, tmp_path / "none", "--resume") == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert _cli_distill(tmp_path, data, tmp_path / "x", "--resume", "--force") == 2
    assert main(["-q", "distill", "--dataset", "tensors", "--data-dir", str(data), "--method", "random",
                 "--ipc", "1", "--out", str(tmp_path / "r"), "--resume"]) == 2
    assert "no iterations" in capsys.readouterr().err


def test_gradient_distance_is_the_reference_layerwise_cosine():
    from datadistill.methods.dc import gradient_distance, reference_loops

    g = torch.Generator().manual_seed(0)
    conv = torch.randn(4, 2, 3, 3, generator=g)
    lin = torch.randn(3, 5, generator=g)
    bias = torch.randn(4, generator=g)
    assert gradient_distance([conv, lin, bias], [conv, lin, -bias]).abs() < 1e-5  # biases ignored
    d = gradient_distance([conv], [-conv])
    assert torch.allclose(d, torch.tensor(8.0), atol=1e-4)  # 4 rows, each 1 - (-1)
    rows = conv.reshape(4, -1)
    other = torch.randn(4, 18, generator=g)
    want = (1 - (rows * other).sum(1) / (rows.norm(dim=1) * other.norm(dim=1) + 1e-6)).sum()
    assert torch.allclose(gradient_distance([conv], [other.reshape(4, 2, 3, 3)]), want, atol=1e-5)
    assert reference_loops(1) == (1, 1) and reference_loops(10) == (10, 50) and reference_loops(50) == (50, 10)
    assert reference_loops(15) == (10, 50)


# ---- the per-IPC budget schedule and method init stages ------------------------------------------
def test_dc_budget_schedule_per_ipc_and_explicit_values_win():
    m = get_method("dsa")
    c1, c10, c50 = (m.for_ipc(k).config for k in (1, 10, 50))
    assert (c1.iterations, c1.init, c1.pool_size) == (1000, "real", 64)
    assert (c10.iterations, c10.init, c10.pool_size) == (50, "dm", 0)
    assert (c50.iterations, c50.init, c50.pool_size) == (10, "dm", 0)
    paper = get_method("dsa", iterations=1000, init="real", pool_size=0)
    assert paper.for_ipc(10) is paper  # nothing left to fill in
    assert get_method("dc", iterations=7).for_ipc(10).config.iterations == 7
    assert get_method("dc", outer_loop=1).for_ipc(10).config.pool_size == 64  # one outer step: the pool pays
    assert [get_method("dm").for_ipc(k).config.init for k in (1, 2, 10, 11, 50, 100)] == \
        ["real", "kmeans", "kmeans", "kmeans", "kmeans", "kmeans"]
    dm = get_method("dm", init="real")
    assert dm.for_ipc(10) is dm
    assert [get_method("dm-multilayer").for_ipc(k).config.init for k in (1, 10, 50)] == ["real", "kmeans", "kmeans"]
    # a dc / dsa DM stage starts from real images, as when the schedule was screened and benched
    stage = m.for_ipc(10).init_method(10)
    assert (stage.name, stage.config.init, stage.config.iterations) == ("dm", "real", 8000)
    assert get_method("dsa", init="kmeans").for_ipc(10).init_method(10).config == get_method("kmeans").config
    # `stage_init` picks the stage's start: DM's own schedule (k-means at IPC 10) or a named one
    assert get_method("dsa", stage_init="auto").for_ipc(10).init_method(10).config.init == "kmeans"
    assert get_method("dsa", stage_init="auto").for_ipc(50).init_method(50).config.init == "kmeans"
    assert get_method("dsa").for_ipc(50).init_method(50).config.init == "real"  # the default stays
    assert get_method("dc", stage_init="herding").for_ipc(10).init_method(10).config.init == "herding"
    assert get_method("dc", init="dm-multilayer").for_ipc(10).init_method(10).config.init == "real"


def test_the_set_records_the_concrete_config(real):
    s = tiny("dc", init="auto", iterations=2, outer_loop=1).distill(real, 1, seed=0)
    assert s.config["init"] == "real" and s.config["iterations"] == 2


@pytest.fixture
def tiny_dm_defaults(monkeypatch):
    """Make DM's defaults tiny, so a method init stage (which runs DM with its defaults) is fast;
    count the stage's runs."""
    make_dm_defaults_tiny(monkeypatch)
    runs = []
    original = DM._distill

    def counted(self, *a, **kw):
        runs.append(kw.get("resume"))
        return original(self, *a, **kw)

    monkeypatch.setattr(DM, "_distill", counted)
    return runs


def test_method_init_stage_is_kept_in_the_run_dir_and_reused_on_resume(real, tmp_path, tiny_dm_defaults):
    kw = {"init": "dm", "iterations": 6, "checkpoint_every": 2, "pool_size": 0}
    seen = []
    full = tiny("dsa", **kw).distill(real, 2, seed=3, run_dir=tmp_path / "a", callbacks=[seen.append])
    assert [(p.message, p.step, p.total) for p in seen] == [("init: dm", i, 4) for i in range(1, 5)] + \
        [("", i, 6) for i in range(1, 7)]  # the stage's progress is shown, named
    stage = SyntheticSet.load(tmp_path / "a" / "init")
    assert stage.method == "dm" and stage.ipc == 2 and stage.seed == 3
    assert full.meta["wall_time_s"] >= stage.meta["wall_time_s"]  # the stage's time counts
    run = tmp_path / "b"
    with pytest.raises(Stop):
        tiny("dsa", **kw).distill(real, 2, seed=3, run_dir=run, callbacks=[stop_at(5)])
    tiny_dm_defaults.clear()
    resumed = tiny("dsa", **kw).distill(real, 2, seed=3, run_dir=run, resume=True)
    assert tiny_dm_defaults == []  # the stored stage was loaded, not distilled again
    assert torch.equal(full.images, resumed.images)
    # the start really is DM's set: zero iterations of matching leave it unchanged
    start = tiny("dsa", **{**kw, "lr_img": 1e-12, "iterations": 1}).distill(real, 2, seed=3, run_dir=run / "c")
    assert torch.allclose(start.images, stage.images[torch.argsort(stage.hard_labels, stable=True)], atol=1e-6)


def test_a_stored_stage_from_another_run_is_redone(real, tmp_path, tiny_dm_defaults):
    DM().distill(real, 2, seed=9).save(tmp_path / "init")  # another seed
    tiny_dm_defaults.clear()
    tiny("dc", init="dm", iterations=1).distill(real, 2, seed=3, run_dir=tmp_path)
    assert len(tiny_dm_defaults) == 1 and SyntheticSet.load(tmp_path / "init").seed == 3


def test_a_stored_stage_from_before_a_config_field_is_reused(real, tmp_path, tiny_dm_defaults):
    import json

    tiny("dc", init="dm", iterations=1).distill(real, 2, seed=3, run_dir=tmp_path)
    manifest = json.loads((tmp_path / "init" / "manifest.json").read_text())
    field = next(iter(manifest["config"]))
    del manifest["config"][field]  # as if the field had been added after the stage was made
    (tmp_path / "init" / "manifest.json").write_text(json.dumps(manifest))
    tiny_dm_defaults.clear()
    tiny("dc", init="dm", iterations=1).distill(real, 2, seed=3, run_dir=tmp_path)
    assert tiny_dm_defaults == []  # reused
    manifest["config"][field] = "another value"  # made with another value: redone
    (tmp_path / "init" / "manifest.json").write_text(json.dumps(manifest))
    tiny("dc", init="dm", iterations=1).distill(real, 2, seed=3, run_dir=tmp_path)
    assert len(tiny_dm_defaults) == 1


def test_an_interrupted_iterative_stage_resumes_from_its_own_checkpoint(real, tmp_path, tiny_dm_defaults):
    ref = DM(init="real").distill(real, 2, seed=3)  # dc's DM stage starts from real images
    with pytest.raises(Stop):  # the stage killed after its checkpoint at 2
        DM(init="real").distill(real, 2, seed=3, run_dir=tmp_path / "init", callbacks=[stop_at(3)])
    tiny_dm_defaults.clear()
    tiny("dc", init="dm", iterations=1).distill(real, 2, seed=3, run_dir=tmp_path)
    assert tiny_dm_defaults == [True]
    assert torch.equal(SyntheticSet.load(tmp_path / "init").images, ref.images)


def test_real_data_to_its_own_device_is_itself_and_the_class_index_stays_on_the_cpu(real):
    assert real.to("cpu") is real and real.device.type == "cpu"
    assert all(i.device.type == "cpu" for i in real.class_index)


@pytest.mark.parametrize("name", ["dc", "random", "kmeans"])
def test_a_method_that_runs_on_the_cpu_only_refuses_data_elsewhere(name, real, monkeypatch):
    monkeypatch.setattr(type(real), "device", property(lambda self: torch.device("cuda")))
    with pytest.raises(ConfigError, match="runs on cpu, not on cuda"):
        get_method(name).distill(real, 1, seed=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["dm", "dm-multilayer"])
def test_dm_distils_on_cuda_and_returns_a_cpu_set_that_says_where(name, real, tmp_path):
    syn = tiny(name, iterations=4, checkpoint_every=2).distill(real.to("cuda"), 2, seed=0, run_dir=tmp_path)
    assert syn.images.device.type == "cpu" and syn.images.shape == (8, *real.image_shape)
    assert syn.meta["device"].startswith("cuda") and torch.isfinite(syn.images).all()
    with pytest.raises(Stop):  # killed after its checkpoint at 2, resumed: the uninterrupted result
        tiny(name, iterations=4, checkpoint_every=2).distill(real.to("cuda"), 2, seed=0, run_dir=tmp_path / "b",
                                                             callbacks=[stop_at(3)])
    resumed = tiny(name, iterations=4, checkpoint_every=2).distill(real.to("cuda"), 2, seed=0,
                                                                   run_dir=tmp_path / "b", resume=True)
    assert torch.allclose(resumed.images, syn.images, atol=1e-3)  # GPU kernels need not be bit-exact
    started = tiny(name, iterations=1, init="kmeans").distill(real.to("cuda"), 2, seed=0)  # a CPU-only start
    assert started.images.shape == syn.images.shape


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_bf16_without_bf16_kernels_warns_and_fp32_does_not(precision, real, monkeypatch):
    import warnings

    import datadistill._runtime as runtime
    from datadistill.errors import SlowPathWarning

    monkeypatch.setattr(runtime, "native_bf16", lambda device_type="cpu": False)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        tiny("dm", iterations=2, precision=precision).distill(real, 2, seed=0)
    slow = [w for w in seen if issubclass(w.category, SlowPathWarning)]
    assert bool(slow) == (precision == "bf16"), [str(w.message) for w in seen]
