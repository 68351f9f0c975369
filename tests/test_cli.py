"""The command line: the happy path on a tiny dataset, and every bad-input case exits 2 with one line."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest
import torch

from datadistill.cli import main
from datadistill.synthetic import SyntheticSet
from conftest import make_dm_defaults_tiny, write_tiny_npz

FAST_EVAL = ["--eval-set", "epochs=3", "--eval-set", "num_models=1", "--eval-set", "compile=false",
             "--eval-set", "model_kwargs={width: 8}"]


@pytest.fixture
def npz(tmp_path):
    p = tmp_path / "tiny.npz"
    write_tiny_npz(p)
    return p


def run(argv, capsys):
    code = main(["-q", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_distill_evaluate_show_export(tmp_path, npz, capsys):
    out = tmp_path / "run"
    code, stdout, err = run(["distill", "--dataset", "tensors", "--data-dir", str(npz), "--method", "random",
                             "--ipc", "2", "--out", str(out), "--evaluate", "--protocol", "dc", *FAST_EVAL], capsys)
    assert code == 0, err
    for f in ("synthetic.safetensors", "manifest.json", "grid.png", "report.md"):
        assert (out / f).is_file(), f
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["evaluation"]["convnet"]["protocol"]["epochs"] == 3
    code, stdout, _ = run(["evaluate", str(out), "--data-dir", str(npz), "--protocol", "dc", *FAST_EVAL,
                           "--models", "convnet,mlp"], capsys)
    assert code == 0 and "mlp" in stdout
    assert set(json.loads((out / "manifest.json").read_text())["evaluation"]) == {"convnet", "mlp"}
    code, stdout, _ = run(["evaluate", str(out), "--data-dir", str(npz), "--protocol", "dc", *FAST_EVAL,
                           "--per-class"], capsys)
    lines = stdout.strip().splitlines()
    assert code == 0 and lines[-1].startswith("convnet: ") and lines[-2].startswith("convnet per class: ")
    per_class = json.loads((out / "manifest.json").read_text())["evaluation"]["convnet"]["per_class"]
    printed = [float(part.rsplit(" ", 1)[1]) for part in lines[-2].split(": ", 1)[1].split(", ")]
    assert len(printed) == len(per_class) and printed == sorted(printed)  # every class, weakest first
    code, stdout, _ = run(["show", str(out), "--out", str(tmp_path / "g.png")], capsys)
    assert code == 0 and (tmp_path / "g.png").is_file()
    # show keeps a file it did not make: an existing --out needs --force, and --out must be a .png
    drawn = (tmp_path / "g.png").read_bytes()
    (tmp_path / "g.png").write_bytes(b"precious")
    code, _, err = run(["show", str(out), "--out", str(tmp_path / "g.png")], capsys)
    assert code == 2 and "--force" in err and err.count("\n") == 1
    assert (tmp_path / "g.png").read_bytes() == b"precious"
    (tmp_path / "keep.npz").write_bytes(b"precious")
    code, _, err = run(["show", str(out), "--out", str(tmp_path / "keep.npz")], capsys)
    assert code == 2 and "must end in .png" in err and (tmp_path / "keep.npz").read_bytes() == b"precious"
    code, _, _ = run(["show", str(out), "--out", str(tmp_path / "g.png"), "--force"], capsys)
    assert code == 0 and (tmp_path / "g.png").read_bytes() == drawn
    code, _, _ = run(["show", str(out)], capsys)  # its own grid.png in the run directory is redrawn
    assert code == 0 and (out / "grid.png").is_file()
    code, _, _ = run(["export", str(out), "--to", "npz", "--out", str(tmp_path / "s.npz")], capsys)
    assert code == 0 and (tmp_path / "s.npz").is_file()
    code, _, _ = run(["export", str(out), "--to", "folder", "--out", str(tmp_path / "imgs")], capsys)
    assert code == 0 and len(list((tmp_path / "imgs").rglob("*.png"))) == 8


def test_evaluate_models_gives_each_architecture_its_preset_values(tmp_path, npz, capsys, monkeypatch):
    import datadistill.evaluation as ev
    from datadistill.evaluation import get_protocol

    out = tmp_path / "run"
    assert run(["distill", "--dataset", "tensors", "--data-dir", str(npz), "--method", "random", "--ipc", "1",
                "--out", str(out)], capsys)[0] == 0
    seen = []

    class Result:
        def as_dict(self):
            return {"mean": 50.0, "std": 0.0, "per_model": [50.0], "train_time_s": 0.0}

    monkeypatch.setattr(ev, "evaluate", lambda syn, real, p, **kw: seen.append(p) or Result())
    code, stdout, err = run(["evaluate", str(out), "--data-dir", str(npz), "--protocol", "soft", "--split", "val",
                             "--eval-set", "num_models=1", "--models", "convnet,alexnet"], capsys)
    assert code == 0, err
    # as the bench's `--eval-set model=alexnet` does: alexnet takes its own soft values
    assert seen == [get_protocol("soft", num_models=1), get_protocol("soft", num_models=1, model="alexnet")]


def test_evaluate_architectures_gives_each_its_preset_values(monkeypatch):
    import importlib

    from datadistill.evaluation import get_protocol

    ev = importlib.import_module("datadistill.evaluation.evaluate")  # the module (the package exports the function)
    seen = []
    monkeypatch.setattr(ev, "evaluate", lambda syn, real, p, **kw: seen.append(p))
    ev.evaluate_architectures(None, None, ["convnet", "alexnet"], "soft", num_models=2)
    assert seen == [get_protocol("soft", num_models=2), get_protocol("soft", num_models=2, model="alexnet")]


def test_existing_run_dir_is_not_overwritten(tmp_path, npz, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    code, _, err = run(["distill", "--dataset", "tensors", "--data-dir", str(npz), "--method", "random",
                        "--ipc", "1", "--out", str(out)], capsys)
    assert code == 2 and "--force" in err and err.count("\n") == 1
    assert (out / "keep.txt").read_text() == "precious"
    code, _, err = run(["distill", "--dataset", "tensors", "--data-dir", str(npz), "--method", "random",
                        "--ipc", "1", "--out", str(out), "--force"], capsys)
    assert code == 0, err


@pytest.mark.parametrize("argv, needle", [
    (["distill", "--dataset", "nope", "--method", "random", "--ipc", "1", "--out", "X"], "valid: "),
    (["distill", "--dataset", "tensors", "--method", "nope", "--ipc", "1", "--out", "X"], "unknown method 'nope'"),
    (["distill", "--dataset", "tensors", "--method", "random", "--ipc", "0", "--out", "X"], "ipc"),
    (["distill", "--dataset", "tensors", "--method", "random", "--ipc", "1", "--out", "X", "--set", "bogus=1"],
     "unknown config key 'bogus'"),
    (["distill", "--dataset", "tensors", "--method", "random", "--ipc", "1", "--out", "X", "--set", "noequals"],
     "key=value"),
    (["distill", "--dataset", "tensors", "--method", "random", "--ipc", "1", "--out", "X", "--config", "missing.yaml"],
     "missing.yaml"),
    (["distill", "--dataset", "tensors", "--method", "random", "--ipc", "1", "--out", "X", "--data-option", "bogus=1"],
     "bogus"),
    (["distill", "--dataset", "tensors", "--method", "random", "--ipc", "1", "--out", "X", "--device", "cuda"],
     "random runs on cpu"),
    (["distill", "--dataset", "tensors", "--method", "dm", "--ipc", "1", "--out", "X", "--device", "gpu0"],
     "unknown device 'gpu0'"),
    (["distill", "--dataset", "tensors", "--method", "dm", "--ipc", "1", "--out", "X", "--device", "meta"],
     "only cpu and cuda"),
    (["bench", "--dataset", "tensors", "--methods", "dm", "--ipc", "1", "--device", "gpu0"], "unknown device"),
    (["evaluate", "X", "--device", "gpu0"], "unknown device"),
    (["evaluate", "does-not-exist"], "missing"),
    (["evaluate", "X", "--protocol", "nope"], "nope"),
    (["evaluate", "X", "--eval-set", "seed=-2"], "protocol seed must be an integer from 0"),
    (["distill", "--dataset", "tensors", "--method", "random", "--ipc", "1", "--out", "X", "--seed", "-1"],
     "--seed must be an integer from 0 to 4294967295, got -1"),
    (["distill", "--dataset", "tensors", "--method", "random", "--ipc", "1", "--out", "X", "--seed", str(2**64)],
     "--seed must be an integer from 0"),
    (["relabel", "X", "--out", "Y", "--seed", "-1"], "--seed must be an integer from 0"),
    (["bench", "--dataset", "tensors", "--methods", "random", "--ipc", "x"], "--ipc expects comma-separated integers"),
    (["bench", "--dataset", "tensors", "--methods", "random", "--ipc", ","], "--ipc expects at least one integer"),
    (["bench", "--dataset", "tensors", "--methods", "random", "--ipc", "1", "--seeds", "0,x"],
     "--seeds expects comma-separated integers, got '0,x'"),
    (["bench", "--dataset", "tensors", "--methods", "random", "--ipc", "1", "--seeds", "-1"],
     "seed must be an integer from 0"),
    (["bench", "--dataset", "tensors", "--methods", "random", "--ipc", "1", "--max-cells", "-1"],
     "max_cells must be 0 or more"),
    (["show", "X", "--per-class", "0"], "--per-class and --scale must be at least 1"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, npz, capsys, monkeypatch, argv, needle):
    monkeypatch.chdir(tmp_path)
    if argv[0] in ("distill", "bench") and "nope" not in argv[2]:
        argv += ["--data-dir", str(npz)]
    if argv[1] == "X":
        from datadistill import distill, load_dataset

        distill(load_dataset("tensors", data_dir=npz), "random", 1).save(tmp_path / "X")
    before = sorted(p.name for p in tmp_path.iterdir())
    code, _, err = run(argv, capsys)
    assert code == 2
    assert needle in err
    assert err.startswith("datadistill: error:") and err.count("\n") == 1
    assert "Traceback" not in err
    if argv[0] in ("distill", "bench", "relabel"):  # refused before writing anything
        assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_list_and_console_script():
    proc = subprocess.run([sys.executable, "-m", "datadistill.cli", "list", "methods"], capture_output=True, text=True)
    assert proc.returncode == 0 and "random" in proc.stdout.split()
    proc = subprocess.run([sys.executable, "-m", "datadistill.cli", "list", "models"], capture_output=True, text=True)
    assert "convnet" in proc.stdout.split()
    proc = subprocess.run([sys.executable, "-m", "datadistill.cli", "distill", "--dataset", "nope", "--method",
                           "random", "--ipc", "1", "--out", "x"], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


@pytest.mark.parametrize("what", ["methods", "datasets", "models", "protocols"])
def test_list_long_says_one_line_about_each_name(what, capsys):
    names = run(["list", what], capsys)[1].split()
    code, out, _ = run(["list", what, "--long"], capsys)
    rows = out.splitlines()
    assert code == 0 and [r.split()[0] for r in rows] == names  # the same names, in the same order
    assert all(len(r.split(None, 1)) == 2 and len(r.split(None, 1)[1]) > 20 for r in rows), rows
    if what == "methods":
        about = dict(r.split(None, 1) for r in rows)
        assert about["dc"].startswith("gradient matching:") and "et al. 2021" in about["dc"]
        assert about["rded"].endswith("[needs_teacher, soft_labels]")
        assert not about["class-mean"].endswith("]")  # no tags, no brackets
    if what == "protocols":
        assert "1 model per cell" in out and "5 models per cell" in out


def test_a_method_without_a_summary_is_not_registered():
    from datadistill.methods.base import Method, register

    class Nameless(Method):
        name = "no-summary"

    with pytest.raises(ValueError, match="no summary"):
        register(Nameless)


def _commands() -> argparse._SubParsersAction:
    """The command line's subcommands (their parsers in `.choices`, their one-line helps in `._choices_actions`)."""
    from datadistill.cli import build_parser

    return next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))


