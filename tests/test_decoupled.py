"""Teachers, soft labels as data, SRe2L / RDED and the soft-label track, on tiny data."""
from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from datadistill.errors import ConfigError, FormatError
from datadistill.evaluation import evaluate, get_protocol
from datadistill.methods import get_method
from datadistill.softlabels import ViewRecipe, relabel_views, render_views, view_targets
from datadistill.synthetic import SyntheticSet
from datadistill.teachers import TeacherRecipe, get_teacher, load_teacher, teacher_key

TINY_TEACHER = TeacherRecipe(epochs=8, lr=0.05, batch_size=32, compile=False,
                             model_kwargs=(("norm", "batch"), ("width", 8)))
SMOKE = dict(num_models=1, epochs=5)


@pytest.fixture(scope="module")
def real():
    from conftest import make_tiny_real

    return make_tiny_real()


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("teachers")


@pytest.fixture(scope="module")
def teacher(real, teacher_dir):
    return get_teacher(real, TINY_TEACHER, cache_dir=teacher_dir)


def test_teacher_learns_and_reports_accuracy(teacher):
    assert teacher.info["test_accuracy"] >= 75  # four bright-square classes
    assert teacher.info["train_time_s"] >= 0 and len(teacher.info["key"]) == 16
    # the time depends on the CPU: the machine is recorded, and kept in what sets record
    assert teacher.info["machine"]["threads"] >= 1 and teacher.describe()["machine"] == teacher.info["machine"]
    assert not any(p.requires_grad for p in teacher.model.parameters())


def test_teacher_cache_second_call_does_not_retrain(real, teacher, teacher_dir, monkeypatch):
    import datadistill.teachers as teachers

    def fail(*a, **k):
        raise AssertionError("retrained a cached teacher")

    monkeypatch.setattr(teachers, "train_teacher", fail)
    again = get_teacher(real, TINY_TEACHER, cache_dir=teacher_dir)
    x = real.test.x
    assert torch.equal(again.logits(x), teacher.logits(x))
    assert again.info["test_accuracy"] == teacher.info["test_accuracy"]
    # which weights: recorded in every set it labels, and equal for the cached copy
    assert again.info["weights_digest"] == teacher.info["weights_digest"]
    assert teacher.describe()["weights_digest"] == teacher.info["weights_digest"]
    # another recipe (another seed) is another key, so it would train
    other = TINY_TEACHER.replace(seed=1)
    assert teacher_key(real, other) != teacher_key(real, TINY_TEACHER)
    with pytest.raises(AssertionError, match="retrained"):
        get_teacher(real, other, cache_dir=teacher_dir)


def test_a_killed_teacher_training_resumes_from_its_checkpoint(real, teacher, tmp_path, monkeypatch):
    """A teacher killed after epoch 5 of 8 resumes from the checkpoint in its cache directory and
    ends with the weights of an uninterrupted training; the checkpoint goes once the teacher is kept."""
    import datadistill.evaluation.train as train

    original = train.FitCheckpoint
    monkeypatch.setattr(train, "FitCheckpoint", lambda path: original(path, every_s=0))

    class Killed(Exception):
        pass

    def progress(done, total):
        if done == 5:
            raise Killed

    with pytest.raises(Killed):
        get_teacher(real, TINY_TEACHER, cache_dir=tmp_path, progress=progress)
    [ckpt] = tmp_path.glob("*/train.ckpt")
    epochs = []
    resumed = get_teacher(real, TINY_TEACHER, cache_dir=tmp_path, progress=lambda d, t: epochs.append(d))
    assert epochs == [6, 7, 8] and not ckpt.exists()
    assert resumed.info["weights_digest"] == teacher.info["weights_digest"]


def test_teacher_from_another_dataset_is_refused(real, teacher):
    from conftest import make_tiny_real

    with pytest.raises(ConfigError, match="trained on"):
        load_teacher(teacher.info["path"], make_tiny_real(name="other"))


def test_teacher_recipe_rejects_bad_values():
    with pytest.raises(ConfigError, match="label_smoothing"):
        TeacherRecipe(label_smoothing=1.5)
    with pytest.raises(ConfigError, match="unknown DSA op"):
        TeacherRecipe(augment="crop_twirl")
    with pytest.raises(ConfigError, match="lr"):
        TeacherRecipe().replace(lr="-1")


# ---- soft labels as data ----------------------------------------------------------------------

