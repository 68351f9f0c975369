"""The evaluation protocol on tiny data: result fields, label modes, learned lr, splits, errors."""
from __future__ import annotations

import pytest
import torch

from datadistill import SyntheticSet, evaluate
from datadistill.errors import ConfigError
from datadistill.evaluation import Protocol, full_data_reference, get_protocol, ReferenceRecipe
from datadistill.evaluation.train import fit, soft_cross_entropy


def real_subset(real, ipc=3, soft=False) -> SyntheticSet:
    idx = torch.cat([i[:ipc] for i in real.class_index])
    labels = real.train.y[idx]
    if soft:
        labels = torch.full((len(idx), real.num_classes), 1.0 / real.num_classes)  # uninformative
    return SyntheticSet(images=real.train.x[idx], labels=labels, dataset=real.name, class_names=real.class_names,
                        mean=real.mean, std=real.std, ipc=ipc, method="random")


FAST = dict(epochs=30, num_models=2, compile=False, model_kwargs={"width": 16})


def test_evaluate_learns_tiny_task(tiny_real):
    r = evaluate(real_subset(tiny_real), tiny_real, "dsa", **FAST)
    assert len(r.per_model) == 2 and len(r.per_class) == tiny_real.num_classes
    assert r.mean > 60  # 4 classes: chance is 25
    assert r.split == "test" and r.protocol["epochs"] == 30 and r.labels == "hard"
    assert r.train_time_s > 0 and r.num_images == 12


def test_evaluate_is_deterministic(tiny_real):
    a = evaluate(real_subset(tiny_real), tiny_real, "dc", **FAST)
    b = evaluate(real_subset(tiny_real), tiny_real, "dc", **FAST)
    assert a.per_model == b.per_model


def test_evaluation_resumes_model_by_model(tiny_real):
    """Models finished before an interruption are not trained again, and the result is the
    uninterrupted one: each model is seeded by its index, whatever ran before it."""
    opts = dict(FAST, num_models=3, epochs=10)
    records = []
    full = evaluate(real_subset(tiny_real), tiny_real, "dsa", on_model=records.append, **opts)
    assert [r["accuracy"] for r in records] == full.per_model
    again = []
    resumed = evaluate(real_subset(tiny_real), tiny_real, "dsa", finished=records[:2], on_model=again.append, **opts)
    assert len(again) == 1 and resumed.per_model == full.per_model and resumed.per_class == full.per_class
    with pytest.raises(ConfigError, match="finished models"):
        evaluate(real_subset(tiny_real), tiny_real, "dsa", finished=records * 2, **opts)


class _Killed(Exception):
    pass


@pytest.mark.parametrize("optimizer,soft,dsa", [("sgd", False, True), ("adamw", True, False)])
def test_fit_resumes_from_its_checkpoint_bit_for_bit(tiny_real, tmp_path, optimizer, soft, dsa):
    """A run killed after epoch 3 of 6 resumes from its checkpoint (weights, optimiser, generator)
    and ends with the weights of an uninterrupted run, bit for bit; the checkpoint stays for the
    caller, and a checkpoint of another run is refused with a one-line error."""
    from datadistill.augment import DSAConfig
    from datadistill.evaluation.train import FitCheckpoint
    from datadistill.models import get_model

    x, y = tiny_real.train.x[:40], tiny_real.train.y[:40]
    if soft:
        y = torch.softmax(torch.randn(len(y), tiny_real.num_classes, generator=torch.Generator().manual_seed(1)), 1)

    def run(checkpoint=None, kill_after=None, epochs=6):
        torch.manual_seed(0)
        model = get_model("convnet", channels=tiny_real.channels, num_classes=tiny_real.num_classes,
                          image_size=tiny_real.image_shape[1:], width=8)

        def on_epoch(e, _loss):
            if kill_after is not None and e + 1 == kill_after:
                raise _Killed

        r = fit(model, x, y, epochs=epochs, lr=0.01, generator=torch.Generator().manual_seed(3), batch_size=16,
                optimizer=optimizer, schedule="cosine" if soft else "step", dsa=DSAConfig() if dsa else None,
                precision="fp32", compile=False, temperature=4.0, on_epoch=on_epoch, checkpoint=checkpoint)
        return model, r

    whole, r_whole = run()
    ck = FitCheckpoint(tmp_path / "m.ckpt", every_s=0)  # every epoch
    with pytest.raises(_Killed):
        run(ck, kill_after=3)
    assert ck.path.is_file()
    resumed, r = run(ck)
    assert r.resumed_at == 3 and r.earlier_s > 0 and r.steps == r_whole.steps
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert ck.path.is_file()  # the caller removes it
    again, r = run(ck)  # a finished run's checkpoint: nothing left to train
    assert r.resumed_at == 6 and all(torch.equal(a, b) for a, b in zip(whole.parameters(), again.parameters()))
    with pytest.raises(ConfigError, match="another training run .*epochs") as err:
        run(ck, epochs=7)
    assert "\n" not in str(err.value)
    ck.path.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="not a training checkpoint"):
        run(ck)