def test_help_names_every_protocol_and_where_bench_keeps_teachers():
    from datadistill.evaluation.protocol import PRESETS

    commands = _commands()
    sub = commands.choices
    for command in ("distill", "evaluate", "bench"):
        text = " ".join(sub[command].format_help().split())
        assert all(name in text.split("protocol preset:")[1][:80] for name in PRESETS), (command, text)
    assert "'teachers' beside --results" in " ".join(sub["bench"].format_help().split())
    assert "~/.cache/datadistill/teachers" in " ".join(sub["teacher"].format_help().split())
    # the command list's line for speed names what each --what times
    line = " ".join(next(c.help for c in commands._choices_actions if c.dest == "speed").split())
    assert all(what in line for what in ("evaluation", "DM iteration", "DC / DSA outer step", "teacher")), line


def test_every_argument_of_every_command_has_a_help():
    missing = [f"{name} {a.option_strings[0] if a.option_strings else a.dest}"
               for name, parser in _commands().choices.items() for a in parser._actions
               if not a.help and a.dest != "help"]
    assert missing == []


def test_bench_grid_resumes_and_writes_markdown(tmp_path, npz, capsys):
    results = tmp_path / "results"
    md = tmp_path / "BENCHMARKS.md"
    argv = ["bench", "--dataset", "tensors", "--data-dir", str(npz), "--methods", "random,class-mean", "--ipc", "1,2",
            "--protocol", "dc", *FAST_EVAL, "--results", str(results), "--markdown", str(md)]
    code, _, err = run([*argv, "--max-cells", "3"], capsys)
    assert code == 0, err
    assert len(list(results.glob("*.json"))) == 3  # stopped midway, as a kill would
    first = {p.name: p.stat().st_mtime_ns for p in results.glob("*.json")}
    code, _, _ = run(argv, capsys)
    assert code == 0
    cells = list(results.glob("*.json"))
    assert len(cells) == 4
    assert all(first[n] == (results / n).stat().st_mtime_ns for n in first)  # done cells were skipped
    row = json.loads(cells[0].read_text())
    assert {"method", "ipc", "seed", "evaluation", "distill_wall_time_s", "storage_bytes"} <= set(row)
    assert row["distill_device"] == "cpu"
    text = md.read_text()
    assert "| random |" in text and "| class-mean |" in text and "IPC 2" in text
    assert "measured on that GPU" not in text
    # the set records the CPU its distill time was measured on; one without AMX is named in the table
    from datadistill._runtime import machine

    assert row["distill_machine"] == {**machine(), "threads": row["distill_machine"]["threads"]}
    stored = {c: c.read_text() for c in cells}
    amd = {"cpus": 2, "threads": 2, "processor": "AMD EPYC", "bf16": "avx512_bf16"}
    for recorded, marked in ((None, False), (amd, True)):  # None: a kept set made by older code
        for c in cells:  # (whatever CPU runs this test)
            mark = recorded if c == cells[1] else None
            # the cell written on another machine (16 threads, a GPU host say) than the set: the
            # mark is the set's CPU alone, "(AMD EPYC)", not "(AMD EPYC, 16 threads)"
            c.write_text(json.dumps({**json.loads(stored[c]), "distill_machine": mark, "machine": {**amd, "threads": 16}}))
        assert run([*argv, "--report-only"], capsys)[0] == 0
        text = md.read_text()
        assert (text.count("(AMD EPYC)") == 1) == marked and ("which has no AMX" in text) == marked
        # the explanation is said once, at the top; a table points to it
        assert text.count("bf16 matrix products ran at about half the speed") == marked
        assert not marked or text.index("Distill times: a time marked") < text.index("\n## ")
    for c in cells:
        c.write_text(stored[c])
    # a set distilled on a GPU: its time is marked with the GPU's name, and a note says what that means
    row["distill_device"] = "cuda (NVIDIA H200)"
    cells[0].write_text(json.dumps(row))
    code, _, _ = run([*argv, "--report-only"], capsys)
    text = md.read_text()
    assert code == 0 and "(NVIDIA H200)" in text and "measured on that GPU" in text and "--device cuda" in text
    assert "its evaluation ran on the CPU" in text and "Evaluated on the" not in text
    # ... and evaluated there: a note names the cell, and its command carries --device cuda
    row["evaluation"]["device"] = "cuda (NVIDIA H200)"
    cells[0].write_text(json.dumps(row))
    code, _, _ = run([*argv, "--report-only"], capsys)
    text = md.read_text()
    assert code == 0 and f"Evaluated on the NVIDIA H200 (`--device cuda`): {row['method']} IPC {row['ipc']}" in text
    assert "its evaluation ran on the CPU" not in text
    # ... partly (a resumed evaluation: some models on the CPU, the rest on the GPU): the note says which
    row["evaluation"]["device"] = "cpu + cuda (NVIDIA H200)"
    cells[0].write_text(json.dumps(row))
    assert run([*argv, "--report-only"], capsys)[0] == 0
    assert f"NVIDIA H200 (`--device cuda`): {row['method']} IPC {row['ipc']} (own evaluation: partly)." in md.read_text()


def test_bench_report_keeps_machines_and_seed_sets_apart(tmp_path, npz, capsys):
    """Seeds of one cell distilled on different CPUs get one mean time per CPU, not a mean across
    them under one CPU's name; each Reproduce command names only the seeds its cells hold."""
    results, md = tmp_path / "results", tmp_path / "BENCHMARKS.md"
    common = ["bench", "--dataset", "tensors", "--data-dir", str(npz), "--ipc", "1", "--protocol", "dc", *FAST_EVAL,
              "--results", str(results), "--markdown", str(md)]
    assert run([*common, "--methods", "random", "--seeds", "0,1"], capsys)[0] == 0
    assert run([*common, "--methods", "class-mean", "--seeds", "0"], capsys)[0] == 0
    amd = {"cpus": 2, "threads": 2, "processor": "AMD EPYC", "bf16": "avx512_bf16"}
    for seed, wall, where in ((0, 100.0, None), (1, 300.0, amd)):
        path = next(results.glob(f"*random*seed{seed}*.json"))
        cell = json.loads(path.read_text())
        path.write_text(json.dumps({**cell, "distill_wall_time_s": wall, "distill_machine": where}))
    assert run([*common, "--methods", "random", "--seeds", "0,1", "--report-only"], capsys)[0] == 0
    text = md.read_text()
    assert "| 100, 300 (AMD EPYC) |" in text and "| 200" not in text
    assert "--methods class-mean --ipc 1 --seeds 0 --protocol dc" in text
    assert "--methods random --ipc 1 --seeds 0,1 --protocol dc" in text
    assert "--methods class-mean,random" not in text  # class-mean has no seed 1