def _views(real, teacher, epochs=3, top_k=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return relabel_views(real.train.x[:12], teacher.logits, real.num_classes, ViewRecipe(epochs=epochs, top_k=top_k),
                         g, flip=True)


def test_views_are_deterministic_and_shaped(real, teacher):
    a, b = _views(real, teacher), _views(real, teacher)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert a["view_boxes"].shape == (3, 12, 4) and a["view_boxes"].dtype == torch.float16
    assert a["view_logits"].shape == (3, 12, 4) and "view_classes" not in a  # k >= K: all classes, in order
    c = _views(real, teacher, seed=1)
    assert not torch.equal(a["view_boxes"], c["view_boxes"])


def test_views_top_k_keeps_classes_and_targets_sum_to_one(real, teacher):
    v = _views(real, teacher, top_k=2)
    assert v["view_logits"].shape == (3, 12, 2) and v["view_classes"].shape == (3, 12, 2)
    t = view_targets(v, 4, torch.arange(12), real.num_classes, temperature=2.0)  # epoch 4 -> views 1
    assert torch.allclose(t.sum(1), torch.ones(12))
    assert ((t > 0).sum(1) <= 2).all()
    stored = v["view_classes"][1].long()
    top = stored.gather(1, v["view_logits"][1].float().argmax(1, keepdim=True))  # class of the top stored logit
    assert torch.equal(t.gather(1, top).squeeze(1), t.max(1).values)  # has the largest target (ties allowed)


def test_stored_logits_are_the_teachers_on_the_rendered_views(real, teacher):
    x = real.train.x[:12]
    v = _views(real, teacher)
    views = render_views(x, v, 2)
    assert torch.allclose(teacher.logits(views).half().float(), v["view_logits"][2].float(), atol=0.05)


def _soft_set(real, teacher, views=True) -> SyntheticSet:
    rded = get_method("rded", candidates=12, view_epochs=3, soft_labels="views" if views else "image")
    return rded.distill(real, 2, seed=0, teacher=teacher)


def test_soft_labels_round_trip_through_the_format(real, teacher, tmp_path):
    syn = _soft_set(real, teacher)
    syn.save(tmp_path / "s")
    back = SyntheticSet.load(tmp_path / "s")
    assert back.soft_labels and torch.equal(back.labels, syn.labels) and torch.equal(back.classes, syn.classes)
    assert back.views.keys() == syn.views.keys()
    assert all(torch.equal(back.views[k], syn.views[k]) for k in syn.views)
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["labels"] == "soft" and manifest["has_views"]
    assert manifest["soft_labels"]["kind"] == "views" and manifest["soft_labels"]["epochs"] == 3
    assert manifest["teacher"]["key"] == teacher.info["key"]
    # readable without our code: plain safetensors
    from safetensors.torch import load_file

    raw = load_file(str(tmp_path / "s" / "synthetic.safetensors"))
    assert {"images", "labels", "classes", "view_logits", "view_boxes"} <= raw.keys()


def test_relabelling_a_loaded_set_records_this_code(real, teacher, tmp_path):
    """A loaded set keeps the revision that made it through a re-save; relabelling makes new labels,
    so the relabelled set names the code that made them."""
    from datadistill.methods._decoupled import RelabelConfig, relabel_set
    from datadistill.synthetic import _git_revision

    get_method("random").distill(real, 2, seed=0).save(tmp_path / "h")
    m = json.loads((tmp_path / "h" / "manifest.json").read_text())
    m["git_revision"] = "e" * 40
    (tmp_path / "h" / "manifest.json").write_text(json.dumps(m))
    loaded = SyntheticSet.load(tmp_path / "h")
    assert loaded.manifest()["git_revision"] == "e" * 40
    soft = relabel_set(loaded, teacher, RelabelConfig(label_epochs=-1, soft_labels="image"), seed=0, flip=True)
    assert soft.manifest()["git_revision"] == _git_revision() != "e" * 40


def test_storage_accounts_for_soft_labels_and_views(real, teacher):
    syn = _soft_set(real, teacher)
    sb = syn.storage_bytes
    n, k = len(syn.images), real.num_classes
    assert sb["images"] == syn.images.numel() * 4
    assert sb["labels"] == n * k * 4 and sb["classes"] == n * 8
    assert sb["view_logits"] == 3 * n * k * 2 and sb["view_boxes"] == 3 * n * 4 * 2
    assert sb["total"] == sum(v for key, v in sb.items() if key != "total")
    image_only = _soft_set(real, teacher, views=False)
    assert image_only.views is None and image_only.storage_bytes["total"] < sb["total"]


def test_malformed_views_are_rejected(real, teacher):
    syn = _soft_set(real, teacher)
    bad = dict(syn.views)
    bad["view_partners"] = bad["view_partners"] + 100
    with pytest.raises(FormatError, match="partners"):
        SyntheticSet(**{**syn.__dict__, "views": bad})
    missing = {k: v for k, v in syn.views.items() if k != "view_flips"}
    with pytest.raises(FormatError, match="incomplete"):
        SyntheticSet(**{**syn.__dict__, "views": missing})


def test_soft_label_evaluation_differs_from_hard_where_it_must(real):
    """Hard labels say class c; soft labels put all mass on class c + 1. Training on the soft
    labels must then predict the wrong class, on the hard labels the right one."""
    idx = torch.cat([i[:6] for i in real.class_index])
    y = real.train.y[idx]
    k = real.num_classes
    syn = SyntheticSet(images=real.train.x[idx], labels=torch.nn.functional.one_hot((y + 1) % k, k).float(),
                       classes=y.clone(), dataset=real.name, class_names=real.class_names, mean=real.mean,
                       std=real.std, ipc=6, method="test")
    p = dict(num_models=1, epochs=30, augment="none", compile=False, lr=0.05)
    hard = evaluate(syn, real, "smoke", **p)
    soft = evaluate(syn, real, "smoke", label_mode="soft", **p)
    assert hard.mean >= 75 and soft.mean <= 25 and hard.labels == "hard" and soft.labels == "soft"


def test_view_sets_need_augment_none_and_teacher_mode_needs_a_teacher(real, teacher):
    syn = _soft_set(real, teacher)
    with pytest.raises(ConfigError, match="augment=none"):
        evaluate(syn, real, "smoke", label_mode="soft", augment="dsa")
    with pytest.raises(ConfigError, match="live teacher"):
        evaluate(syn, real, "smoke", label_mode="teacher")
    live = evaluate(syn, real, "smoke", label_mode="teacher", augment="none", teacher=teacher, compile=False)
    stored = evaluate(syn, real, "smoke", label_mode="soft", augment="none", compile=False)
    # with all classes stored, the live teacher and the stored outputs train the same model
    assert live.per_model == pytest.approx(stored.per_model, abs=1e-6)


def test_soft_protocol_preset_is_valid():
    p = get_protocol("soft")
    assert p.label_mode == "soft" and p.augment == "none" and p.epochs == 1000
    with pytest.raises(ConfigError, match="optimizer"):
        get_protocol("soft", optimizer="lbfgs")
    with pytest.raises(ConfigError, match="temperature"):
        get_protocol("soft", temperature=0)


def test_soft_preset_takes_its_architecture_values_under_the_callers():
    from datadistill.evaluation import PRESETS
    from datadistill.evaluation.protocol import ARCHITECTURE_VALUES

    own = ARCHITECTURE_VALUES[("soft", "alexnet")]
    assert own["temperature"] != PRESETS["soft"].temperature
    assert get_protocol("soft") == PRESETS["soft"]  # convnet: the preset as it is
    alex = get_protocol("soft", model="alexnet")
    assert alex == PRESETS["soft"].replace(model="alexnet", **own)
    assert get_protocol("soft", model="alexnet", temperature="2").temperature == 2.0  # the caller's value wins
    assert get_protocol(PRESETS["soft"], model="alexnet").temperature == PRESETS["soft"].temperature  # a Protocol as given
    assert get_protocol("dsa", model="alexnet") == PRESETS["dsa"].replace(model="alexnet")  # only the named preset


# ---- the methods --------------------------------------------------------------------------------

@pytest.mark.parametrize("name,opts", [("rded", dict(candidates=12)), ("sre2l", dict(iterations=6, batch_size=8))])
def test_decoupled_methods_shapes_classes_and_determinism(real, teacher, name, opts):
    m = get_method(name, view_epochs=2, **opts)
    a = m.distill(real, 2, seed=0, teacher=teacher)
    b = m.distill(real, 2, seed=0, teacher=teacher)
    assert a.images.shape == (8, *real.image_shape) and a.labels.shape == (8, real.num_classes)
    assert a.classes.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert torch.equal(a.images, b.images) and torch.equal(a.views["view_logits"], b.views["view_logits"])
    assert torch.allclose(a.labels.sum(1), torch.ones(8))
    assert a.meta["teacher"]["key"] == teacher.info["key"]


def test_rded_selects_confident_crops_and_stitches(real, teacher):
    syn = get_method("rded", candidates=12, factor=2, soft_labels="image").distill(real, 2, seed=0, teacher=teacher)
    # the selected crops are ones the teacher finds class-like: the soft labels agree with the classes
    assert (syn.labels.argmax(1) == syn.classes).float().mean() >= 0.75
    from datadistill.methods.rded import stitch

    patches = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 2, 2)
    img = stitch(patches, 2, (4, 4))
    assert img.shape == (1, 1, 4, 4) and img[0, 0, 0, 0] == 0 and img[0, 0, 0, 3] == 1 and img[0, 0, 3, 3] == 3


def test_rded_cluster_selection_spreads_picks(real, teacher):
    """Cluster selection takes one crop per k-means cluster: its picks are farther apart in the
    teacher's feature space than the reference's lowest-loss picks, and still class-like."""
    from datadistill.methods.rded import _features

    def spread(selection):
        syn = get_method("rded", candidates=24, factor=1, selection=selection, soft_labels="image").distill(
            real, 4, seed=0, teacher=teacher)
        f = _features(teacher, syn.images)
        d = torch.cdist(f, f)
        per_class = [d[c * 4:(c + 1) * 4, c * 4:(c + 1) * 4].sum() / 12 for c in range(real.num_classes)]
        return float(torch.stack(per_class).mean()), syn

    top, _ = spread("top")
    clustered, syn = spread("cluster")
    assert clustered > top
    assert syn.meta["selection"] == "cluster" and syn.images.shape[0] == 16


def test_rded_medoid_selection_takes_the_image_nearest_the_class_centre(real, teacher):
    """At IPC 1 (one cluster per class) medoid selection picks, of every candidate of the class, the
    one whose teacher features lie nearest their mean; cluster selection picks another one."""
    from datadistill.methods.rded import ALL_CANDIDATES, _features

    m = get_method("rded", candidates=ALL_CANDIDATES, selection="medoid", soft_labels="image", draws=1)
    syn = m.distill(real, 1, seed=0, teacher=teacher)
    for c, idx in enumerate(real.class_index):
        f = _features(teacher, real.train.x[idx])
        nearest = (f - f.mean(0)).pow(2).sum(1).argmin()
        assert torch.equal(syn.images[c], real.train.x[idx[nearest]])
    assert syn.meta["selection"] == "medoid"
    cluster = get_method("rded", candidates=ALL_CANDIDATES, selection="cluster", soft_labels="image", draws=1).distill(
        real, 1, seed=0, teacher=teacher)
    assert not torch.equal(cluster.images, syn.images)
    # without a candidate count, medoid at IPC 1 is the class medoid too; the manifest says so
    auto = get_method("rded", selection="medoid", soft_labels="image", draws=1).distill(real, 1, seed=0, teacher=teacher)
    assert torch.equal(auto.images, syn.images) and auto.meta["selection"] == "medoid"
    assert get_method("rded", soft_labels="image").distill(real, 2, seed=0, teacher=teacher).meta["selection"] == "medoid"


