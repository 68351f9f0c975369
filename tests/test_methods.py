"""Contract tests for every registered method (parametrised over the registry), plus sanity checks
of the coreset baselines on toys whose answer is known. Everything runs on tiny tensors built here."""
from __future__ import annotations

import dataclasses
import re
import typing

import pytest
import torch

from datadistill.config import config_dict
from datadistill.data import RealData, Split
from datadistill.errors import ConfigError
from datadistill.methods import METHODS, Progress, get_method, list_methods
from datadistill.methods.coreset import best_of_random
from datadistill.methods.coreset._common import FeatureSpace
from datadistill.methods.coreset.herding import herd
from datadistill.methods.coreset.kcenter import k_center
from datadistill.synthetic import SyntheticSet

K, N_TRAIN, N_EVAL, SIDE = 10, 30, 5, 8

# Small values for budget-like fields, applied to any method whose Config has them (future methods
# get fast contract tests for free); FAST below wins for the methods it names.
GENERIC_BUDGET: dict[str, object] = {
    "iterations": 2, "epochs": 1, "num_models": 1, "compile": False, "candidates": 2,
    "feature_width": 8, "feature_epochs": 1, "feature_train_size": 100, "feature_compile": False,
    "embed_compile": False, "pool_size": 3, "refresh_every": 1, "batch_real": 6, "width": 8,
    "checkpoint_every": 0, "outer_loop": 2, "inner_loop": 1, "init": "real", "draw_epochs": 2,
}
FAST: dict[str, dict[str, object]] = {
    "kmeans": {"iterations": 10},
    "best-of-random": {"epochs": 2},
}
# Values each method must reject (beyond unknown keys and Literal fields, checked generically).
_FEATURE_INVALID = [("feature_width", 0), ("feature_epochs", -1), ("feature_train_size", 0), ("feature_lr", -0.1),
                    ("feature_lr", 0.0), ("feature_model", "no-such-model"), ("embed_batch_size", 0),
                    ("feature_depth", 0)]
_MATCHING_INVALID = [("iterations", -1), ("lr_img", 0.0), ("lr_img", float("nan")), ("momentum_img", 1.0),
                     ("batch_real", 0), ("width", 0), ("precision", "fp16"), ("init", "no-such-method"),
                     ("dsa_strategy", "crop_bogus"), ("checkpoint_every", -1), ("val_every", -5)]
# DM's per-IPC schedule fills only `init`, so the other 'auto' values are errors there; DC/DSA accept them
_DM_INVALID = _MATCHING_INVALID + [("iterations", 0), ("pool_size", -1), ("refresh_every", -2)]
_DC_INVALID = _MATCHING_INVALID + [("pool_size", -2), ("outer_loop", -1), ("inner_loop", -1), ("lr_net", 0.0), ("batch_train", 0),
                                   ("stage_init", "no-such-method"), ("stage_init", "dm"), ("stage_init", "sre2l")]
INVALID: dict[str, list[tuple[str, object]]] = {
    "dc": _DC_INVALID,
    "dsa": _DC_INVALID,
    "dm": _DM_INVALID,
    "dm-multilayer": _DM_INVALID + [("layers", "0"), ("layers", "a,b"), ("layers", ""), ("moments", 3),
                                       ("statistic", "kernel"), ("layer_weight", -1.0)],
    "herding": _FEATURE_INVALID,
    "kcenter": _FEATURE_INVALID,
    "kmeans": _FEATURE_INVALID + [("iterations", -1)],
    "best-of-random": [("candidates", 0), ("candidates", -3), ("epochs", 0), ("num_models", -1),
                       ("protocol", "no-such-protocol")],
}


def fields_of(name: str) -> set[str]:
    return {f.name for f in dataclasses.fields(METHODS.get(name).Config)}


def fast_method(name: str, **extra: object):
    have = fields_of(name)
    overrides = {k: v for k, v in GENERIC_BUDGET.items() if k in have}
    overrides.update(FAST.get(name, {}))
    overrides.update(extra)
    return get_method(name, **overrides)