def test_reproduce_asks_for_the_full_data_reference_only_where_the_table_shows_it(tmp_path, npz, capsys):
    """The reference is ConvNet-3's with hard labels: a table of another architecture does not show it,
    so its Reproduce command must not train it (--full-data)."""
    results, md = tmp_path / "results", tmp_path / "BENCHMARKS.md"
    common = ["bench", "--dataset", "tensors", "--data-dir", str(npz), "--ipc", "1", "--seeds", "0", "--protocol",
              "dc", "--methods", "random", *FAST_EVAL, "--results", str(results), "--markdown", str(md)]
    assert run(common, capsys)[0] == 0
    assert run([*common, "--eval-set", "model=mlp"], capsys)[0] == 0
    (results / "reference-tensors-0.json").write_text(json.dumps({
        "dataset": "tensors", "method": "full", "n_train": 40, "recipe": {"augment": "none", "epochs": 3},
        "protocol": {"model": "convnet"}, "mean": 50.0, "std": 0.0, "per_model": [50.0], "wall_time_s": 1.0}))
    assert run([*common, "--report-only"], capsys)[0] == 0
    tables = md.read_text().split("\n## ")
    convnet = next(t for t in tables if "evaluated on convnet" in t)
    mlp = next(t for t in tables if "evaluated on mlp" in t)
    assert "| whole dataset (40 images" in convnet and "--protocol dc --full-data" in convnet
    assert "whole dataset" not in mlp and "--eval-set model=mlp" in mlp and "--full-data" not in mlp


def test_reproduce_commands_split_by_seeds_overrides_and_device():
    """The soft-label track's Reproduce line is made as the hard tables' is: one command per set of
    seeds (IPC 1 at three seeds, the rest at one) and of IPCs, per override set, and --device cuda
    where a cell ran there."""
    from datadistill.bench.tables import _reproduce_commands

    def row(method, ipc, seed, overrides=None, device="cpu"):
        return {"dataset": "d", "method": method, "ipc": ipc, "seed": seed, "method_overrides": overrides or {},
                "distill_device": device, "protocol_overrides": ["model=mlp"], "evaluation": {}}

    rows = [row(m, 1, s) for m in ("rded", "sre2l") for s in (0, 1, 2)] + [row("rded", 10, 0), row("sre2l", 50, 0)]
    rows += [row("rded", 10, 0, {"draws": 2}), row("sre2l", 10, 0, device="cuda")]
    # rded ran at IPC 10 and sre2l at 50 (seed 0): two commands, since one naming both methods and both
    # IPCs would also run rded at 50 and sre2l at 10, cells the table does not hold
    assert _reproduce_commands(rows, "d", "soft-abc") == [
        "`datadistill bench --dataset d --methods rded --ipc 10 --seeds 0 --protocol soft --eval-set model=mlp`",
        "`datadistill bench --dataset d --methods sre2l --ipc 50 --seeds 0 --protocol soft --eval-set model=mlp`",
        "`datadistill bench --dataset d --methods rded,sre2l --ipc 1 --seeds 0,1,2 --protocol soft --eval-set model=mlp`",
        "`datadistill bench --dataset d --methods sre2l --ipc 10 --seeds 0 --protocol soft --eval-set model=mlp "
        "--device cuda`",
        "`datadistill bench --dataset d --methods rded --ipc 10 --seeds 0 --protocol soft --eval-set model=mlp "
        "--set rded.draws=2`"]
    # methods that ran at the same IPCs share one command
    assert _reproduce_commands([row(m, k, 0) for m in ("rded", "sre2l") for k in (10, 50)], "d", "soft-abc") == [
        "`datadistill bench --dataset d --methods rded,sre2l --ipc 10,50 --seeds 0 --protocol soft --eval-set model=mlp`"]

    # --full-data (the references) on one command: the first default-config one, else one on the CPU
    def with_reference(rows):
        return [i for i, c in enumerate(_reproduce_commands(rows, "d", "soft-abc", True)) if "--full-data" in c]
    assert with_reference(rows) == [0]
    assert with_reference([row("rded", 10, 0, device="cuda"), row("rded", 10, 0, {"draws": 2})]) == [1]
    assert with_reference([row("rded", 10, 0, device="cuda")]) == [0]


def test_bench_keeps_sets_reuses_them_and_resumes_a_killed_distillation(tmp_path, npz, capsys, monkeypatch):
    import torch

    import datadistill.methods.dm as dm_mod
    from datadistill.synthetic import SyntheticSet

    results = tmp_path / "results"
    dm_opts = ["iterations=6", "checkpoint_every=2", "width=8", "batch_real=8", "compile=false", "pool_size=2"]
    argv = ["bench", "--dataset", "tensors", "--data-dir", str(npz), "--methods", "dm", "--ipc", "2",
            "--protocol", "dc", *FAST_EVAL, "--results", str(results), "--markdown", str(tmp_path / "B.md"),
            *[x for o in dm_opts for x in ("--set", f"dm.{o}")]]
    original = dm_mod.DM.iteration

    def killed(self, state, it):
        if it == 5:
            raise KeyboardInterrupt
        return original(self, state, it)

    monkeypatch.setattr(dm_mod.DM, "iteration", killed)
    code, _, _ = run(argv, capsys)
    assert code == 130 and not list(results.glob("*.json"))
    sets = list((tmp_path / "sets").iterdir())
    assert len(sets) == 1 and (sets[0] / "checkpoint.safetensors").exists()
    monkeypatch.setattr(dm_mod.DM, "iteration", original)
    code, _, err = run(argv, capsys)
    assert code == 0, err
    kept = SyntheticSet.load(sets[0])
    from datadistill import load_dataset
    from datadistill.methods import get_method

    fresh = get_method("dm", **dict(o.split("=") for o in dm_opts)).distill(load_dataset("tensors", data_dir=npz), 2, seed=0)
    assert torch.equal(kept.images, fresh.images)  # resumed bit for bit
    # a second protocol reuses the stored set instead of distilling again
    stamp = (sets[0] / "synthetic.safetensors").stat().st_mtime_ns
    code, _, err = run([*argv, "--eval-set", "model=mlp"], capsys)
    assert code == 0, err
    assert (sets[0] / "synthetic.safetensors").stat().st_mtime_ns == stamp
    rows = [json.loads(p.read_text()) for p in results.glob("*.json")]
    assert len(rows) == 2 and len({r["distill_wall_time_s"] for r in rows}) == 1
    text = (tmp_path / "B.md").read_text()
    assert "## Cross-architecture: tensors, IPC 2" in text and "| method | convnet | mlp |" in text
    # the mlp column's command, with the method's overrides, is written under the table
    assert "--methods dm --ipc 2 --protocol dc --eval-set" in text and "model=mlp --set dm." in text