def test_rded_draws_keep_the_best_proxy_score_on_held_out_training_images(real, teacher):
    """With draws > 1 (the default at IPC 1) each draw is selected from the training images minus a
    probe, scored by a proxy student on the probe, and the best is kept: deterministic, recorded in
    the set, and never an image of the probe."""
    from datadistill.methods.rded import probe_split

    opts = dict(candidates=3, view_epochs=2, draws=3, draw_epochs=2, probe_images=8)
    assert get_method("rded", draws=1).distill(real, 1, seed=0, teacher=teacher).meta.get("best_draw") is None
    syn = get_method("rded", **opts).distill(real, 1, seed=0, teacher=teacher)
    scores = syn.meta["draw_probe_acc"]
    assert len(scores) == 3 and syn.meta["best_draw"] == scores.index(max(scores))
    assert syn.meta["probe_images"] == 8 and syn.views is not None and syn.images.shape[0] == real.num_classes
    pool, probe = probe_split(real, 8, 0)
    assert len(pool.train) + len(probe.val) == len(real.train) and len(probe.val) == 8
    assert torch.equal(probe.test.x, real.test.x)  # only val is replaced
    flat = probe.val.x.flatten(1)
    assert not any((flat == img.flatten()).all(1).any() for img in syn.images)
    again = get_method("rded", **opts).distill(real, 1, seed=0, teacher=teacher)
    assert torch.equal(again.images, syn.images) and again.meta["draw_probe_acc"] == scores
    # the probe takes at most a tenth of the training images, and at least one of each class
    capped = probe_split(real, len(real.train), 0)[1].val
    assert real.num_classes <= len(capped) <= len(real.train) // 10
    assert set(capped.y.tolist()) == set(range(real.num_classes))
    with pytest.raises(ConfigError, match="takes no image"):
        get_method("rded", **{**opts, "probe_images": 2}).distill(real, 1, seed=0, teacher=teacher)


def test_sre2l_recovery_lowers_its_loss(real, teacher):
    seen = []
    get_method("sre2l", iterations=100, batch_size=8, soft_labels="image").distill(
        real, 2, seed=0, teacher=teacher, callbacks=[lambda p: p.loss is not None and seen.append(p.loss)])
    assert len(seen) == 2 and seen[-1] < seen[0]


def test_sre2l_class_statistics_are_each_classs_and_vanish_on_its_real_images(real, teacher):
    from datadistill.methods.sre2l import _BNStats, class_bn_statistics

    model = teacher.model.eval()
    stats = _BNStats(model)
    stats.remove()
    targets = class_bn_statistics(model, stats.layers, real, 10**6, torch.Generator().manual_seed(0), batch=7)
    seen = {}
    hooks = [m.register_forward_hook(lambda mod, i, o: seen.__setitem__(mod, i[0].float())) for m in stats.layers]
    x = real.train.x[real.class_index[1]].float()
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    for layer, (mean, var) in zip(stats.layers, targets):
        assert mean.shape == var.shape == (real.num_classes, layer.num_features)
        assert torch.allclose(mean[1], seen[layer].mean((0, 2, 3)), atol=1e-4)
        assert torch.allclose(var[1], seen[layer].var((0, 2, 3), unbiased=False), atol=1e-4)
    # the recovery loss measured on a batch of every class's real images: zero for class
    # statistics (up to rounding), not for the running (global) statistics
    idx = torch.cat(real.class_index)
    y = real.train.y[idx]
    measured = {}
    for mode in ("class", "global"):
        s = _BNStats(model)
        if mode == "class":
            s.set_class_targets(targets)
            s.onehot = torch.nn.functional.one_hot(y, real.num_classes).float()
        with torch.no_grad():
            model(real.train.x[idx].float())
        s.remove()
        measured[mode] = float(sum(s.losses))
    assert measured["class"] < 1e-3 < measured["global"]


def test_sre2l_class_statistics_recovery_lowers_its_loss_and_is_deterministic(real, teacher):
    runs = []
    for _ in range(2):
        seen = []
        syn = get_method("sre2l", iterations=60, batch_size=8, soft_labels="image", bn_stats="class",
                         class_stat_images=20).distill(
            real, 2, seed=0, teacher=teacher, callbacks=[lambda p: p.loss is not None and seen.append(p.loss)])
        assert seen[-1] < seen[0]
        runs.append(syn.images)
    assert torch.equal(runs[0], runs[1])


def test_sre2l_real_targets_recover_toward_the_teachers_view_of_real_images(real, teacher):
    runs = []
    for _ in range(2):
        seen = []
        syn = get_method("sre2l", iterations=60, batch_size=8, soft_labels="image", target="real").distill(
            real, 2, seed=0, teacher=teacher, callbacks=[lambda p: p.loss is not None and seen.append(p.loss)])
        assert seen[-1] < seen[0]
        runs.append(syn.images)
    assert torch.equal(runs[0], runs[1])
    labels = get_method("sre2l", iterations=60, batch_size=8, soft_labels="image").distill(
        real, 2, seed=0, teacher=teacher)
    assert not torch.equal(runs[0], labels.images)
    # switching after the whole run would be the label run; the switch changes the images
    later = get_method("sre2l", iterations=60, batch_size=8, soft_labels="image", target="real",
                       target_after=0.5).distill(real, 2, seed=0, teacher=teacher)
    assert not torch.equal(later.images, runs[0])
    for bad, match in (({"target": "soft"}, "target"), ({"target_after": 1.0}, "target_after"),
                       ({"target_after": 0.5}, "set target=real"), ({"diversity_floor": "real"}, "set diversity")):
        with pytest.raises(ConfigError, match=match):
            get_method("sre2l", **bad)


def test_sre2l_can_invert_a_shorter_run_of_the_teachers_recipe(real, teacher):
    kw = dict(iterations=20, batch_size=8, soft_labels="image", label_epochs=-1)
    plain = get_method("sre2l", **kw).distill(real, 1, seed=0, teacher=teacher)
    short = get_method("sre2l", invert_epochs=1, **kw).distill(real, 1, seed=0, teacher=teacher)
    assert 1 in teacher.labelers  # the inverted network is the one-epoch run, kept on the teacher
    assert not torch.equal(plain.images, short.images)
    with pytest.raises(ConfigError, match="invert_epochs"):
        get_method("sre2l", invert_epochs=0)


def test_l2_attack_stays_in_its_ball_and_raises_the_loss_without_moving_batch_norm(real, teacher):
    import torch.nn.functional as F

    from datadistill.teachers import l2_attack

    model = teacher.model
    model.train()
    try:
        before = {k: v.clone() for k, v in model.state_dict().items()}
        x, y = real.train.x[:32].float(), real.train.y[:32]
        attack = l2_attack(model, 1.0, 3, real.mean, real.std, precision="fp32")
        adv = attack(x, y)
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # running statistics kept
        std = torch.tensor(real.std).view(1, -1, 1, 1)
        mean = torch.tensor(real.mean).view(1, -1, 1, 1)
        pixels, orig = adv * std + mean, x * std + mean  # (the tiny data's pixels reach past [0, 1])
        assert bool((pixels >= orig.clamp(max=0) - 1e-5).all() and (pixels <= orig.clamp(min=1) + 1e-5).all())
        moved = torch.linalg.vector_norm(((adv - x) * std).flatten(1), dim=1)
        assert float(moved.max()) <= 1.0 + 1e-4 and float(moved.mean()) > 0.5
        with torch.no_grad():
            assert float(F.cross_entropy(model(adv), y)) > float(F.cross_entropy(model(x), y)) + 0.05
    finally:
        model.eval()