def test_evaluation_resumes_inside_a_model_from_its_checkpoint(tiny_real, tmp_path, monkeypatch):
    """An evaluation killed in the middle of its second model resumes that model at its last written
    epoch (not from the start) and gives the uninterrupted result; each model's checkpoint goes once
    its record is kept."""
    import importlib

    ev = importlib.import_module("datadistill.evaluation.evaluate")
    opts = dict(FAST, num_models=2, epochs=8)
    full = evaluate(real_subset(tiny_real), tiny_real, "dsa", **opts)
    original, records = ev.FitCheckpoint, []
    monkeypatch.setattr(ev, "FitCheckpoint", lambda path: original(path, every_s=0))
    epochs_run = []

    def progress(done, total):
        epochs_run.append(done)
        if done == 8 + 5 and len(records) == 1 and not resumed_once:
            raise _Killed

    resumed_once = False
    with pytest.raises(_Killed):
        evaluate(real_subset(tiny_real), tiny_real, "dsa", on_model=records.append, progress=progress,
                 checkpoints=tmp_path / "cell", **opts)
    assert len(records) == 1 and not (tmp_path / "cell.model0.ckpt").exists()
    assert (tmp_path / "cell.model1.ckpt").is_file()
    resumed_once, epochs_run[:] = True, []
    r = evaluate(real_subset(tiny_real), tiny_real, "dsa", finished=list(records), on_model=records.append,
                 progress=progress, checkpoints=tmp_path / "cell", **opts)
    assert r.per_model == full.per_model and r.per_class == full.per_class
    # the kept work first, in one call (model 1 and epochs 1-5 of model 2), then epochs 6-8 of model 2 only
    assert epochs_run == [13, 14, 15, 16]
    assert records[1]["resumed_at_epoch"] == 5 and not list(tmp_path.glob("*.ckpt"))


def test_evaluation_says_where_it_ran_and_rejects_bad_devices(tiny_real):
    """`device` picks where the models train; the result (and each model's record, with its CPU)
    names it. A resumed evaluation whose first models ran elsewhere names both. Bad devices are
    one-line errors."""
    opts = dict(FAST, num_models=2, epochs=5)
    records = []
    here = evaluate(real_subset(tiny_real), tiny_real, "dsa", on_model=records.append, **opts)
    explicit = evaluate(real_subset(tiny_real), tiny_real, "dsa", device="cpu", **opts)
    assert here.device == explicit.device == "cpu" and here.per_model == explicit.per_model
    assert [r["device"] for r in records] == ["cpu", "cpu"]
    from datadistill._runtime import machine, machine_text
    assert [r["machine"] for r in records] == [machine_text(machine())] * 2  # which CPU trained each model
    elsewhere = [dict(records[0], device="cuda (Some GPU)")]
    mixed = evaluate(real_subset(tiny_real), tiny_real, "dsa", finished=elsewhere, **opts)
    assert mixed.device == "cuda (Some GPU) + cpu" and mixed.per_model == here.per_model
    for bad, msg in (("gpu0", "unknown device 'gpu0'"), ("meta", "only cpu and cuda")):
        with pytest.raises(ConfigError, match=msg):
            evaluate(real_subset(tiny_real), tiny_real, "dsa", device=bad, **opts)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="sees no CUDA device"):
            evaluate(real_subset(tiny_real), tiny_real, "dsa", device="cuda", **opts)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_evaluation_on_cuda_matches_the_cpu(tiny_real):
    """The same models, batches and augmentation draws on a GPU: hard labels with DSA, stored soft
    labels, and data already on the device. Only rounding differs, so accuracies agree closely."""
    opts = dict(FAST, num_models=2, epochs=20)
    cpu = evaluate(real_subset(tiny_real), tiny_real, "dsa", **opts)
    gpu = evaluate(real_subset(tiny_real), tiny_real, "dsa", device="cuda", **opts)
    assert gpu.device.startswith("cuda (") and cpu.device == "cpu"
    assert abs(gpu.mean - cpu.mean) < 10
    on_device = evaluate(real_subset(tiny_real), tiny_real.to("cuda"), "dsa", **opts)
    assert on_device.device == gpu.device
    soft = real_subset(tiny_real)
    soft.labels = torch.nn.functional.one_hot(soft.labels, tiny_real.num_classes).float()
    s_cpu = evaluate(soft, tiny_real, "dc", label_mode="soft", temperature=4.0, **opts)
    s_gpu = evaluate(soft, tiny_real, "dc", label_mode="soft", temperature=4.0, device="cuda", **opts)
    assert abs(s_gpu.mean - s_cpu.mean) < 10