def test_bench_resumes_a_killed_evaluation_model_by_model(tmp_path, npz, capsys, monkeypatch):
    """A cell killed while its third model trains keeps the two finished ones: the re-run trains one
    model and writes the result an uninterrupted run gives; the partial record goes."""
    import importlib

    ev = importlib.import_module("datadistill.evaluation.evaluate")  # the module (the package exports a function of that name)
    argv = ["bench", "--dataset", "tensors", "--data-dir", str(npz), "--methods", "random", "--ipc", "2",
            "--protocol", "dc", *FAST_EVAL, "--eval-set", "num_models=3"]  # reports beside each --results
    code, _, err = run([*argv, "--results", str(tmp_path / "whole" / "results")], capsys)
    assert code == 0, err
    [whole] = [json.loads(p.read_text()) for p in (tmp_path / "whole" / "results").glob("*.json")]
    original, calls = ev.fit, []

    def fit(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(*a, **k)

    monkeypatch.setattr(ev, "fit", fit)
    sets = tmp_path / "sets2"
    code, _, _ = run([*argv, "--results", str(tmp_path / "results"), "--sets", str(sets)], capsys)
    assert code == 130 and not list((tmp_path / "results").glob("*.json"))
    [partial] = sets.glob("*/eval-*.partial.json")
    assert len(json.loads(partial.read_text())) == 2
    calls.clear()
    code, _, err = run([*argv, "--results", str(tmp_path / "results"), "--sets", str(sets)], capsys)
    assert code == 0, err
    assert len(calls) == 1 and not partial.exists()
    [row] = [json.loads(p.read_text()) for p in (tmp_path / "results").glob("*.json")]
    assert row["evaluation"]["per_model"] == whole["evaluation"]["per_model"]


def test_speed_rejects_an_unknown_schedule_key(tmp_path, capsys):
    code, _, err = run(["speed", "--what", "dc", "--set", "lr=3", "--results", str(tmp_path)], capsys)
    assert code != 0 and "pool_size=N" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(["speed", "--what", "dm", "--set", "pool_size=3", "--results", str(tmp_path)], capsys)
    assert code != 0 and "dc|dsa" in err and len(err.strip().splitlines()) == 1


def test_speed_rounds_alternate_the_order_and_reject_a_count_below_one(tmp_path, capsys):
    from datadistill.bench.speed import alternating

    calls: list[str] = []

    def measure(name: str, value: float):
        return lambda: (calls.append(name), value + len(calls))[1]

    reported: list[tuple[str, float]] = []
    times = alternating({"a": measure("a", 0.0), "b": measure("b", 10.0), "c": measure("c", 20.0)}, 3,
                        report=lambda name, t: reported.append((name, t)))
    assert calls == ["a", "b", "c", "c", "b", "a", "a", "b", "c"]
    assert reported == [(name, len(reported[:i]) + 1 + {"a": 0, "b": 10, "c": 20}[name])
                        for i, name in enumerate(calls)]
    assert times == {"a": [1.0, 6.0, 7.0], "b": [12.0, 15.0, 18.0], "c": [23.0, 24.0, 29.0]}
    for what in ("dm", "dsa", "evaluation"):  # refused before any data loads
        code, _, err = run(["speed", "--what", what, "--rounds", "0", "--dataset", "nope", "--results", str(tmp_path)],
                           capsys)
        assert code != 0 and "rounds must be positive" in err and len(err.strip().splitlines()) == 1


def test_speed_rows_name_the_cpu_they_ran_on(tmp_path):
    from datadistill._runtime import machine, machine_text
    from datadistill.bench.tables import write_benchmarks_md

    m = machine()
    assert m["threads"] == torch.get_num_threads() and m["bf16"] in ("amx", "avx512_bf16", "none", "unknown")
    assert machine_text({"processor": "AMD EPYC", "bf16": "avx512_bf16", "threads": 2}) == \
        "AMD EPYC (AVX512-BF16, no AMX), 2 threads"
    row = {"what": "w", "setting": "s", "figures": {"x": 1}, "command": "c"}
    (tmp_path / "speed-a.json").write_text(json.dumps({**row, "what": "new", "machine": {
        "processor": "Xeon", "bf16": "amx", "threads": 2}}))
    (tmp_path / "speed-b.json").write_text(json.dumps({**row, "what": "old"}))
    text = write_benchmarks_md(tmp_path, tmp_path / "B.md").read_text()
    assert "| new | s | Xeon (AMX-BF16), 2 threads | x 1 | `c` |" in text
    assert "| old | s | not recorded | x 1 | `c` |" in text


def test_evaluation_speed_comparisons_keep_files_of_their_own(tmp_path, npz, capsys):
    results = tmp_path / "results"
    base = ["speed", "--dataset", "tensors", "--data-dir", str(npz), "--ipc", "2", "--epochs", "2",
            "--results", str(results), "--markdown", str(tmp_path / "B.md")]
    assert run([*base, "--paths", "eager-fp32,eager-bf16"], capsys)[0] == 0
    assert run([*base, "--paths", "eager-fp32,eager-bf16", "--model", "lenet", "--batch-size", "4",
                "--rounds", "2"], capsys)[0] == 0
    names = sorted(p.name for p in results.glob("speed-eval-*.json"))
    assert names == ["speed-eval-tensors-ipc2-ep2-eager-fp32+eager-bf16.json",
                     "speed-eval-tensors-ipc2-ep2-lenet-b4-eager-fp32+eager-bf16-r2.json"]
    row = json.loads((results / names[1]).read_text())
    assert "--model lenet --batch-size 4 --rounds 2" in row["command"] and "lenet" in row["what"]
    assert {"eager-fp32 train s", "eager-bf16 test acc %"} <= set(row["figures"])
    assert len(row["figures"]["eager-fp32 train s per round"]) == 2
    assert row["machine"]["threads"] == torch.get_num_threads() and "bf16" in row["machine"]
    code, _, err = run([*base, "--paths", "eager-fp32,turbo"], capsys)
    assert code != 0 and "turbo" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(["speed", "--what", "dm", "--model", "lenet", "--results", str(results)], capsys)
    assert code != 0 and "--what evaluation" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(["speed", "--what", "dc", "--optimizer", "adamw", "--results", str(results)], capsys)
    assert code != 0 and "--optimizer" in err and len(err.strip().splitlines()) == 1
    # the soft protocol's optimiser, in a file of its own
    assert run([*base, "--paths", "eager-fp32", "--optimizer", "adamw"], capsys)[0] == 0
    row = json.loads((results / "speed-eval-tensors-ipc2-ep2-eager-fp32-adamw.json").read_text())
    assert "AdamW" in row["what"] and row["command"].endswith("--optimizer adamw")


def _bench_one_cell(tmp_path, npz, capsys, **change):
    """Run one fast random cell, then change its stored row (a value None drops the key); returns
    the bench command and the results directory."""
    results = tmp_path / "results"
    base = ["bench", "--dataset", "tensors", "--data-dir", str(npz), "--methods", "random", "--ipc", "2",
            "--protocol", "dc", *FAST_EVAL, "--results", str(results), "--markdown", str(tmp_path / "B.md")]
    assert run(base, capsys)[0] == 0
    [cell] = results.glob("*.json")
    row = {**json.loads(cell.read_text()), **change}
    cell.write_text(json.dumps({k: v for k, v in row.items() if v is not None}))
    return base, results


def test_bench_stops_before_evaluating_another_set_than_its_other_cells(tmp_path, npz, capsys):
    """A set made again that differs from the one the set's cells on other architectures evaluated
    (as a teacher-made set does on another CPU type) stops the cell with a one-line error, before
    any model trains; --allow-other-set evaluates it; a cell of another method config does not count."""
    base, results = _bench_one_cell(tmp_path, npz, capsys, set_digest="0" * 12)  # as if it evaluated other images
    before = sorted(p.name for p in tmp_path.rglob("*"))
    code, _, err = run([*base, "--eval-set", "model=mlp"], capsys)
    assert code != 0 and len(err.strip().splitlines()) == 1
    assert "000000000000: dc" in err and "--allow-other-set" in err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing evaluated, nothing written
    code, _, err = run([*base, "--eval-set", "model=mlp", "--allow-other-set"], capsys)
    assert code == 0, err
    assert len(list(results.glob("*.json"))) == 2


def test_bench_reuses_a_set_from_before_a_config_field_and_keeps_a_set_when_a_new_one_differs(tmp_path, npz, capsys):
    """A stored set whose config lacks a field added since (the value it ran with) is reused, not
    distilled again; a set distilled again (its stored config differs) that is not the one the set's
    other cells evaluated stops the cell with one line and leaves the stored set as it was."""
    results = tmp_path / "results"
    base = ["bench", "--dataset", "tensors", "--data-dir", str(npz), "--methods", "herding", "--ipc", "2",
            "--protocol", "dc", *FAST_EVAL, "--results", str(results), "--markdown", str(tmp_path / "B.md"),
            "--set", "herding.space=pixel"]
    assert run(base, capsys)[0] == 0
    [set_dir] = (tmp_path / "sets").iterdir()
    manifest = json.loads((set_dir / "manifest.json").read_text())
    del manifest["config"]["embed_batch_size"]  # as if the field had been added after the set was made
    (set_dir / "manifest.json").write_text(json.dumps(manifest))
    stamp = (set_dir / "synthetic.safetensors").stat().st_mtime_ns
    code, _, err = run([*base, "--eval-set", "model=mlp"], capsys)
    assert code == 0, err
    assert (set_dir / "synthetic.safetensors").stat().st_mtime_ns == stamp  # reused, not distilled again
    manifest["config"]["embed_batch_size"] = 7  # made with another value: distilled again
    (set_dir / "manifest.json").write_text(json.dumps(manifest))
    for cell in results.glob("*.json"):  # as if the cells had evaluated other images
        cell.write_text(json.dumps({**json.loads(cell.read_text()), "set_digest": "0" * 12}))
    kept = {p.name: p.read_bytes() for p in set_dir.iterdir()}
    code, _, err = run([*base, "--eval-set", "model=lenet"], capsys)
    assert code != 0 and len(err.strip().splitlines()) == 1
    assert "distilled now and not saved" in err and "--allow-other-set" in err
    assert {p.name: p.read_bytes() for p in set_dir.iterdir()} == kept  # the stored set is as it was


def test_bench_stops_when_a_set_distilled_again_has_cells_without_a_digest(tmp_path, npz, capsys):
    """Cells written before cells recorded their set's digest cannot show which set they evaluated:
    a set on disk is taken as theirs, a set distilled again stops the cell (one line, nothing
    written) unless --allow-other-set."""
    import shutil

    base, results = _bench_one_cell(tmp_path, npz, capsys, set_digest=None)  # as written before digests
    code, _, err = run([*base, "--eval-set", "model=mlp"], capsys)  # the kept set: no check to make
    assert code == 0, err
    shutil.rmtree(tmp_path / "sets")
    before = sorted(p.name for p in results.iterdir()), (tmp_path / "B.md").read_text()
    code, _, err = run([*base, "--eval-set", "lr=0.02"], capsys)
    assert code != 0 and len(err.strip().splitlines()) == 1
    assert "recorded no set digest" in err and "dc" in err and "--allow-other-set" in err
    assert (sorted(p.name for p in results.iterdir()), (tmp_path / "B.md").read_text()) == before  # no cell
    code, _, err = run([*base, "--eval-set", "lr=0.02", "--allow-other-set"], capsys)
    assert code == 0, err
    assert len(list(results.glob("*.json"))) == 3


def test_other_sets_leaves_out_cells_of_another_config_or_set(tmp_path):
    from datadistill.bench.runner import UNRECORDED, other_sets
    from datadistill.config import config_dict
    from datadistill.methods import METHODS

    config = config_dict(METHODS.get("best-of-random")().for_ipc(1).config)
    cells = {"dsa": ("a", 0, config), "dc": ("b", 0, {**config, "candidates": config["candidates"] + 1}),
             "soft": ("c", 1, config)}
    cells["dsa-mlp"] = (None, 0, config)  # written before cells recorded their set
    for tag, (set_digest, seed, cfg) in cells.items():
        row = {"dataset": "tensors", "method": "best-of-random", "ipc": 1, "seed": seed, "protocol_tag": tag,
               "method_config": cfg, "method_overrides": {}}
        if set_digest is not None:
            row["set_digest"] = set_digest
        (tmp_path / f"tensors__best-of-random__ipc1__seed{seed}__{tag}.json").write_text(json.dumps(row))
    assert other_sets(tmp_path, "tensors", "best-of-random", 1, 0, {}, config) == {
        "a": ["dsa"], UNRECORDED: ["dsa-mlp"]}
    assert other_sets(tmp_path, "tensors", "best-of-random", 1, 0, {"candidates": "3"}, config) == {}
    # cells made with another teacher than today's are made again, so they do not hold the set back
    for tag, key in (("soft-mlp", "old"), ("soft-vgg", "new")):
        row = {"dataset": "tensors", "method": "best-of-random", "ipc": 1, "seed": 0, "protocol_tag": tag,
               "method_config": config, "method_overrides": {}, "set_digest": f"by-{key}", "teacher": {"key": key}}
        (tmp_path / f"tensors__best-of-random__ipc1__seed0__{tag}.json").write_text(json.dumps(row))
    assert other_sets(tmp_path, "tensors", "best-of-random", 1, 0, {}, config, teacher_key="new") == {
        "a": ["dsa"], "by-new": ["soft-vgg"], UNRECORDED: ["dsa-mlp"]}
    assert other_sets(tmp_path, "tensors", "best-of-random", 1, 0, {}, config)["by-old"] == ["soft-mlp"]


def test_bench_cells_with_config_overrides_are_rows_of_their_own(tmp_path, npz, capsys):
    results, md = tmp_path / "results", tmp_path / "B.md"
    argv = ["bench", "--dataset", "tensors", "--data-dir", str(npz), "--methods", "best-of-random", "--ipc", "1",
            "--protocol", "dc", *FAST_EVAL, "--results", str(results), "--markdown", str(md)]
    assert run(argv, capsys)[0] == 0
    assert run([*argv, "--set", "best-of-random.candidates=2"], capsys)[0] == 0
    text = md.read_text()
    assert "| best-of-random | " in text and "| best-of-random (candidates=2) | " in text
    assert "--set best-of-random.candidates=2" in text


def test_bench_moves_a_cell_made_with_another_config_aside_and_runs_it_again(tmp_path, npz, capsys):
    results = tmp_path / "results"
    argv = ["bench", "--dataset", "tensors", "--data-dir", str(npz), "--methods", "best-of-random", "--ipc", "1",
            "--protocol", "dc", *FAST_EVAL, "--results", str(results), "--markdown", str(tmp_path / "B.md")]
    assert run(argv, capsys)[0] == 0
    (cell,) = results.glob("*.json")
    row = json.loads(cell.read_text())
    # a key the stored cell lacks (a field added later) does not make it stale
    del row["method_config"]["candidates"]
    cell.write_text(json.dumps(row))
    stamp = cell.stat().st_mtime_ns
    assert run(argv, capsys)[0] == 0
    assert cell.stat().st_mtime_ns == stamp and not (results / "superseded").exists()
    # a changed default (here: of the method config, then of the protocol) does
    for section, key in (("method_config", "candidates"), ("evaluation", "protocol")):
        row = json.loads(cell.read_text())
        if section == "method_config":
            row[section][key] = 12345
        else:
            row[section][key]["epochs"] = 12345
        cell.write_text(json.dumps(row))
        if section == "method_config":
            # a grid stopped before the cell is made again leaves the stale cell where it was
            code, out, err = run([*argv, "--max-cells", "0"], capsys)
            assert code == 0 and "running it again" in err and "moved to" not in err
            assert json.loads(cell.read_text()) == row and not (results / "superseded").exists()
        code, out, err = run(argv, capsys)
        assert code == 0, err
        assert "moved to" in err
        fresh = json.loads(cell.read_text())
        assert fresh["method_config"]["candidates"] != 12345 and fresh["evaluation"]["protocol"]["epochs"] != 12345
    kept = sorted(p.name for p in (results / "superseded").iterdir())
    assert kept == sorted([cell.name, cell.stem + ".1.json"])  # nothing on disk is lost


def test_a_field_added_later_is_compared_with_its_declared_default(tmp_path):
    from datadistill.bench.runner import stale_cell

    cell = tmp_path / "c.json"
    cell.write_text(json.dumps({"method_config": {"a": 1}, "evaluation": {"protocol": {"epochs": 5}}}))
    defaults = {"a": 0, "b": 1}
    assert not stale_cell(cell, {"a": 1, "b": 1}, {"epochs": 5}, defaults, {})  # b at its default: old behaviour
    assert stale_cell(cell, {"a": 1, "b": 2}, {"epochs": 5}, defaults, {})  # b set otherwise: stale
    assert not stale_cell(cell, {"a": 1, "b": 2}, {"epochs": 5})  # no defaults given: not compared
    assert stale_cell(cell, {"a": 1}, {"epochs": 5, "min_batches": 10}, {}, {"min_batches": 1})
    assert stale_cell(cell, {"a": 2}, {"epochs": 5})
    # batch fields: compared by the batch they give the cell's set
    cell.write_text(json.dumps({"method_config": {}, "evaluation": {"num_images": 100,
                                                                    "protocol": {"batch_size": 10}}}))
    assert not stale_cell(cell, {}, {"batch_size": 10, "min_batches": 10}, {}, {"min_batches": 1})  # 100 / 10
    assert stale_cell(cell, {}, {"batch_size": 10, "min_batches": 20}, {}, {"min_batches": 1})  # batch 5
    # a field whose default changed what the method does (rded's draws: 8 at IPC 1): cells made
    # before it are stale where today's value differs from the one they ran with (one draw)
    import dataclasses

    from datadistill.bench.runner import config_before_fields
    from datadistill.config import config_dict
    from datadistill.methods import get_method

    assert "BEFORE_FIELD" not in {f.name for f in dataclasses.fields(get_method("rded").config)}
    for ipc, stale in ((1, True), (10, False)):
        today = config_dict(get_method("rded").for_ipc(ipc).config)
        cell.write_text(json.dumps({"method_config": {k: v for k, v in today.items() if k != "draws"},
                                    "evaluation": {"protocol": {}}}))
        assert stale_cell(cell, today, {}, config_before_fields("rded", ipc), {}) is stale


def test_evaluate_on_the_validation_split_is_kept_apart_from_test(tmp_path, npz, capsys):
    out = tmp_path / "run"
    assert run(["distill", "--dataset", "tensors", "--data-dir", str(npz), "--method", "random", "--ipc", "2",
                "--out", str(out)], capsys)[0] == 0
    code, stdout, err = run(["evaluate", str(out), "--data-dir", str(npz), "--protocol", "dc", "--split", "val",
                             *FAST_EVAL], capsys)
    assert code == 0, err
    assert "validation split" in stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["validation"]) == {"convnet"} and "evaluation" not in manifest
    assert not (out / "report.md").exists() or "validation" not in (out / "report.md").read_text()