def test_adversarial_teacher_recipe_keys_and_sre2l_inverts_it(real, teacher, teacher_dir):
    from datadistill.teachers import variant

    # recipes without adversarial training keep the keys their caches were written under
    assert teacher_key(real, TINY_TEACHER) == teacher_key(real, dataclasses.replace(TINY_TEACHER, adversarial_steps=5))
    assert teacher_key(real, TINY_TEACHER) != teacher_key(real, dataclasses.replace(TINY_TEACHER, adversarial=0.5))
    # and read as before in teacher.json and manifests (the bench compares them with today's default)
    assert "adversarial" not in TINY_TEACHER.as_dict()
    robust_recipe = dataclasses.replace(TINY_TEACHER, adversarial=0.5)
    assert TeacherRecipe.from_dict(robust_recipe.as_dict()) == robust_recipe
    assert TeacherRecipe.from_dict(TINY_TEACHER.as_dict()) == TINY_TEACHER
    with pytest.raises(ConfigError, match="adversarial"):
        TeacherRecipe(adversarial=-1.0)
    assert variant(teacher, real) is teacher
    kw = dict(iterations=20, batch_size=8, soft_labels="image", label_epochs=-1)
    plain = get_method("sre2l", **kw).distill(real, 1, seed=0, teacher=teacher)
    robust = [get_method("sre2l", invert_adversarial=0.5, invert_epochs=2, **kw).distill(
        real, 1, seed=0, teacher=teacher) for _ in range(2)]
    assert torch.equal(robust[0].images, robust[1].images)  # the robust network is trained once, then loaded
    assert not torch.equal(plain.images, robust[0].images)
    key = teacher_key(real, dataclasses.replace(TINY_TEACHER, adversarial=0.5, epochs=2))
    assert (teacher_dir / f"teacher-{real.name}-{key}" / "teacher.json").is_file()
    assert robust[0].meta["teacher"] == plain.meta["teacher"]  # the labels still come from the teacher
    # the manifest names the network the images were recovered from
    assert "inverted" not in plain.meta
    assert [n["recipe"]["adversarial"] for n in robust[0].meta["inverted"]] == [0.5]
    assert robust[0].meta["inverted"][0]["key"] == key
    with pytest.raises(ConfigError, match="invert_adversarial"):
        get_method("sre2l", invert_adversarial=-0.1)


def test_sre2l_directed_weight_adjustment_moves_the_weights_per_batch_and_restores_them(real, teacher):
    from datadistill.methods.sre2l import _perturbed

    before = [p.detach().clone() for p in teacher.model.parameters()]
    x, y = real.train.x[:6].float(), real.train.y[:6]
    with _perturbed([teacher], x, y, 0.05, 3):
        moved = torch.cat([(p - b).flatten() for p, b in zip(teacher.model.parameters(), before)])
        # three steps of 0.05 / 3 along normalised gradients: at most 0.05 away, and nearly that (one direction)
        assert 0.04 < float(torch.linalg.vector_norm(moved)) <= 0.05 + 1e-6
    assert all(torch.equal(p, b) and not p.requires_grad for p, b in zip(teacher.model.parameters(), before))
    kw = dict(iterations=20, batch_size=4, soft_labels="image", label_epochs=-1)
    plain = get_method("sre2l", **kw).distill(real, 2, seed=0, teacher=teacher)
    runs = [get_method("sre2l", perturb_rho=0.05, perturb_steps=3, **kw).distill(real, 2, seed=0, teacher=teacher)
            for _ in range(2)]
    assert torch.equal(runs[0].images, runs[1].images) and not torch.equal(plain.images, runs[0].images)
    assert all(torch.equal(p, b) for p, b in zip(teacher.model.parameters(), before))
    for bad in ({"perturb_rho": -1.0}, {"perturb_steps": 0}):
        with pytest.raises(ConfigError, match="perturb"):
            get_method("sre2l", **bad)


def test_sre2l_same_class_similarity_and_the_diversity_term(real, teacher):
    from datadistill.methods.sre2l import same_class_similarity

    f = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    y = torch.tensor([0, 0, 1, 1])
    expected = (1.0 + 0.5 ** 0.5) / 2  # class 0: identical; class 1: 45 degrees apart
    assert abs(float(same_class_similarity(f, y)) - expected) < 1e-6
    assert float(same_class_similarity(f, torch.tensor([0, 1, 2, 3]))) == 0.0  # no class twice
    floor = torch.tensor([0.5, 0.9])  # only the excess counts: class 0 by 0.5, class 1 not at all
    assert abs(float(same_class_similarity(f, y, floor)) - 0.25) < 1e-6
    kw = dict(iterations=40, batch_size=8, soft_labels="image", label_epochs=-1)
    feats = {}
    handle = teacher.model.classifier.register_forward_pre_hook(lambda _m, i: feats.__setitem__(0, i[0]))
    try:
        sims = {}
        for w in (0.0, 5.0):
            syn = get_method("sre2l", diversity=w, **kw).distill(real, 4, seed=0, teacher=teacher)
            teacher.logits(syn.images)
            sims[w] = float(same_class_similarity(feats[0].float(), syn.classes))
    finally:
        handle.remove()
    assert sims[5.0] < sims[0.0]
    get_method("sre2l", diversity=1.0, diversity_floor="real", **kw).distill(real, 2, seed=0, teacher=teacher)
    with pytest.raises(ConfigError, match="diversity"):
        get_method("sre2l", diversity=-1.0)


def test_sre2l_capped_cross_entropy_leaves_the_images_less_sure(real, teacher):
    kw = dict(iterations=60, batch_size=8, soft_labels="image", label_epochs=-1)
    sure = {}
    for cap in (1.0, 0.25):
        syn = get_method("sre2l", ce_cap=cap, **kw).distill(real, 2, seed=0, teacher=teacher)
        p = teacher.logits(syn.images).softmax(1)
        sure[cap] = float(p[torch.arange(len(p)), syn.classes].mean())
    assert sure[0.25] < sure[1.0]
    with pytest.raises(ConfigError, match="ce_cap"):
        get_method("sre2l", ce_cap=0.0)


def test_sre2l_low_resolution_images_are_upsampled_smooth_images(real, teacher):
    syn = get_method("sre2l", iterations=20, batch_size=8, soft_labels="image", resolution=0.5).distill(
        real, 1, seed=0, teacher=teacher)
    x = syn.images.float()
    h, w = x.shape[-2:]
    low = torch.nn.functional.interpolate(x, size=(round(h / 2), round(w / 2)), mode="area")
    again = torch.nn.functional.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)
    plain = get_method("sre2l", iterations=20, batch_size=8, soft_labels="image").distill(
        real, 1, seed=0, teacher=teacher).images.float()
    plain_again = torch.nn.functional.interpolate(torch.nn.functional.interpolate(
        plain, size=(round(h / 2), round(w / 2)), mode="area"), size=(h, w), mode="bilinear", align_corners=False)
    # down and up again changes a low-resolution image much less than a full-resolution one
    assert (again - x).abs().mean() < 0.5 * (plain_again - plain).abs().mean()
    with pytest.raises(ConfigError, match="resolution"):
        get_method("sre2l", resolution=0.0)