def make_split(n_per_class: int, g: torch.Generator, prototypes: torch.Tensor, side: int = SIDE) -> Split:
    """Class c: its prototype pattern plus noise, so classes are learnable but images all differ."""
    y = torch.arange(len(prototypes)).repeat_interleave(n_per_class)
    x = prototypes[y] + 0.5 * torch.randn(len(y), 1, side, side, generator=g)
    return Split(x.float(), y)


def make_real(n_train: int = N_TRAIN, seed: int = 0) -> RealData:
    g = torch.Generator().manual_seed(seed)
    prototypes = torch.randn(K, 1, SIDE, SIDE, generator=g)
    return RealData(name="tiny", train=make_split(n_train, g, prototypes), val=make_split(N_EVAL, g, prototypes),
                    test=make_split(N_EVAL, g, prototypes), class_names=[f"c{i}" for i in range(K)],
                    mean=(0.5,), std=(0.5,), info={"flip": True})


def points_real(points_per_class: list[torch.Tensor]) -> RealData:
    """Toy RealData whose 'images' are 2-D points, shape (n, 1, 1, 2): for pixel-space checks."""
    x = torch.cat(points_per_class).float().view(-1, 1, 1, 2)
    y = torch.cat([torch.full((len(p),), c) for c, p in enumerate(points_per_class)])
    split = Split(x, y)
    return RealData(name="points", train=split, val=split, test=split,
                    class_names=[f"c{i}" for i in range(len(points_per_class))], mean=(0.0,), std=(1.0,))


@pytest.fixture(scope="module")
def real() -> RealData:
    return make_real()


_CACHE: dict[tuple, SyntheticSet] = {}


def distilled(name: str, real: RealData, ipc: int = 2, seed: int = 0) -> SyntheticSet:
    """One distillation per (method, ipc, seed) shared by the contract tests."""
    key = (name, ipc, seed)
    if key not in _CACHE:
        _CACHE[key] = fast_method(name).distill(real, ipc, seed=seed)
    return _CACHE[key]


def is_selection(name: str) -> bool:
    return "selection" in fast_method(name).tags


# ---- contract: every registered method --------------------------------------------------------

ALL = list_methods()


def test_registry_has_the_coreset_baselines():
    assert {"random", "class-mean", "kmeans", "herding", "kcenter", "best-of-random"} <= set(ALL)


@pytest.mark.parametrize("name", ALL)
def test_output_contract(name, real):
    ipc = 2
    s = distilled(name, real, ipc)
    method = fast_method(name)
    assert s.images.shape == (ipc * K, *real.image_shape)
    assert s.images.dtype == torch.float32
    assert torch.isfinite(s.images).all()
    if s.soft_labels:
        assert s.labels.shape == (ipc * K, K)
    else:
        assert s.labels.dtype == torch.int64 and s.labels.ndim == 1
    assert torch.bincount(s.hard_labels, minlength=K).tolist() == [ipc] * K
    assert (s.method, s.ipc, s.dataset, s.seed) == (name, ipc, "tiny", 0)
    assert s.config == config_dict(method.for_ipc(ipc).config)  # the concrete config of the run (auto fields filled)
    assert s.mean == real.mean and s.std == real.std


@pytest.mark.parametrize("name", ALL)
def test_same_seed_gives_identical_output(name, real):
    a = distilled(name, real, 2, seed=3)
    b = fast_method(name).distill(real, 2, seed=3)
    assert torch.equal(a.images, b.images)
    assert torch.equal(a.labels, b.labels)