def test_benchmarks_say_what_a_per_ipc_default_schedule_ran():
    from datadistill.bench.tables import _schedule_line
    from datadistill.config import config_dict
    from datadistill.methods import get_method

    rows = [{"method": "dsa", "ipc": k, "method_overrides": {}, "method_config": config_dict(
        get_method("dsa").for_ipc(k).config)} for k in (10, 1)]
    line = _schedule_line("dsa", rows)
    assert "IPC 1: iterations=1000, init=real, pool_size=64; IPC 10: iterations=50, init=dm, pool_size=0" in line
    assert _schedule_line("dsa (init=kmeans)", [{**rows[0], "method_overrides": {"init": "kmeans"}}]) == ""
    assert _schedule_line("kmeans", [{**rows[0], "method": "kmeans"}]) == ""  # no 'auto' fields
    dm = [{"method": "dm", "ipc": k, "method_overrides": {}, "method_config": config_dict(
        get_method("dm").for_ipc(k).config)} for k in (1, 10)]
    assert "IPC 1: init=real; IPC 10: init=kmeans " in _schedule_line("dm", dm)


def test_a_cell_made_with_an_earlier_default_is_a_row_of_its_own():
    """When a default changes (dm's start at IPC 10), the cells made before it are shown as the
    config they ran, never pooled with today's default, and reproduced with it."""
    from datadistill.bench.tables import _label, _mark_earlier_defaults
    from datadistill.config import config_dict
    from datadistill.methods import get_method

    def cell(ipc, **ran):
        cfg = config_dict(get_method("dm").for_ipc(ipc).config)
        return {"method": "dm", "ipc": ipc, "method_overrides": {}, "method_config": {**cfg, **ran}}

    old, today, other = cell(10, init="real"), cell(10), cell(1)
    lr = {**cell(10, init="real", lr_img=2.0), "method_overrides": {"lr_img": 2.0}}
    unknown = {**cell(10, init="real"), "method": "gone"}
    _mark_earlier_defaults([old, today, other, lr, unknown])
    assert (_label(old), old["earlier_default"]) == ("dm (init=real)", {"init": "kmeans"})
    assert _label(today) == _label(other) == "dm" and "earlier_default" not in today
    assert _label(lr) == "dm (init=real, lr_img=2.0)"
    assert _label(unknown) == "gone"
    missing = cell(10)
    del missing["method_config"]["init"]  # a field added since counts at the value it ran with
    _mark_earlier_defaults([missing])
    assert _label(missing) == "dm"