def test_sre2l_image_prior_values():
    from datadistill.methods.sre2l import image_prior

    flat = torch.full((2, 1, 5, 5), 0.3)
    assert float(image_prior(flat, 1.0, 0.0)) == 0.0  # a constant image has no variation
    x = torch.zeros(1, 1, 3, 3)
    x[0, 0, 1, 1] = 1.0  # one bright pixel: in each of the 4 directions, 2 differences of 1
    assert abs(float(image_prior(x, 1.0, 0.0)) - 4 * 2 ** 0.5) < 1e-6
    assert abs(float(image_prior(x, 0.0, 0.5)) - 0.5) < 1e-6


def test_sre2l_total_variation_prior_smooths_the_recovered_images(real, teacher):
    from datadistill.methods.sre2l import image_prior

    tv = {}
    for w in (0.0, 0.05):
        syn = get_method("sre2l", iterations=30, batch_size=8, soft_labels="image", tv_l2=w).distill(
            real, 1, seed=0, teacher=teacher)
        tv[w] = float(image_prior(syn.images.float(), 1.0, 0.0))
    assert tv[0.05] < 0.8 * tv[0.0]


@pytest.mark.parametrize("init", ["real", "rded"])
def test_sre2l_real_init_starts_from_images_of_each_class(real, teacher, init):
    syn = get_method("sre2l", init=init, iterations=1, lr=1e-6, soft_labels="image").distill(
        real, 3, seed=0, teacher=teacher)
    for img, c in zip(syn.images, syn.classes):
        own = real.train.x[real.class_index[int(c)]].clamp(-1, 1)  # pixels [0, 1]: recovery clips to them
        assert (own - img).abs().flatten(1).amax(1).min() < 1e-3  # one of its class's training images


def test_sre2l_several_teachers_invert_the_teacher_and_cached_companions(real, teacher, teacher_dir):
    import torch.nn.functional as F

    from datadistill.teachers import companions

    opts = dict(iterations=100, batch_size=8, soft_labels="image")
    one = get_method("sre2l", **opts).distill(real, 2, seed=0, teacher=teacher)
    runs = [get_method("sre2l", **opts, teachers=2).distill(real, 2, seed=0, teacher=teacher) for _ in range(2)]
    assert torch.equal(runs[0].images, runs[1].images)  # deterministic, the companion loaded the second time
    assert not torch.equal(runs[0].images, one.images)
    # the companion: the teacher's recipe with the next seed, trained once into the teacher's cache
    key = teacher_key(real, TINY_TEACHER.replace(seed=1))
    assert (teacher_dir / f"teacher-{real.name}-{key}").is_dir()
    (mate,) = companions(teacher, real, 1)
    assert mate.recipe.seed == teacher.recipe.seed + 1
    assert mate.info["weights_digest"] != teacher.info["weights_digest"]
    # both networks were inverted: cross-entropy of each on the recovered images and their classes
    def ce(net, syn):
        with torch.no_grad():
            return float(F.cross_entropy(net.model(syn.images.float()), syn.classes.long()))

    # inverted with it, the companion classifies the images better (tiny data: 0.87 against 1.18), and the
    # teacher about as well as when inverted alone (0.87 against 0.85)
    assert ce(mate, runs[0]) < 0.85 * ce(mate, one)
    assert ce(teacher, runs[0]) < 1.1 * ce(teacher, one)


def test_sre2l_random_resized_crops_replace_the_jitter(real, teacher, monkeypatch):
    import datadistill.methods.sre2l as sre2l_module

    seen = []
    crop_views = sre2l_module.crop_views
    monkeypatch.setattr(sre2l_module, "crop_views", lambda x, b, f: seen.append(b.float()) or crop_views(x, b, f))
    opts = dict(iterations=100, batch_size=8, soft_labels="image")
    jittered = get_method("sre2l", **opts).distill(real, 1, seed=0, teacher=teacher)
    assert not seen  # the default: the paper's small-image recipe, rolled jitter
    runs = [get_method("sre2l", **opts, crop_scale_min=0.5).distill(real, 1, seed=0, teacher=teacher) for _ in range(2)]
    assert torch.equal(runs[0].images, runs[1].images) and not torch.equal(runs[0].images, jittered.images)
    boxes = torch.cat(seen)  # (cy, cx, h, w) per image per iteration, as fractions of the side
    assert len(boxes) == 2 * 100 * len(runs[0].images)
    area = boxes[:, 2] * boxes[:, 3]
    assert area.min() >= 0.5 * 0.99 and area.max() <= 1.0 and area.std() > 0.05


def test_sre2l_refuses_a_teacher_without_batchnorm(real, teacher_dir):
    plain = get_teacher(real, TINY_TEACHER.replace(model_kwargs={"norm": "instance", "width": 8}, epochs=1),
                        cache_dir=teacher_dir)
    with pytest.raises(ConfigError, match="BatchNorm"):
        get_method("sre2l", iterations=2).distill(real, 1, seed=0, teacher=plain)


@pytest.mark.parametrize("name,field,value", [("rded", "factor", 0), ("rded", "view_scale_min", -0.5), ("rded", "view_scale_min", 1.5),
                                              ("rded", "selection", "best"), ("rded", "candidates", -1),
                                              ("sre2l", "lr", -1), ("sre2l", "lr", float("inf")), ("sre2l", "soft_labels", "both"), ("sre2l", "init", "dm"),
                                              ("sre2l", "bn_stats", "layer"), ("sre2l", "class_stat_images", 0),
                                              ("sre2l", "tv_l2", -1e-4), ("sre2l", "l2", float("nan")),
                                              ("rded", "top_k", 0), ("rded", "draws", -1), ("rded", "draw_epochs", 0),
                                              ("rded", "probe_images", 0), ("rded", "label_epochs", -2),
                                              ("sre2l", "label_epochs", -3), ("sre2l", "teachers", 0),
                                              ("sre2l", "crop_scale_min", 0), ("sre2l", "crop_scale_min", 1.5)])
def test_decoupled_configs_reject_invalid_values(name, field, value):
    with pytest.raises(ConfigError):
        get_method(name, **{field: value})


# ---- the fair track -----------------------------------------------------------------------------

def test_label_robust_scores():
    from datadistill.bench.softtrack import ddrs, label_robust_scores

    s = label_robust_scores(soft_set=90, soft_random=80, hard_set=70, hard_random=65, hard_full=93)
    assert s["ior"] == pytest.approx(0.10) and s["hlr"] == pytest.approx(0.23)
    assert s["gain_survival"] == pytest.approx(0.5)
    assert s["ddrs"] == pytest.approx((math.exp(0.05 - 0.115) - math.exp(-1)) / (math.e - math.exp(-1)), abs=1e-5)
    assert ddrs(1.0, 0.0, w=1.0) == pytest.approx(1.0) and ddrs(0.0, 1.0, w=0.0) == pytest.approx(0.0)
    assert label_robust_scores(80, 85, 70, 65, None)["gain_survival"] is None  # no gain to survive