def test_soft_labels_used_only_in_soft_mode(tiny_real):
    """Uniform soft labels carry no information: soft-mode training cannot learn, hard-mode
    training on the argmax of the same set ignores them."""
    syn = real_subset(tiny_real, soft=True)
    soft = evaluate(syn, tiny_real, "dc", label_mode="soft", **FAST)
    assert soft.labels == "soft"
    assert soft.mean < 50
    with pytest.raises(ConfigError, match="hard labels"):
        evaluate(real_subset(tiny_real), tiny_real, "dc", label_mode="soft", **FAST)


def test_learned_lr_honoured_only_when_asked(tiny_real):
    syn = real_subset(tiny_real)
    with pytest.raises(ConfigError, match="learned lr"):
        evaluate(syn, tiny_real, "dc", use_learned_lr=True, **FAST)
    syn.lr = torch.tensor([0.0])  # a zero learning rate: nothing is learned
    frozen = evaluate(syn, tiny_real, "dc", use_learned_lr=True, **FAST)
    normal = evaluate(syn, tiny_real, "dc", **FAST)
    assert frozen.mean < normal.mean


def test_validation_split_and_bad_split(tiny_real):
    r = evaluate(real_subset(tiny_real), tiny_real, "dc", split="val", **FAST)
    assert r.split == "val"
    with pytest.raises(ConfigError):
        evaluate(real_subset(tiny_real), tiny_real, "dc", split="train", **FAST)


def test_mismatched_set_rejected(tiny_real):
    syn = real_subset(tiny_real)
    syn.dataset = "other"
    with pytest.raises(ConfigError, match="other"):
        evaluate(syn, tiny_real, "dc", **FAST)


def test_protocol_presets_and_validation():
    assert get_protocol("dc").epochs == 300 and get_protocol("dc").augment == "none"
    assert get_protocol("dsa").epochs == 1000 and get_protocol("dsa").augment == "dsa"
    with pytest.raises(ConfigError, match="unknown protocol"):
        get_protocol("nope")
    with pytest.raises(ConfigError, match="unknown config key"):
        get_protocol("dc", epoch=3)
    with pytest.raises(ConfigError):
        get_protocol("dc", epochs=0)
    with pytest.raises(ConfigError):
        Protocol(augment="mixup")  # type: ignore[arg-type]
    assert get_protocol("dc", epochs="12").epochs == 12  # strings from --eval-set are parsed