def test_distill_resumes_after_a_kill_during_the_init_stage(tmp_path, npz, capsys, monkeypatch):
    from datadistill.methods.dm import DM

    class Killed(Exception):
        pass

    make_dm_defaults_tiny(monkeypatch)  # the init stage runs DM with its defaults
    original, calls = DM._distill, []

    def killed_once(self, *a, **kw):
        calls.append(kw.get("resume"))
        if len(calls) == 1:
            def stop(p):
                if p.step == 3:  # after the stage's checkpoint at 2
                    raise Killed
            kw["callbacks"] = (*kw["callbacks"], stop)
        return original(self, *a, **kw)

    monkeypatch.setattr(DM, "_distill", killed_once)
    out = tmp_path / "run"
    argv = ["distill", "--dataset", "tensors", "--data-dir", str(npz), "--method", "dc", "--ipc", "2", "--out", str(out),
            "--set", "init=dm", "--set", "iterations=2", "--set", "width=8", "--set", "batch_real=8",
            "--set", "compile=false", "--set", "outer_loop=2", "--set", "inner_loop=1", "--set", "pool_size=0"]
    with pytest.raises(Killed):
        main(["-q", *argv])
    assert (out / "init" / "checkpoint.safetensors").exists() and not (out / "checkpoint.safetensors").exists()
    code, _, err = run([*argv, "--resume"], capsys)
    assert code == 0, err
    assert calls == [False, True]  # the stage went on from its own checkpoint
    assert (out / "synthetic.safetensors").exists() and (out / "init" / "synthetic.safetensors").exists()


def test_benchmark_protocol_line_states_the_small_set_batch_rule():
    from datadistill.bench.tables import _newest_protocol, protocol_line
    from datadistill.evaluation import get_protocol

    soft = get_protocol("soft").as_dict()
    old = {k: v for k, v in soft.items() if k != "min_batches"}  # a cell from before the field
    line = protocol_line(_newest_protocol([{"evaluation": {"protocol": old}}, {"evaluation": {"protocol": soft}}]))
    assert "batch 10 (at least 10 batches per epoch: smaller for sets under 100 images)" in line
    assert "batch 256," in protocol_line(get_protocol("dsa").as_dict())


def test_cross_architecture_table_joins_cells_from_before_a_new_protocol_field():
    from datadistill.bench.tables import _cross_architecture
    from datadistill.evaluation import get_protocol

    def cell(method, model, new, preset="dsa"):
        p = get_protocol(preset, model=model).as_dict()
        if not new:
            del p["min_batches"]  # written before the field existed
        return {"dataset": "d", "protocol_tag": preset if model == "convnet" else f"{preset}-1234",
                "labels": "hard" if preset == "dsa" else "soft",
                "ipc": 10, "method": method, "method_overrides": {}, "protocol_overrides": [f"model={model}"],
                "evaluation": {"protocol": p, "per_model": [50.0, 52.0], "num_images": 100}}

    text = "\n".join(_cross_architecture([cell("dm", "convnet", False), cell("dm", "mlp", True)]))
    assert text.count("## Cross-architecture") == 1 and "| dm | 51.0 ± 1.0 | 51.0 ± 1.0 |" in text, text
    # the soft preset trains 100 images with batch 10 with or without its min_batches=10: one table
    text = "\n".join(_cross_architecture([cell("rded", "convnet", False, "soft"), cell("rded", "mlp", True, "soft")]))
    assert text.count("## Cross-architecture") == 1 and "| rded | 51.0 ± 1.0 | 51.0 ± 1.0 |" in text, text


def test_cross_architecture_table_keeps_an_architecture_s_preset_values_in_the_preset_s_table():
    """A soft cell on alexnet trains at the soft preset's values for alexnet (`ARCHITECTURE_VALUES`):
    it stays a column of the soft table, with a note naming the values; a cell trained at values
    the caller chose is another protocol and another table."""
    from datadistill.bench.tables import _cross_architecture
    from datadistill.evaluation import get_protocol

    def cell(model, **overrides):
        p = get_protocol("soft", model=model, **overrides).as_dict()
        return {"dataset": "d", "protocol_tag": "soft" if model == "convnet" else "soft-1234", "labels": "soft",
                "ipc": 10, "method": "rded", "method_overrides": {}, "protocol_overrides": [f"model={model}"],
                "evaluation": {"protocol": p, "per_model": [70.0, 72.0], "num_images": 100}}

    assert cell("alexnet")["evaluation"]["protocol"]["lr"] != cell("convnet")["evaluation"]["protocol"]["lr"]
    text = "\n".join(_cross_architecture([cell("convnet"), cell("alexnet")]))
    assert text.count("## Cross-architecture") == 1 and "| method | convnet | alexnet |" in text, text
    assert "- On alexnet, rded trained at the preset's values for alexnet (lr 0.003, temperature 1;" in text, text
    text = "\n".join(_cross_architecture([cell("convnet"), cell("alexnet", lr=0.01)]))
    assert "## Cross-architecture" not in text, text  # lr 0.01 is not the preset's: no shared table


def test_cross_architecture_table_takes_an_fp32_cell_into_the_preset_s_table_with_a_note():
    """Precision is how the arithmetic runs (`EXECUTION_FIELDS`): a resnet18 cell evaluated in fp32
    fills the preset's resnet18 column, with a note; where a cell run at the preset's precision
    exists for the same method and architecture, it stands and the fp32 cell is not pooled with it."""
    from datadistill.bench.tables import _cross_architecture
    from datadistill.evaluation import get_protocol

    def cell(model, accs, **overrides):
        p = get_protocol("soft", model=model, **overrides).as_dict()
        return {"dataset": "d", "protocol_tag": "soft" if model == "convnet" and not overrides else "soft-1234",
                "labels": "soft", "ipc": 10, "method": "rded", "method_overrides": {},
                "protocol_overrides": [f"model={model}", *(f"{k}={v}" for k, v in overrides.items())],
                "evaluation": {"protocol": p, "per_model": accs, "num_images": 100}}

    text = "\n".join(_cross_architecture([cell("convnet", [70.0, 72.0]), cell("resnet18", [60.0, 62.0], precision="fp32")]))
    assert text.count("## Cross-architecture") == 1 and "| rded | 71.0 ± 1.0 | 61.0 ± 1.0 |" in text, text
    assert "- On resnet18, rded ran with precision fp32 (how the arithmetic runs" in text, text
    assert "the rest of the table with precision bf16." in text, text
    assert "--eval-set model=resnet18 --eval-set precision=fp32`" in text, text
    cells = [cell("convnet", [70.0, 72.0]), cell("convnet", [10.0, 10.0], precision="fp32"),
             cell("resnet18", [60.0, 62.0])]
    text = "\n".join(_cross_architecture(cells))
    assert "| rded | 71.0 ± 1.0 | 61.0 ± 1.0 |" in text and "precision fp32" not in text, text
    # two ways of running one architecture's cell: one fills the gap, never both pooled
    cells = [cell("convnet", [70.0, 72.0]), cell("resnet18", [60.0, 62.0], precision="fp32"),
             cell("resnet18", [10.0, 10.0, 10.0], precision="fp32", compile=False)]
    text = "\n".join(_cross_architecture(cells))
    assert "| rded | 71.0 ± 1.0 | 10.0 ± 0.0 |" in text and "ran with compile False, precision fp32 (how" in text, text
    assert "- On resnet18, rded ran with precision fp32 (how" not in text, text
    # a field that changes what is trained still makes another protocol
    text = "\n".join(_cross_architecture([cell("convnet", [70.0, 72.0]), cell("resnet18", [60.0, 62.0], epochs=10)]))
    assert "## Cross-architecture" not in text, text


def test_an_fp32_cell_is_reported_beside_its_bf16_twin():
    from datadistill.bench.tables import _execution_twin_notes
    from datadistill.evaluation import get_protocol

    def cell(accs, tag, seed=0, **overrides):
        return {"dataset": "d", "protocol_tag": tag, "labels": "hard", "ipc": 10, "seed": seed, "method": "dm",
                "method_overrides": {}, "evaluation": {"protocol": get_protocol("dsa", **overrides).as_dict(),
                                                       "per_model": accs, "num_images": 100}}

    fp32, bf16 = cell([84.6, 84.4], "dsa-5f6d", precision="fp32"), cell([84.5, 84.6], "dsa")
    notes = _execution_twin_notes([fp32], [bf16, cell([1.0, 1.0], "dsa", seed=1), fp32])
    assert notes == ["- dm IPC 10 (seed 0): 84.50 ± 0.10 with precision fp32, against 84.55 ± 0.05 under `dsa` "
                     "(precision bf16), the same model seeds; per model the two differ by -0.20 to +0.10 points."], notes
    assert _execution_twin_notes([fp32], [fp32, cell([1.0, 1.0], "dsa-77", epochs=10)]) == []  # no twin
    assert _execution_twin_notes([bf16], [bf16, fp32]) == []  # a cell run the preset's way needs no note


def test_benchmark_tables_name_cells_trained_under_earlier_values_of_their_protocol():
    """One table holds a preset's cells, and the preset's values can change between cells (as the soft
    preset's on alexnet did): the protocol line is the newest cell's, and a note names the cells
    trained otherwise. A field added later, or one that does not change training, is no change."""
    from datadistill.bench.tables import _older_protocol_notes
    from datadistill.evaluation import get_protocol

    def cell(method, **overrides):
        p = get_protocol("soft", model="alexnet").as_dict()
        p.update(overrides)
        return {"method": method, "ipc": 10, "method_overrides": {},
                "evaluation": {"protocol": p, "per_model": [70.0], "num_images": 100}}

    new = {**cell("rded"), "finished": "2026-12-02T16:00:00"}
    old = {**cell("sre2l", lr=0.001, temperature=4.0), "finished": "2026-11-30T10:00:00"}
    assert _older_protocol_notes([new, old]) == _older_protocol_notes([old, new]) == [
        "- Trained under earlier values of this protocol (lr 0.001, temperature 4; the line above gives "
        "today's): sre2l IPC 10."]
    before_field = cell("sre2l", compile=False)
    del before_field["evaluation"]["protocol"]["min_batches"]  # batch 10 either way for 100 images
    assert _older_protocol_notes([before_field, new]) == []