def test_bench_soft_track_row(tmp_path, monkeypatch, capsys):
    """A soft-label cell carries (a) random subset with the same soft labels, (b) the same images with
    hard labels, (c) bytes, and the scores; its sub-evaluations are cached in the set's directory."""
    from conftest import write_tiny_npz

    from datadistill.bench.runner import BenchGrid, run_grid
    from datadistill.bench.tables import write_benchmarks_md
    from datadistill.evaluation import protocol as proto

    monkeypatch.setitem(proto.PRESETS, "dsa", proto.Protocol(epochs=3, num_models=1, compile=False))
    monkeypatch.setitem(proto.PRESETS, "soft", proto.Protocol(epochs=3, num_models=1, compile=False,
                                                               augment="none", label_mode="soft"))
    write_tiny_npz(tmp_path / "d.npz")
    grid = BenchGrid(dataset="tensors", methods=("rded",), ipcs=(2,), protocol="soft",
                     data_dir=str(tmp_path / "d.npz"), method_overrides=("rded.candidates=10", "rded.view_epochs=3"),
                     teacher_cache=str(tmp_path / "teachers"),
                     teacher_overrides=("epochs=2", "compile=false", "batch_size=32"))
    [path] = run_grid(grid, tmp_path / "results", quiet=True, sets_dir=tmp_path / "sets")
    row = json.loads(path.read_text())
    t = row["soft_track"]
    assert row["labels"] == "soft" and row["teacher"]["key"]
    assert {"random_soft", "hard_same_images", "hard_random", "storage_bytes", "ior", "gain_survival"} <= t.keys()
    assert t["hard_same_images"]["labels"] == "hard" and t["random_soft"]["labels"] == "soft"
    assert t["storage_bytes"]["total"] > t["storage_bytes"]["images"]
    assert t["ior"] == pytest.approx((row["evaluation"]["mean"] - t["random_soft"]["mean"]) / 100, abs=1e-4)
    cached = sorted(f"{p.parent.name.split('__')[1]}/{p.name}" for p in (tmp_path / "sets").glob("*/track-*.json"))
    # the random subset's soft evaluation sits beside the random set, shared by methods relabelling alike
    assert len(cached) == 3 and cached[2] == "rded/track-dsa-random-hard.json"
    assert cached[1].startswith("rded/track-dsa-hard-")  # keyed by the images
    assert cached[0].startswith("random/track-soft") and "-relabel-" in cached[0]
    # every evaluation of the cell is cached beside its set: a re-run evaluates nothing
    path.unlink()
    with monkeypatch.context() as mp:
        import datadistill.evaluation as ev

        mp.setattr(ev, "evaluate", lambda *a, **k: pytest.fail("evaluated again"))
        [again] = run_grid(grid, tmp_path / "results", quiet=True, sets_dir=tmp_path / "sets")
    assert json.loads(again.read_text())["evaluation"] == row["evaluation"]
    assert json.loads(again.read_text())["soft_track"] == t
    # the same recipe trained again gives other weights under the same key: the stored set, labelled
    # by the first weights, is relabelled, and the random subset's soft evaluation is not reused
    from safetensors.torch import load_file, save_file

    path.unlink()
    [wfile] = (tmp_path / "teachers").glob("*/weights.safetensors")
    first_weights = load_file(str(wfile))
    save_file({k: v + 0.01 if v.is_floating_point() else v for k, v in first_weights.items()}, str(wfile))
    [retrained] = run_grid(grid, tmp_path / "results", quiet=True, sets_dir=tmp_path / "sets")
    row_r = json.loads(retrained.read_text())
    assert row_r["teacher"]["key"] == row["teacher"]["key"]
    assert row_r["teacher"]["weights_digest"] != row["teacher"]["weights_digest"]
    assert row_r["set_digest"] != row["set_digest"]
    assert len(list((tmp_path / "sets").glob("*random*/track-soft*-relabel-*.json"))) == 2
    save_file(first_weights, str(wfile))
    # another teacher (as when the default recipe changes): the cell made with the first is moved
    # aside and run again; the stored set (relabelled by the first) is not reused, nor its sub-evaluations
    capsys.readouterr()
    other = dataclasses.replace(grid, teacher_overrides=grid.teacher_overrides + ("seed=1",))
    [path2] = run_grid(other, tmp_path / "results", quiet=True, sets_dir=tmp_path / "sets")
    assert "made with another teacher" in capsys.readouterr().err
    assert json.loads((tmp_path / "results" / "superseded" / path.name).read_text())["teacher"] == row_r["teacher"]
    row2 = json.loads(path2.read_text())
    assert row2["teacher"]["key"] != row["teacher"]["key"]
    assert run_grid(other, tmp_path / "results", quiet=True, sets_dir=tmp_path / "sets") == []  # now current
    assert len(list((tmp_path / "sets").glob("*random*/track-soft*-relabel-*.json"))) == 3
    md = write_benchmarks_md(tmp_path / "results", tmp_path / "B.md").read_text()
    assert "## Soft-label track: tensors" in md and "random subset, same soft labels" in md

    def soft_reproduce() -> str:
        md = write_benchmarks_md(tmp_path / "results", tmp_path / "B.md").read_text()
        return next(line for line in md.split("## Soft-label track: tensors")[1].splitlines()
                    if line.startswith("Reproduce: "))
    # the HLR column needs the full-data reference: where a cell uses one, the command makes it too
    assert "--protocol soft" in soft_reproduce() and "--full-data" not in soft_reproduce()
    row2["soft_track"]["full_data_hard"] = 50.0
    path2.write_text(json.dumps(row2))
    # every cell here has method overrides: the reference is made by that command (it was by none)
    assert "--protocol soft --full-data --set rded.candidates=10" in soft_reproduce()


def test_cross_architecture_rows_say_when_their_columns_are_not_one_set():
    """A row's cells are one set when nothing says otherwise: different teachers (recipe key and
    weights, or test accuracy for rows without a weights digest) or different set digests say so."""
    from datadistill.bench.tables import _not_one_set, _teacher_id

    old = _teacher_id({"key": "k", "test_accuracy": 93.57})
    new = _teacher_id({"key": "k", "weights_digest": "abc", "test_accuracy": 93.43})
    assert old != new and new == _teacher_id({"key": "k", "weights_digest": "abc"})
    # one recipe key trained twice: the weights (or the test accuracy) tell the teachers apart
    assert _not_one_set({"convnet": (None, old), "mlp": (None, old), "alexnet": ("d1", new)}) == \
        "2 runs: convnet, mlp (teacher k at 93.57% test); alexnet (teacher k weights abc)"
    assert _not_one_set({"convnet": ("d1", None), "mlp": ("d2", None)}) == "2 runs: convnet (images d1); mlp (images d2)"
    assert _not_one_set({"convnet": ("d1", new), "mlp": ("d1", new)}) == ""
    assert _not_one_set({"convnet": (None, None), "mlp": ("d2", None)}) == ""  # unknown is not evidence
    # different recipes: the key alone names each teacher
    a, b = _teacher_id({"key": "18a7f44faddbeaa7", "weights_digest": "w1"}), _teacher_id({"key": "6649b1543ef14403", "weights_digest": "w2"})
    assert _not_one_set({"convnet": ("d1", a), "mlp": ("d2", b), "lenet": ("d2", b), "vgg11": (None, b)}) == \
        "2 runs: convnet (teacher 18a7f44f, images d1); mlp, lenet, vgg11 (teacher 6649b154, images d2)"


def test_a_cell_without_a_weights_digest_joins_the_newer_cells_of_the_same_training(tmp_path):
    """An older cell's teacher (no weights digest) takes the digest of a newer cell with the same
    recipe key, test accuracy and training time, so the two count as one teacher; another
    training of the recipe stays apart."""
    from datadistill.bench.tables import _load, _teacher_id

    same = {"key": "k", "test_accuracy": 93.43, "train_time_s": 1092.5}
    rows = {"old": {"evaluation": {}, "teacher": dict(same)},
            "new": {"evaluation": {}, "teacher": {**same, "weights_digest": "abc"}},
            "other": {"evaluation": {}, "teacher": {"key": "k", "test_accuracy": 93.57, "train_time_s": 824.4}}}
    for name, row in rows.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(row))
    cells, _, _ = _load(tmp_path)
    ids = [_teacher_id(c["teacher"]) for c in cells]  # sorted by file name: new, old, other
    assert ids[0] == ids[1] and ids[2] != ids[0]
    assert "weights_digest" not in cells[2]["teacher"]


def test_tune_allocator_applies_on_linux_glibc():
    import sys

    from datadistill import tune_allocator

    applied = tune_allocator()
    assert isinstance(applied, bool)  # never an exception, on any platform
    if sys.platform.startswith("linux"):
        import platform

        if platform.libc_ver()[0] == "glibc":
            assert applied and tune_allocator()  # idempotent