@pytest.mark.parametrize("name", ALL)
def test_selection_methods_return_distinct_training_images(name, real):
    if not is_selection(name):
        pytest.skip("not a selection method")
    s = distilled(name, real)
    same = (s.images.flatten(1)[:, None, :] == real.train.x.flatten(1)[None, :, :]).all(-1)
    assert same.any(1).all(), "an output image is not a training image"
    rows = same.float().argmax(1)
    assert len(set(rows.tolist())) == len(rows), "a training image was selected twice"
    assert torch.equal(real.train.y[rows], s.labels)
    if "indices" in s.meta:
        assert s.meta["indices"] == rows.tolist()


@pytest.mark.parametrize("name", ALL)
def test_ipc_larger_than_smallest_class_raises_for_selection(name, real):
    if not is_selection(name) and name != "class-mean":
        pytest.skip("not a selection method")
    with pytest.raises(ConfigError):
        fast_method(name).distill(real, N_TRAIN + 1, seed=0)


@pytest.mark.parametrize("name", ALL)
def test_ipc_must_be_positive(name, real):
    for bad in (0, -1):
        with pytest.raises(ConfigError):
            fast_method(name).distill(real, bad, seed=0)


def test_seed_must_be_a_non_negative_integer_that_fits(real):
    """Seeds are multiplied into larger ones (views, evaluation models): out of range they must be
    refused, not wrapped or overflowed in the middle of a run."""
    from datadistill.bench.runner import BenchGrid
    from datadistill.config import MAX_SEED
    from datadistill.evaluation import get_protocol
    from datadistill.teachers import TeacherRecipe

    for bad in (-1, MAX_SEED + 1, 2**64, 1.5, True):
        with pytest.raises(ConfigError, match="seed must be an integer from 0"):
            fast_method("random").distill(real, 1, seed=bad)
        with pytest.raises(ConfigError, match="seed must be an integer from 0"):
            BenchGrid(dataset="tensors", methods=("random",), ipcs=(1,), seeds=(0, bad))
    with pytest.raises(ConfigError, match="protocol seed"):
        get_protocol("dc", seed=-1)
    with pytest.raises(ConfigError, match="teacher seed"):
        TeacherRecipe(seed=-1)
    with pytest.raises(ConfigError, match="ipc must be a positive integer"):
        BenchGrid(dataset="tensors", methods=("random",), ipcs=(1, 0))
    assert fast_method("random").distill(real, 1, seed=MAX_SEED).ipc == 1


@pytest.mark.parametrize("name", ALL)
def test_unknown_config_key_raises(name):
    with pytest.raises(ConfigError):
        get_method(name, no_such_option=1)


@pytest.mark.parametrize("name", ALL)
def test_unknown_option_strings_raise(name):
    hints = typing.get_type_hints(METHODS.get(name).Config)
    literal = [k for k, tp in hints.items() if typing.get_origin(tp) is typing.Literal]
    if not literal:
        pytest.skip("no Literal options")
    for key in literal:
        with pytest.raises(ConfigError):
            get_method(name, **{key: "no-such-option"})


INVALID_CASES = [(n, k, v) for n in ALL for k, v in INVALID.get(n, [])]


@pytest.mark.parametrize("name,key,value", INVALID_CASES)
def test_invalid_config_values_raise(name, key, value):
    with pytest.raises(ConfigError):
        get_method(name, **{key: value})
    cls = METHODS.get(name)
    with pytest.raises(ConfigError):  # a Config built directly is validated by the constructor too
        cls(dataclasses.replace(cls.Config(), **{key: value}))


@pytest.mark.parametrize("name", ALL)
def test_progress_is_reported(name, real):
    seen: list[Progress] = []
    fast_method(name).distill(real, 1, seed=0, callbacks=[seen.append])
    assert seen and all(isinstance(p, Progress) for p in seen)
    assert seen[-1].step == seen[-1].total


@pytest.mark.parametrize("name", ALL)
def test_result_saves_and_loads(name, real, tmp_path):
    s = distilled(name, real)
    loaded = SyntheticSet.load(s.save(tmp_path / name))
    assert torch.equal(loaded.images, s.images) and torch.equal(loaded.labels, s.labels)
    assert loaded.method == name