def test_tables_name_each_network_once_per_method_and_ipc_with_its_seeds():
    from datadistill.bench.tables import _networks_used

    lab = {"key": "k1", "weights_digest": "w1"}
    cells = [{"method": "rded", "ipc": 1, "seed": s, "method_overrides": {}, "labeler": lab} for s in (2, 0, 1)]
    cells += [{"method": "sre2l", "ipc": 10, "seed": 0, "method_overrides": {"lr": 0.1}, "labeler": lab},
              {"method": "sre2l", "ipc": 1, "seed": 0, "method_overrides": {}, "labeler": {"key": "k1", "weights_digest": "w2"}},
              {"method": "random", "ipc": 1, "seed": 0, "method_overrides": {}}]
    used = _networks_used(cells, "labeler")
    assert list(used) == [("k1", "w1"), ("k1", "w2")]
    assert used[("k1", "w1")][1] == ["rded IPC 1 (seeds 0, 1, 2)", "sre2l (lr=0.1) IPC 10 (seed 0)"]
    assert used[("k1", "w2")][1] == ["sre2l IPC 1 (seed 0)"]


def test_bench_gives_a_method_init_stage_the_grid_s_stored_set(tmp_path, npz, capsys, monkeypatch):
    """dc and dsa start from DM's set (`init=dm`): a grid that already holds it (the dm cell's set,
    or another cell's init stage) hands it over instead of distilling DM again, and the cell's
    distill time still counts DM's recorded wall time. At IPC 1, where DM's default starts from
    real images as dc's DM stage does (at IPC 2-10 the dm cell starts from k-means: not the stage)."""
    import torch

    from datadistill.methods.dm import DM
    from datadistill.synthetic import SyntheticSet

    make_dm_defaults_tiny(monkeypatch)
    original, calls = DM._distill, []

    def counted(self, *a, **kw):
        calls.append(1)
        return original(self, *a, **kw)

    monkeypatch.setattr(DM, "_distill", counted)
    results = tmp_path / "results"
    base = ["bench", "--dataset", "tensors", "--data-dir", str(npz), "--ipc", "1", "--protocol", "dc", *FAST_EVAL,
            "--results", str(results), "--markdown", str(tmp_path / "B.md")]
    small = ["iterations=1", "width=8", "batch_real=8", "compile=false", "outer_loop=1", "inner_loop=1",
             "pool_size=0", "init=dm"]
    code, _, err = run([*base, "--methods", "dm"], capsys)
    assert code == 0, err
    assert len(calls) == 1
    dm_set = SyntheticSet.load(tmp_path / "sets" / "tensors__dm__ipc1__seed0")
    code, _, err = run([*base, "--methods", "dc", *[x for o in small for x in ("--set", f"dc.{o}")]], capsys)
    assert code == 0, err
    assert len(calls) == 1  # DM did not run again
    dc_dir = next((tmp_path / "sets").glob("tensors__dc__*"))
    assert torch.equal(SyntheticSet.load(dc_dir / "init").images, dm_set.images)
    rows = {r["method"]: r for r in (json.loads(p.read_text()) for p in results.glob("*.json"))}
    assert rows["dc"]["distill_wall_time_s"] >= dm_set.meta["wall_time_s"]
    # without the dm cell, another cell's init stage serves: dsa takes dc's
    (tmp_path / "sets" / "tensors__dm__ipc1__seed0" / "manifest.json").unlink()
    code, _, err = run([*base, "--methods", "dsa", *[x for o in small for x in ("--set", f"dsa.{o}")]], capsys)
    assert code == 0, err
    assert len(calls) == 1
    dsa_dir = next((tmp_path / "sets").glob("tensors__dsa__*"))
    assert torch.equal(SyntheticSet.load(dsa_dir / "init").images, dm_set.images)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_distill_on_cuda_without_a_gpu_is_one_line_and_touches_nothing(tmp_path, npz, capsys):
    out = tmp_path / "run"
    code, _, err = run(["distill", "--dataset", "tensors", "--data-dir", str(npz), "--method", "dm", "--ipc", "1",
                        "--out", str(out), "--device", "cuda"], capsys)
    assert code == 2 and "sees no CUDA device" in err and err.count("\n") == 1
    assert not out.exists()


TINY_TEACHER_ARGS = ["--teacher-set", "epochs=2", "--teacher-set", "compile=false", "--teacher-set", "batch_size=32",
                     "--teacher-set", "model_kwargs={norm: batch, width: 8}"]


def test_relabel_labels_a_stored_set_with_its_own_methods_auto_labeler(tmp_path, npz, capsys):
    """`relabel` without label_epochs takes the stored set's method's choice: sre2l's own at IPC 1,
    RelabelConfig's for a random subset (both a short run of the teacher's recipe, cached)."""
    from datadistill.methods import METHODS
    from datadistill.methods._decoupled import RelabelConfig

    [(_, sre2l_epochs), *_] = METHODS.get("sre2l").Config.AUTO_LABELER
    [(_, other_epochs)] = RelabelConfig.AUTO_LABELER
    assert sre2l_epochs != other_epochs
    common = ["--teacher-cache", str(tmp_path / "teachers"), *TINY_TEACHER_ARGS]
    for method, extra, epochs in (("sre2l", ["--set", "iterations=2", "--set", "view_epochs=2",
                                             "--set", "label_epochs=-1"], sre2l_epochs),
                                  ("random", [], other_epochs)):
        src, out = tmp_path / method, tmp_path / f"{method}-soft"
        code, _, err = run(["distill", "--dataset", "tensors", "--data-dir", str(npz), "--method", method,
                            "--ipc", "1", "--out", str(src), *common, *extra], capsys)
        assert code == 0, err
        code, stdout, err = run(["relabel", str(src), "--out", str(out), *common, "--set", "view_epochs=2"], capsys)
        assert code == 0, err
        soft = SyntheticSet.load(out)
        assert soft.meta["labeler"]["recipe"]["epochs"] == epochs and soft.meta["relabel"]["label_epochs"] == epochs
        assert f"({epochs} epochs of the teacher's recipe)" in stdout


def test_relabel_soft_labels_a_stored_set_into_a_new_directory(tmp_path, npz, capsys):
    src, out = tmp_path / "run", tmp_path / "soft"
    code, _, err = run(["distill", "--dataset", "tensors", "--data-dir", str(npz), "--method", "random",
                        "--ipc", "2", "--out", str(src), "--evaluate", "--protocol", "dc", *FAST_EVAL], capsys)
    assert code == 0, err
    before = (src / "synthetic.safetensors").read_bytes()
    argv = ["relabel", str(src), "--out", str(out), "--teacher-cache", str(tmp_path / "teachers"), *TINY_TEACHER_ARGS,
            "--set", "view_epochs=3", "--set", "top_k=2"]
    code, stdout, err = run(argv, capsys)
    assert code == 0, err
    assert "relabelled" in stdout
    assert (src / "synthetic.safetensors").read_bytes() == before  # the source is untouched
    hard = SyntheticSet.load(src)
    soft = SyntheticSet.load(out)
    assert soft.soft_labels and not hard.soft_labels
    assert torch.equal(soft.images, hard.images) and torch.equal(soft.hard_labels, hard.hard_labels)
    assert soft.views is not None and soft.meta["relabel"]["view_epochs"] == 3
    manifest = json.loads((out / "manifest.json").read_text())
    assert "evaluation" not in manifest  # the hard-label result is not the relabelled set's
    assert manifest["relabelled_from"] == str(src.resolve())
    code, stdout, err = run(["evaluate", str(out), "--protocol", "soft", *FAST_EVAL], capsys)
    assert code == 0, err
    # a second run into the same directory is refused and leaves it as it was
    kept = (out / "synthetic.safetensors").read_bytes()
    code, _, err = run(argv, capsys)
    assert code == 2 and "--force" in err and err.count("\n") == 1
    assert (out / "synthetic.safetensors").read_bytes() == kept
    code, _, err = run([*argv[:2], "--out", str(src), *argv[4:]], capsys)
    assert code == 2 and "elsewhere" in err and err.count("\n") == 1
    code, _, err = run([*argv, "--force", "--set", "temperature=3"], capsys)
    assert code == 2 and "unknown config key 'temperature'" in err and err.count("\n") == 1


def test_report_goes_beside_other_results_and_never_replaces_another_file(tmp_path, monkeypatch, capsys):
    """Cells kept outside benchmarks/results get their report beside them: the project's
    BENCHMARKS.md, another directory's report, or a file bench did not write are never replaced."""
    monkeypatch.chdir(tmp_path)
    row = {"what": "w", "setting": "s", "figures": {"x": 1}, "command": "c"}
    for name in ("a", "b"):
        (tmp_path / "runs" / name / "results").mkdir(parents=True)
        (tmp_path / "runs" / name / "results" / "speed-x.json").write_text(json.dumps({**row, "what": name}))
    project = tmp_path / "BENCHMARKS.md"
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    code, _, err = run(["bench", "--report-only"], capsys)
    assert code == 0, err
    before = project.read_text()
    assert "JSON cells in `benchmarks/results/`" in before
    code, _, err = run(["bench", "--report-only", "--results", str(tmp_path / "benchmarks" / "results")], capsys)
    assert code == 0 and project.read_text() == before, err  # the default directory, named absolutely

    code, _, err = run(["bench", "--report-only", "--results", "runs/a/results"], capsys)
    assert code == 0, err
    report_a = tmp_path / "runs" / "a" / "BENCHMARKS.md"
    assert "| a | s |" in report_a.read_text() and "JSON cells in `results/`" in report_a.read_text()
    assert project.read_text() == before
    code, _, err = run(["bench", "--report-only", "--results", "runs/a/results"], capsys)  # its own report: rewritten
    assert code == 0, err

    text_a = report_a.read_text()
    for argv, words in (
        (["--results", "runs/b/results", "--markdown", "BENCHMARKS.md"], "report of the cells in benchmarks/results"),
        (["--results", "runs/b/results", "--markdown", "runs/a/BENCHMARKS.md"], "not ../b/results"),
        (["--markdown", "notes.md"], "not written by datadistill bench"),
    ):
        (tmp_path / "notes.md").write_text("my notes\n")
        code, _, err = run(["bench", "--report-only", *argv], capsys)
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert project.read_text() == before and report_a.read_text() == text_a
    assert (tmp_path / "notes.md").read_text() == "my notes\n"