def test_cli_teacher_distill_and_both_soft_modes(tmp_path, capsys):
    from conftest import write_tiny_npz

    from datadistill.cli import main

    write_tiny_npz(tmp_path / "d.npz")
    data = ["--dataset", "tensors", "--data-dir", str(tmp_path / "d.npz")]
    teach = ["--teacher-cache", str(tmp_path / "t"), "--teacher-set", "epochs=3", "--teacher-set", "compile=false",
             "--teacher-set", "model_kwargs={norm: batch, width: 8}"]
    assert main(["--quiet", "teacher", *data, *teach]) == 0
    first = capsys.readouterr().out
    assert "test" in first and "validation" in first
    assert main(["--quiet", "teacher", *data, *teach]) == 0  # cached: same key, same path
    assert capsys.readouterr().out.split("->")[1] == first.split("->")[1]
    out = tmp_path / "r"
    assert main(["--quiet", "distill", *data, "--method", "rded", "--ipc", "2", "--out", str(out),
                 "--set", "candidates=10", "--set", "view_epochs=2", *teach]) == 0
    quick = ["--eval-set", "epochs=2", "--eval-set", "num_models=1", "--eval-set", "compile=false"]
    assert main(["--quiet", "evaluate", str(out), "--protocol", "soft", *quick]) == 0
    # live-teacher mode finds the set's teacher (recipe in its manifest) in the cache
    assert main(["--quiet", "evaluate", str(out), "--protocol", "soft", *quick, "--eval-set", "label_mode=teacher",
                 "--teacher-cache", str(tmp_path / "t")]) == 0
    # a view set under an augmenting protocol: a one-line error, exit 2
    assert main(["--quiet", "evaluate", str(out), "--protocol", "dsa", *quick, "--eval-set", "label_mode=soft"]) == 2
    assert "augment=none" in capsys.readouterr().err


def test_cross_architecture_table_joins_cells_from_before_the_optimizer_field():
    """Cells written before the protocol had `optimizer` / `schedule` still share a table with new
    cells of the same protocol."""
    from datadistill.bench.tables import _cross_architecture

    def cell(model, new):
        p = get_protocol("dsa", model=model).as_dict()
        if not new:
            p.pop("optimizer")
            p.pop("schedule")
        return {"dataset": "d", "method": "dm", "ipc": 10, "protocol_tag": "dsa", "labels": "hard",
                "evaluation": {"protocol": p, "per_model": [80.0, 81.0]}}

    lines = _cross_architecture([cell("convnet", new=False), cell("mlp", new=True)])
    assert "| method | convnet | mlp |" in lines


def test_view_crop_scale_auto_per_ipc():
    """view_scale_min 0 (the default) resolves per IPC; an explicit value is kept at every IPC."""
    assert get_method("rded").for_ipc(1).config.view_scale_min == 0.25
    assert get_method("sre2l").for_ipc(10).config.view_scale_min == 1.0
    assert get_method("rded", view_scale_min=0.5).for_ipc(1).config.view_scale_min == 0.5


def test_rded_candidates_auto_per_ipc_draws_the_whole_class_above_ipc_10(real, teacher):
    """candidates 0 (the default) is 300 up to IPC 10 and the whole class above; a set made with
    the auto value equals one made with candidates set to the class size."""
    from datadistill.methods.rded import ALL_CANDIDATES

    assert [get_method("rded").for_ipc(k).config.candidates for k in (1, 2, 10, 11, 50)] == \
        [300, 300, 300, ALL_CANDIDATES, ALL_CANDIDATES]
    assert [get_method("rded").for_ipc(k).config.selection for k in (1, 2, 10, 11, 50)] == \
        ["cluster", "medoid", "medoid", "cluster", "cluster"]
    assert get_method("rded", selection="medoid").for_ipc(1).config.candidates == ALL_CANDIDATES  # the class medoid
    assert get_method("rded", candidates=7).for_ipc(50).config.candidates == 7
    assert [get_method("rded").for_ipc(k).config.draws for k in (1, 2, 10, 50)] == [8, 1, 1, 1]
    assert get_method("rded", draws=3).for_ipc(1).config.draws == 3
    smallest = min(len(i) for i in real.class_index)
    auto, whole = (get_method("rded", candidates=c, soft_labels="image").select(real, 2, 0, teacher)[0]
                   for c in (ALL_CANDIDATES, smallest))
    assert torch.equal(auto, whole)
    # select() resolves the auto value itself (sre2l init=rded calls it with the unresolved config)
    default = get_method("rded", soft_labels="image").select(real, 2, 0, teacher)[0]
    assert torch.equal(default, whole)  # 300 also covers the tiny classes


def test_soft_track_on_another_architecture_compares_on_that_architecture(tmp_path, monkeypatch):
    """A cross-architecture soft cell (`--eval-set model=mlp`): its hard-label evaluations run on the
    same architecture (cached under that protocol's tag, and a stored hard `random` cell of that
    architecture is used), and no HLR is computed against the ConvNet-3 full-data reference."""
    from conftest import write_tiny_npz

    from datadistill.bench.runner import BenchGrid, protocol_tag, run_grid
    from datadistill.evaluation import ReferenceRecipe, reference_key
    from datadistill.evaluation import protocol as proto

    monkeypatch.setitem(proto.PRESETS, "dsa", proto.Protocol(epochs=3, num_models=1, compile=False))
    monkeypatch.setitem(proto.PRESETS, "soft", proto.Protocol(epochs=3, num_models=1, compile=False,
                                                               augment="none", label_mode="soft"))
    write_tiny_npz(tmp_path / "d.npz")
    common = dict(dataset="tensors", ipcs=(2,), data_dir=str(tmp_path / "d.npz"), protocol_overrides=("model=mlp",))
    [hard_random] = run_grid(BenchGrid(methods=("random",), protocol="dsa", **common), tmp_path / "results",
                             quiet=True, sets_dir=tmp_path / "sets")
    assert hard_random.name.endswith(f"__{protocol_tag('dsa', ['model=mlp'])}.json")
    grid = BenchGrid(methods=("rded",), protocol="soft", method_overrides=("rded.candidates=10", "rded.view_epochs=3"),
                     teacher_cache=str(tmp_path / "teachers"),
                     teacher_overrides=("epochs=2", "compile=false", "batch_size=32"), **common)
    # a ConvNet-3 full-data reference is there, but it is not this architecture's
    ref = tmp_path / "results" / f"reference-tensors-{reference_key(grid.load_real(), ReferenceRecipe())}.json"
    ref.write_text(json.dumps({"mean": 90.0}))
    [path] = run_grid(grid, tmp_path / "results", quiet=True, sets_dir=tmp_path / "sets")
    t = json.loads(path.read_text())["soft_track"]
    assert t["hard_same_images"]["model"] == "mlp" and t["random_soft"]["model"] == "mlp"
    assert t["hard_random"] == json.loads(hard_random.read_text())["evaluation"]
    assert t["full_data_hard"] is None and t["hlr"] is None and t["ddrs"] is None
    tag = protocol_tag("dsa", ["model=mlp"])
    assert [p.name.startswith(f"track-{tag}-hard-") for p in (tmp_path / "sets").glob("*rded*/track-*.json")] == [True]