# ---- coreset specifics ------------------------------------------------------------------------

def test_random_differs_across_seeds(real):
    assert not torch.equal(distilled("random", real, 2, 0).images, distilled("random", real, 2, 3).images)


def test_class_mean_is_the_mean_of_each_class(real):
    s = distilled("class-mean", real, ipc=1)
    for c, idx in enumerate(real.class_index):
        torch.testing.assert_close(s.images[c], real.train.x[idx].mean(0))
    assert "selection" not in METHODS.get("class-mean").tags


def test_class_mean_groups_are_disjoint_and_cover_the_class(real):
    s = fast_method("class-mean").distill(real, 3, seed=0)
    assert s.meta["group_sizes"] == [[10, 10, 10]] * K
    for c, idx in enumerate(real.class_index):  # equal groups: the mean of group means is the class mean
        torch.testing.assert_close(s.images[s.labels == c].mean(0), real.train.x[idx].mean(0))


def test_feature_methods_leave_the_global_rng_alone(real):
    state = torch.get_rng_state()
    fast_method("herding").distill(real, 1, seed=0)
    assert torch.equal(state, torch.get_rng_state())


def test_feature_space_depends_on_seed_and_compiled_embedding_matches_eager(real):
    cfg = fast_method("herding").config
    spaces = [FeatureSpace.build(real, cfg, torch.Generator().manual_seed(s)) for s in (0, 0, 1)]
    x = real.train.x[:45]  # not a multiple of the batch: exercises the padding of the compiled path
    a, b, c = (sp.embed(x) for sp in spaces)
    assert torch.equal(a, b) and not torch.equal(a, c)
    spaces[0].compile, spaces[0].batch_size = True, 16
    torch.testing.assert_close(spaces[0].embed(x), a, atol=0.05, rtol=0.05)  # bf16 kernels may differ


def test_herding_mean_converges_faster_than_random():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 2, generator=g) * torch.tensor([3.0, 0.5]) + torch.tensor([1.0, -2.0])
    mu = x.mean(0)
    order = herd(x, 10)
    assert len(set(order.tolist())) == 10
    for t in range(1, 11):
        herd_err = float((x[order[:t]].mean(0) - mu).norm())
        rand_err = torch.stack([(x[torch.randperm(200, generator=g)[:t]].mean(0) - mu).norm() for _ in range(200)])
        assert herd_err < float(rand_err.median()), t
    # Through the method, in pixel space: the same picks as the function on class 0.
    real = points_real([x, x + 10])
    s = fast_method("herding", space="pixel").distill(real, 10, seed=0)
    assert s.meta["indices"][:10] == order.tolist()