def test_min_batches_shrinks_the_batch_of_a_small_set(tiny_real, monkeypatch):
    p = Protocol(batch_size=10, min_batches=10)
    assert [p.batch_for(n) for n in (1, 10, 15, 100, 500)] == [1, 1, 2, 10, 10]
    assert Protocol(batch_size=256).batch_for(10) == 10  # min_batches 1: the usual batch
    with pytest.raises(ConfigError, match="min_batches"):
        Protocol(min_batches=0)
    import sys

    ev = sys.modules["datadistill.evaluation.evaluate"]
    seen = []
    real_fit = ev.fit
    monkeypatch.setattr(ev, "fit", lambda *a, **k: (seen.append(k["batch_size"]), real_fit(*a, **k))[1])
    syn = real_subset(tiny_real)
    evaluate(syn, tiny_real, "dc", **{**FAST, "batch_size": 256, "min_batches": 4})
    assert seen == [-(-len(syn.images) // 4)] * FAST["num_models"]


def test_compiled_bf16_matches_eager_closely(tiny_real):
    """The fast path (torch.compile) computes the same training as eager code."""
    from datadistill.models import get_model

    x, y = tiny_real.train.x[:16], tiny_real.train.y[:16]
    outs = []
    for compile in (False, True):
        torch.manual_seed(0)
        m = get_model("convnet", channels=1, num_classes=4, image_size=(12, 12), width=8)
        fit(m, x, y, epochs=3, lr=0.01, generator=torch.Generator().manual_seed(0), precision="fp32", compile=compile)
        outs.append(torch.cat([p.detach().flatten() for p in m.parameters()]))
    assert torch.allclose(outs[0], outs[1], atol=1e-4)


def test_memory_formats_train_the_same_model(tiny_real):
    """channels_last changes only the rounding: the same seed trains to the same weights, and the
    model comes back contiguous."""
    from datadistill.models import get_model

    x, y = tiny_real.train.x[:16], tiny_real.train.y[:16]
    outs = []
    for fmt in ("contiguous", "channels_last"):
        torch.manual_seed(0)
        m = get_model("convnet", channels=1, num_classes=4, image_size=(12, 12), width=8)
        w = m.features[4].weight  # (8, 8, 3, 3): its layout tells the two formats apart
        layouts = []
        fit(m, x, y, epochs=3, lr=0.01, generator=torch.Generator().manual_seed(0), precision="fp32",
            compile=False, memory_format=fmt,
            on_epoch=lambda e, loss: layouts.append(w.is_contiguous(memory_format=torch.channels_last)))
        assert layouts == [fmt == "channels_last"] * 3  # trained in the format asked for
        assert all(p.is_contiguous() for p in m.parameters())
        outs.append(torch.cat([p.detach().flatten() for p in m.parameters()]))
    torch.manual_seed(0)
    init = torch.cat([p.detach().flatten() for p in get_model("convnet", channels=1, num_classes=4,
                                                                image_size=(12, 12), width=8).parameters()])
    assert not torch.allclose(outs[0], init, atol=1e-3)  # it trained
    assert torch.allclose(outs[0], outs[1], atol=1e-5)


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_fused_optimizer_trains_the_same_model(tiny_real, monkeypatch, optimizer):
    """fit's default is the optimiser's fused kernel; `fused_optimizer=False` leaves PyTorch its
    per-tensor loop. Both make the same update, only the rounding differs, so the two models compute
    the same function. (Not the same weights under AdamW: a conv bias before a norm layer has a zero
    gradient up to rounding noise, which AdamW's normalised step turns into lr-sized moves; the norm
    cancels them.)"""
    from datadistill.models import get_model

    name = {"sgd": "SGD", "adamw": "AdamW"}[optimizer]
    base, asked = getattr(torch.optim, name), []

    class Spy(base):
        def __init__(self, *args, **kwargs):
            asked.append(kwargs.get("fused"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(torch.optim, name, Spy)
    x, y = tiny_real.train.x[:16], tiny_real.train.y[:16]

    def trained(fused_optimizer: bool | None) -> torch.Tensor:
        torch.manual_seed(0)
        m = get_model("convnet", channels=1, num_classes=4, image_size=(12, 12), width=8)
        if fused_optimizer is not None:
            fit(m, x, y, epochs=3, lr=0.01, generator=torch.Generator().manual_seed(0), precision="fp32",
                compile=False, optimizer=optimizer, fused_optimizer=fused_optimizer)
        with torch.no_grad():
            return m.eval()(x)

    fused, loop, init = trained(True), trained(False), trained(None)
    assert asked == [True, None]  # None: PyTorch's own choice, the loop on the CPU
    assert not torch.allclose(fused, init, atol=1e-2)  # it trained
    assert torch.allclose(fused, loop, atol=1e-5)


def test_memory_format_is_recorded_and_checked(tiny_real):
    seen = []
    evaluate(real_subset(tiny_real), tiny_real, "dc", on_model=seen.append, **FAST)
    assert {r["memory_format"] for r in seen} == {"contiguous"}
    assert {r["optimizer_kernel"] for r in seen} == {"fused"}
    seen.clear()
    evaluate(real_subset(tiny_real), tiny_real, "dc", on_model=seen.append, memory_format="channels_last",
             fused_optimizer=False, **FAST)
    assert {r["memory_format"] for r in seen} == {"channels_last"}
    assert {r["optimizer_kernel"] for r in seen} == {"loop"}
    with pytest.raises(ConfigError, match="memory_format"):
        evaluate(real_subset(tiny_real), tiny_real, "dc", memory_format="nhwc", **FAST)


def test_soft_cross_entropy_equals_ce_for_one_hot():
    logits = torch.randn(5, 3)
    y = torch.tensor([0, 1, 2, 1, 0])
    onehot = torch.nn.functional.one_hot(y, 3).float()
    assert torch.allclose(soft_cross_entropy(logits, onehot), torch.nn.functional.cross_entropy(logits, y))


def test_full_data_reference_is_cached(tiny_real, tmp_path):
    recipe = ReferenceRecipe(epochs=2, augment="none", compile=False)
    from datadistill.evaluation import reference as ref_mod

    a = full_data_reference(tiny_real, recipe, cache_dir=tmp_path)
    files = list(tmp_path.glob("reference-*.json"))
    assert len(files) == 1 and a["n_train"] == len(tiny_real.train)
    calls = []
    orig = ref_mod.train_eval_models
    ref_mod.train_eval_models = lambda *a, **k: calls.append(1) or orig(*a, **k)
    try:
        b = full_data_reference(tiny_real, recipe, cache_dir=tmp_path)
    finally:
        ref_mod.train_eval_models = orig
    assert calls == [] and b == a


def test_exact_fp32_turns_tf32_off_on_cuda_only_and_restores():
    from datadistill._runtime import exact_fp32

    flags = lambda: (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    before = flags()
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    try:
        with exact_fp32("cuda"):
            assert flags() == (False, False)
        assert flags() == (True, True)
        with exact_fp32("cuda", enabled=False), exact_fp32("cpu"):
            assert flags() == (True, True)
        with pytest.raises(RuntimeError), exact_fp32("cuda"):
            raise RuntimeError("boom")
        assert flags() == (True, True)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def test_compiled_step_is_not_tied_to_the_first_model_mode():
    """The compiled training step is cached per architecture; a model of that architecture left in
    evaluation mode after its own training (as `Teacher.logits` leaves a teacher) must not make a
    later model of the same architecture train in evaluation mode (batch norm on running statistics)."""
    from datadistill.models.convnet import ConvNet

    def net(seed: int) -> ConvNet:
        torch.manual_seed(seed)
        return ConvNet(1, 10, (8, 8), depth=1, width=7, norm="batch")  # width 7: a cache entry of its own

    x, y = torch.rand(20, 1, 8, 8), torch.arange(20) % 10
    first = net(0)
    fit(first, x, y, epochs=1, batch_size=10, precision="fp32", compile=True, lr=0.01,
        generator=torch.Generator().manual_seed(0))
    first.eval()
    second = net(1)
    fit(second, x, y, epochs=1, batch_size=10, precision="fp32", compile=True, lr=0.01,
        generator=torch.Generator().manual_seed(0))
    bn = next(m for m in second.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert int(bn.num_batches_tracked) == 2  # both steps ran batch norm in training mode
    eager = net(1)
    fit(eager, x, y, epochs=1, batch_size=10, precision="fp32", compile=False, lr=0.01,
        generator=torch.Generator().manual_seed(0))
    for (name, a), b in zip(second.state_dict().items(), eager.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-5), name
    assert not first.training  # the caller's mode is left alone


def test_predict_hands_the_model_back_in_its_mode():
    """`predict` runs in evaluation mode and restores the caller's mode: a model kept in evaluation
    mode (a teacher) is not switched to training, where batch norm would move its statistics."""
    from datadistill.evaluation.train import predict
    from datadistill.models.convnet import ConvNet

    model = ConvNet(1, 10, (8, 8), depth=1, width=4, norm="batch")
    x = torch.rand(6, 1, 8, 8)
    model.eval()
    predict(model, x, precision="fp32")
    assert not model.training
    model.train()
    predict(model, x, precision="fp32")
    assert model.training
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert int(bn.num_batches_tracked) == 0  # prediction never updated the statistics