def test_bf16_on_a_cpu_without_bf16_kernels_warns_once_in_one_line(tmp_path, npz, capsys, monkeypatch):
    import datadistill._runtime as runtime

    monkeypatch.setattr(runtime, "native_bf16", lambda device_type="cpu": False)
    out = tmp_path / "run"
    code, _, err = run(["distill", "--dataset", "tensors", "--data-dir", str(npz), "--method", "random", "--ipc", "2",
                        "--out", str(out)], capsys)
    assert code == 0 and "warning" not in err  # nothing trained: nothing to warn about
    # the dc preset trains in bf16: two architectures, two trainings, one warning of one line
    code, _, err = run(["evaluate", str(out), "--data-dir", str(npz), "--protocol", "dc", *FAST_EVAL,
                        "--models", "convnet,mlp"], capsys)
    lines = [line for line in err.splitlines() if "warning" in line]
    assert code == 0 and len(lines) == 1, err
    assert lines[0].startswith("datadistill: warning: this CPU has no bf16 kernels") and "precision=fp32" in lines[0]
    code, _, err = run(["evaluate", str(out), "--data-dir", str(npz), "--protocol", "dc", *FAST_EVAL,
                        "--models", "convnet", "--eval-set", "precision=fp32"], capsys)
    assert code == 0 and "warning" not in err, err
    monkeypatch.setattr(runtime, "native_bf16", lambda device_type="cpu": True)
    code, _, err = run(["evaluate", str(out), "--data-dir", str(npz), "--protocol", "dc", *FAST_EVAL,
                        "--models", "convnet"], capsys)
    assert code == 0 and "warning" not in err, err


def test_tables_name_the_machine_a_teacher_trained_on_when_recorded():
    from datadistill.bench.tables import _trained_on

    m = {"processor": "AMD EPYC", "bf16": "avx512_bf16", "threads": 2, "cpus": 2}
    assert _trained_on({"machine": m}).startswith(" on AMD EPYC") and "2 threads" in _trained_on({"machine": m})
    assert _trained_on({"train_time_s": 1.0}) == ""  # teachers from before the field


def test_teacher_speed_times_both_batch_norm_paths(tmp_path, npz, capsys, monkeypatch):
    import datadistill.teachers as teachers

    small = teachers.TeacherRecipe(model_kwargs=(("norm", "batch"), ("width", 8)), compile=False, batch_size=4)
    monkeypatch.setattr(teachers, "TeacherRecipe", lambda: small)
    results = tmp_path / "results"
    code, out, err = run(["speed", "--what", "teacher", "--dataset", "tensors", "--data-dir", str(npz),
                          "--iterations", "2", "--rounds", "2", "--results", str(results),
                          "--markdown", str(tmp_path / "B.md")], capsys)
    assert code == 0, err
    row = json.loads((results / "speed-teacher-tensors-s2-r2.json").read_text())
    figs = row["figures"]
    assert figs["modules ms/step"] > 0 and figs["patch-statistics ms/step"] > 0
    assert len(figs["modules ms/step per round"]) == 2
    # each path compiles its own step: the compiled-step cache tells the two models apart
    from datadistill.models import get_model
    m = get_model("convnet", channels=1, num_classes=2, image_size=(8, 8), width=4, norm="batch")
    plain = repr(m)
    m.patch_batch_norm = False
    assert repr(m) != plain and "patch_batch_norm" not in plain
    assert figs["speed-up"] == round(figs["modules ms/step"] / figs["patch-statistics ms/step"], 2)
    assert row["command"] == "datadistill speed --what teacher --dataset tensors --iterations 2 --rounds 2"
    assert "teacher training step" in (tmp_path / "B.md").read_text()
    code, _, err = run(["speed", "--what", "teacher", "--model", "lenet", "--results", str(results)], capsys)
    assert code != 0 and "--what evaluation" in err and len(err.strip().splitlines()) == 1


def test_matching_speed_rows_are_written_whole(npz, tmp_path):
    """dm and dc speed rows on tiny data: text fields are text, the figures name each path, the
    file name and the command carry the rounds."""
    from datadistill.bench.speed import dc_speed, dm_speed

    dm = dm_speed("tensors", ipc=1, straightforward_iterations=2, steady_iterations=6, data_dir=str(npz),
                  results_dir=tmp_path, quiet=True, rounds=2)
    dc = dc_speed("tensors", ipc=1, method="dc", outer_steps=3, data_dir=str(npz), results_dir=tmp_path, quiet=True)
    for row in (dm, dc):
        assert all(isinstance(row[k], str) for k in ("what", "setting", "command", "finished"))
    assert dm["what"].endswith("2 rounds (order alternating)") and dm["command"].endswith("--rounds 2")
    assert len(dm["figures"]["straightforward s/iter per round"]) == 2
    assert "ours s/outer step" in dc["figures"] and "rounds" not in dc["what"]
    assert sorted(p.name for p in tmp_path.glob("speed-*.json")) == ["speed-dc-tensors-ipc1.json",
                                                                    "speed-dm-tensors-ipc1-r2.json"]
    assert json.loads((tmp_path / "speed-dm-tensors-ipc1-r2.json").read_text()) == dm


def test_dc_speed_times_other_widths_beside_ours(npz, tmp_path, capsys, monkeypatch):
    """--widths times ours with the network at another width during distillation: its own figure
    and its speed-up over ours, its own file and command; a width that the row would not tell apart
    from ours, or any width for another --what, is one clear error."""
    from datadistill.bench import speed
    from datadistill.errors import ConfigError
    from datadistill.methods import dc as dc_module

    seen_widths = []
    iteration = dc_module.DC.iteration

    def spy(self, state, it):
        seen_widths.append(self.config.width)
        return iteration(self, state, it)

    monkeypatch.setattr(dc_module.DC, "iteration", spy)
    row = speed.dc_speed("tensors", ipc=1, method="dc", outer_steps=2, data_dir=str(npz), results_dir=tmp_path,
                         quiet=True, widths=(16,))
    figs = row["figures"]
    assert set(seen_widths) == {128, 16}  # ours ran at the reference width, the other path at 16
    ratio = figs["ours s/outer step"] / figs["ours, width 16 s/outer step"]  # of the rounded times
    assert figs["speed-up (ours / width 16)"] == pytest.approx(ratio, rel=0.02)
    assert row["command"].endswith("--widths 16") and "width 16 during distillation" in row["setting"]
    assert (tmp_path / "speed-dc-tensors-ipc1-w16.json").exists()
    with pytest.raises(ConfigError, match="other than the reference 128"):
        speed.dc_speed("tensors", ipc=1, method="dc", data_dir=str(npz), quiet=True, widths=(128,))
    results = tmp_path / "r"
    for argv, needle in ((["--what", "dm", "--widths", "64"], "--what dc|dsa"),
                         (["--what", "dc", "--widths", "6x"], "comma-separated widths")):
        code, _, err = run(["speed", *argv, "--results", str(results)], capsys)
        assert code != 0 and needle in err and len(err.strip().splitlines()) == 1
    assert not results.exists()  # nothing written for a refused command


def test_cross_architecture_row_keeps_the_seeds_every_architecture_has():
    """A second distillation seed added to the main table's convnet cell does not enter the
    cross-architecture row while the other columns hold seed 0 only: the row compares one set."""
    from datadistill.bench.tables import _cross_architecture
    from datadistill.evaluation import get_protocol

    def cell(model, seed, accs, digest):
        p = get_protocol("dsa", model=model).as_dict()
        return {"dataset": "d", "protocol_tag": "dsa" if model == "convnet" else "dsa-1234", "labels": "hard",
                "ipc": 10, "seed": seed, "method": "dsa", "method_overrides": {}, "set_digest": digest,
                "protocol_overrides": [] if model == "convnet" else [f"model={model}"],
                "evaluation": {"protocol": p, "per_model": accs, "num_images": 100}}

    cells = [cell("convnet", 0, [80.0, 82.0], "a"), cell("convnet", 1, [10.0, 10.0], "b"),
             cell("mlp", 0, [70.0, 72.0], "a")]
    text = "\n".join(_cross_architecture(cells))
    assert "| dsa | 81.0 ± 1.0 | 71.0 ± 1.0 |" in text and "not one set" not in text, text
    # with no seed in common the row shows what there is, and says so
    text = "\n".join(_cross_architecture([cells[1], cells[2]]))
    assert "| dsa | 10.0 ± 0.0 | 71.0 ± 1.0 |" in text and "not one set" in text, text