def test_labeler_is_the_teacher_or_a_short_run_of_its_recipe_cached_beside_it(real, teacher, teacher_dir,
                                                                             monkeypatch):
    import datadistill.teachers as teachers
    from datadistill.teachers import SAME_TEACHER, labeler

    assert labeler(teacher, None, SAME_TEACHER) is teacher
    assert labeler(teacher, None, TINY_TEACHER.epochs) is teacher  # its own epochs: itself
    with pytest.raises(ValueError, match="real"):
        labeler(load_teacher(teacher.info["path"], real), None, 2)
    with pytest.raises(ConfigError, match="label_epochs"):
        labeler(teacher, real, -2)
    short = labeler(teacher, real, 2)
    assert short.recipe == dataclasses.replace(TINY_TEACHER, epochs=2)
    assert short.info["key"] != teacher.info["key"]
    assert short.info["weights_digest"] != teacher.info["weights_digest"]
    assert labeler(teacher, real, 2) is short  # kept on the teacher: many draws train it once
    # cached beside the teacher: a fresh copy of the teacher loads it instead of training
    monkeypatch.setattr(teachers, "train_teacher", lambda *a, **k: pytest.fail("trained the labeler again"))
    again = labeler(load_teacher(teacher.info["path"], real), real, 2)
    assert again.info["path"].startswith(str(teacher_dir))
    assert again.info["weights_digest"] == short.info["weights_digest"]


def test_relabel_at_ipc_1_uses_a_short_run_labeler_and_records_it(real, teacher):
    """label_epochs 0 (auto) is a short run of the teacher's recipe at IPC 1 and the teacher above;
    the images stay the teacher's choice, the labels change, and the set records both networks."""
    from datadistill.bench.runner import config_before_fields
    from datadistill.methods import METHODS
    from datadistill.methods._decoupled import RelabelConfig, method_label_epochs

    [(_, ipc1_epochs)] = RelabelConfig.AUTO_LABELER
    [(_, sre2l_ipc1), (_, sre2l_ipc10)] = METHODS.get("sre2l").Config.AUTO_LABELER
    assert sre2l_ipc1 != ipc1_epochs  # sre2l chose its own (validation screen in sre2l.py)
    assert get_method("rded").for_ipc(1).config.label_epochs == ipc1_epochs
    assert get_method("sre2l").for_ipc(1).config.label_epochs == sre2l_ipc1
    assert get_method("rded").for_ipc(10).config.label_epochs == -1
    assert [get_method("sre2l").for_ipc(i).config.label_epochs for i in (2, 10, 11, 50)] == \
        [sre2l_ipc10, sre2l_ipc10, -1, -1]
    assert get_method("rded", label_epochs=3).for_ipc(10).config.label_epochs == 3
    assert get_method("sre2l", label_epochs=-1).for_ipc(1).config.label_epochs == -1
    # `datadistill relabel` picks the stored set's method's auto value; RelabelConfig's for any other
    assert [method_label_epochs(m, 1) for m in ("rded", "sre2l", "random", "dm", "no-such")] == \
        [ipc1_epochs, sre2l_ipc1, ipc1_epochs, ipc1_epochs, ipc1_epochs]
    assert [method_label_epochs(m, 10) for m in ("rded", "sre2l", "random")] == [-1, sre2l_ipc10, -1]
    # cells stored before the field were labelled by the teacher: stale where the auto value is a labeler
    assert config_before_fields("rded", 1)["label_epochs"] == -1 and config_before_fields("rded", 1)["draws"] == 1
    assert config_before_fields("sre2l", 1)["label_epochs"] == -1

    opts = dict(candidates=12, view_epochs=2, draws=1)
    short = get_method("rded", **opts).distill(real, 1, seed=0, teacher=teacher)
    own = get_method("rded", label_epochs=-1, **opts).distill(real, 1, seed=0, teacher=teacher)
    assert torch.equal(short.images, own.images)
    assert not torch.allclose(short.labels, own.labels)
    assert not torch.equal(short.views["view_logits"], own.views["view_logits"])
    assert short.meta["teacher"]["key"] == own.meta["teacher"]["key"] == teacher.info["key"]
    assert short.meta["labeler"]["recipe"]["epochs"] == ipc1_epochs and "labeler" not in own.meta
    assert short.config["label_epochs"] == ipc1_epochs and own.config["label_epochs"] == -1


def test_bench_cell_with_a_labeler_labels_the_random_subset_alike_and_reports_it(tmp_path, monkeypatch):
    from conftest import write_tiny_npz

    from datadistill.bench.runner import BenchGrid, run_grid
    from datadistill.bench.tables import write_benchmarks_md
    from datadistill.evaluation import protocol as proto
    from datadistill.methods._decoupled import RelabelConfig

    [(_, ipc1_epochs)] = RelabelConfig.AUTO_LABELER  # rded's

    monkeypatch.setitem(proto.PRESETS, "dsa", proto.Protocol(epochs=2, num_models=1, compile=False))
    monkeypatch.setitem(proto.PRESETS, "soft", proto.Protocol(epochs=2, num_models=1, compile=False,
                                                               augment="none", label_mode="soft"))
    labelled_by = []
    import datadistill.methods._decoupled as dec

    original = dec.relabel_set  # soft_track imports it when it runs: the random subset's goes through the spy

    def spy(syn, teacher, cfg, **kw):
        out = original(syn, teacher, cfg, **kw)
        labelled_by.append((syn.method, out.meta.get("labeler", {}).get("key")))
        return out

    monkeypatch.setattr(dec, "relabel_set", spy)
    write_tiny_npz(tmp_path / "d.npz")
    grid = BenchGrid(dataset="tensors", methods=("rded",), ipcs=(1,), protocol="soft",
                     data_dir=str(tmp_path / "d.npz"),
                     method_overrides=("rded.candidates=10", "rded.view_epochs=2", "rded.draws=1"),
                     teacher_cache=str(tmp_path / "teachers"),
                     teacher_overrides=("epochs=2", "compile=false", "batch_size=32"))
    [path] = run_grid(grid, tmp_path / "results", quiet=True, sets_dir=tmp_path / "sets")
    row = json.loads(path.read_text())
    assert row["labeler"]["recipe"]["epochs"] == ipc1_epochs
    assert row["labeler"]["key"] != row["teacher"]["key"]
    # the random subset of the track is labelled by the same labeler as the set
    assert ("random", row["labeler"]["key"]) in labelled_by
    assert len(list((tmp_path / "teachers").iterdir())) == 2  # the labeler is cached beside the teacher
    md = write_benchmarks_md(tmp_path / "results", tmp_path / "B.md").read_text()
    assert f"Labeler `{row['labeler']['key']}`" in md and "It labelled: rded (" in md


def test_a_teacher_whose_batch_norm_never_trained_is_refused(real, teacher, tmp_path):
    """A cached teacher or labeler trained in evaluation mode (batch norm on its initial running
    statistics, which a bug before 3b9d68b could cause) is refused with a way out, not used."""
    import shutil

    from safetensors.torch import load_file, save_file

    d = tmp_path / "t"
    shutil.copytree(teacher.info["path"], d)
    state = load_file(str(d / "weights.safetensors"))
    tracked = [k for k in state if k.endswith("num_batches_tracked")]
    assert tracked and all(int(state[k]) > 0 for k in tracked)  # a teacher trained in training mode
    load_teacher(d, real)
    state[tracked[0]] = torch.zeros_like(state[tracked[0]])
    save_file(state, str(d / "weights.safetensors"))
    with pytest.raises(FormatError, match="never saw a training batch"):
        load_teacher(d, real)


def test_a_labeler_trained_after_its_compiled_teacher_trains_its_batch_norm(real, tmp_path):
    """In one process: a compiled teacher is trained, then used (`logits` leaves it in evaluation
    mode), then a short labeler of its recipe is trained and cached. The labeler's batch norm must
    train on batch statistics (before 3b9d68b it ran on the teacher's mode: 0 batches tracked)."""
    from datadistill.teachers import labeler

    recipe = TINY_TEACHER.replace(compile=True, epochs=3, model_kwargs=(("norm", "batch"), ("width", 6)))
    teacher = get_teacher(real, recipe, cache_dir=tmp_path)
    teacher.logits(real.test.x[:8])
    assert not teacher.model.training
    short = labeler(teacher, real, 1)
    norms = [m for m in short.model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(int(m.num_batches_tracked) > 0 for m in norms)
    load_teacher(short.info["path"], real)  # its cached copy loads