def four_clusters(g: torch.Generator, n: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    centers = torch.tensor([[5.0, 5.0], [5.0, -5.0], [-5.0, 5.0], [-5.0, -5.0]])
    cluster = torch.arange(4).repeat_interleave(n)
    return centers[cluster] + 0.1 * torch.randn(4 * n, 2, generator=g), cluster


def test_kcenter_picks_spread_out_points():
    g = torch.Generator().manual_seed(0)
    x, cluster = four_clusters(g)
    first = int((x - x.mean(0)).pow(2).sum(1).argmin())
    picks = k_center(x, 4, first)
    assert picks[0] == first
    assert sorted(cluster[picks].tolist()) == [0, 1, 2, 3]
    real = points_real([x, -x])
    s = fast_method("kcenter", space="pixel").distill(real, 4, seed=0)
    assert sorted(cluster[torch.tensor(s.meta["indices"][:4])].tolist()) == [0, 1, 2, 3]
    s = fast_method("kcenter", space="pixel", start="random").distill(real, 4, seed=0)
    assert sorted(cluster[torch.tensor(s.meta["indices"][:4])].tolist()) == [0, 1, 2, 3]


def test_kmeans_finds_the_clusters():
    g = torch.Generator().manual_seed(1)
    x, cluster = four_clusters(g)
    real = points_real([x, x + 100])
    s = fast_method("kmeans", space="pixel").distill(real, 4, seed=0)
    assert sorted(cluster[torch.tensor(s.meta["indices"][:4])].tolist()) == [0, 1, 2, 3]
    assert s.meta["cluster_sizes"] == [[20] * 4] * 2
    method = fast_method("kmeans", space="pixel", output="centroid")
    assert "selection" not in method.tags and "selection" in METHODS.get("kmeans").tags
    s = method.distill(real, 4, seed=0)
    centroids = s.images[:4].view(4, 2)
    true = torch.stack([x[cluster == j].mean(0) for j in range(4)])
    assert torch.cdist(centroids, true).min(1).values.max() < 1e-4


def test_best_of_random_selects_on_validation_only(real, monkeypatch):
    calls = []
    original = best_of_random.evaluate

    def spy(synthetic, real_, protocol, *, split="test", **kw):
        calls.append(split)
        result = original(synthetic, real_, protocol, split=split, **kw)
        calls.append((synthetic.meta["indices"], result.mean))
        return result

    monkeypatch.setattr(best_of_random, "evaluate", spy)
    no_test = dataclasses.replace(real, test=Split(torch.empty(0, 1, SIDE, SIDE), torch.empty(0, dtype=torch.long)))
    s = fast_method("best-of-random", candidates=3).distill(no_test, 2, seed=5)
    splits = calls[0::2]
    evaluated = calls[1::2]
    assert splits == ["val"] * 3
    scores = s.meta["candidate_val_acc"]
    assert len(scores) == 3 and scores == [round(acc, 4) for _, acc in evaluated]
    best = s.meta["best_candidate"]
    assert scores[best] == max(scores) and scores.index(max(scores)) == best
    assert s.meta["indices"] == evaluated[best][0]
    # Candidate 0 is exactly `random`'s draw for the same seed.
    assert evaluated[0][0] == fast_method("random").distill(real, 2, seed=5).meta["indices"]


def test_best_of_random_needs_a_validation_split(real):
    no_val = dataclasses.replace(real, val=Split(torch.empty(0, 1, SIDE, SIDE), torch.empty(0, dtype=torch.long)))
    with pytest.raises(ConfigError):
        fast_method("best-of-random").distill(no_val, 1, seed=0)


def test_selection_at_exactly_the_class_size(real):
    for name in ("herding", "kcenter", "kmeans"):
        s = fast_method(name, space="pixel").distill(real, N_TRAIN, seed=0)
        assert sorted(s.meta["indices"]) == list(range(len(real.train)))


@pytest.mark.parametrize("disable", [True, False])
def test_progress_bar_starts_a_new_bar_for_each_stage(disable):
    from datadistill.progress import ProgressBar

    bar = ProgressBar("dsa ipc=10", disable)
    bar(Progress(1, 4, message="init: dm"))
    first = bar.bar
    bar(Progress(2, 4, message="init: dm"))
    assert bar.bar is first  # the same stage: the same bar
    bar(Progress(1, 6))
    assert bar.bar is not first and bar.bar.total == 6 and bar.shown == "dsa ipc=10"
    bar(2, 6)  # the (done, total) form
    bar.close()


def test_progress_bar_resumed_part_way_counts_its_rate_from_where_it_resumed(monkeypatch):
    from datadistill import progress

    bar = progress.ProgressBar("soft track", disable=False)
    bar(3000, 5000)  # 3 of 5 models were kept from an earlier run
    bar.bar.start_t = 100.0
    monkeypatch.setattr(bar.bar, "_time", lambda: 102.0)  # tqdm's own timer: 2 s after the bar began
    bar(3004, 5000)  # 4 steps in 2 s now
    shown = bar.bar.format_meter(**bar.bar.format_dict)  # what the terminal shows
    assert "3004/5000" in shown and re.search(r",\s+2\.00it/s\]$", shown), shown  # not 1502 it/s
    bar.close()
