"""Failure modes end in one clear line and a non-zero exit, and lose nothing on disk.

Each test drives the command line in-process (``racl.cli.main``) at a tiny smoke budget and
checks (a) exit code 2 (argparse's own for its choices), (b) exactly one line on stderr,
``error: ...``, naming the file or field at fault, and (c) that every file already in the
run folder is byte-for-byte what it was, and that no half-made run folder is left behind.
"""

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from racl.cli import build_parser, main
from racl.records import (CheckpointError, NonFiniteLossError, RecordError, RunDir, check_finite, read_json,
                          save_checkpoint, write_json)

# the smallest search that runs the real code path: 2-node cells, one step per epoch
SEARCH = dict(dataset="synthetic-8", max_train_images=32, batch_size=8, steps=2, multiplier=2, epochs=1,
              max_steps_per_epoch=1, eval_batches=1, power_iterations_init=1, bn_recalibration_batches=1)
TRAIN = dict(arch="DARTS_V2", dataset="synthetic-8", max_train_images=48, val_images=16, batch_size=16, epochs=1, layers=3,
             init_channels=4, attack_steps=1, val_attack_steps=1)


def _sets(d):
    out = []
    for k, v in d.items():
        out += ["--set", f"{k}={v}"]
    return out


def search_args(out, **kw):
    return ["search", "--profile", "smoke", *_sets({**SEARCH, **kw}), "--out", str(out), "--no-progress"]


def train_args(out, **kw):
    return ["train", "--profile", "smoke", *_sets({**TRAIN, **kw}), "--out", str(out), "--no-progress"]


def run_cli(capsys, args):
    """(exit code, the stderr lines) of ``python -m racl ARGS``, argparse exits included."""
    capsys.readouterr()
    try:
        rc = main([str(a) for a in args])
    except SystemExit as e:
        rc = e.code
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return rc, err


def one_error(capsys, args, *needles):
    rc, err = run_cli(capsys, args)
    assert rc == 2, (rc, err)
    assert len(err) == 1 and err[0].startswith("error: "), err
    for n in needles:
        assert str(n) in err[0], (n, err[0])
    return err[0]


def snapshot(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir())}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These networks are tiny: one thread is faster, and on a loaded machine two threads
    of OpenMP spin-waiting cost ten times the CPU (measured: 1.5 s against 7 s CPU for the
    tiny search on a 2-core machine at load 10)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, one_thread):
    """One finished tiny search and one finished tiny training run, copied by each test."""
    base = tmp_path_factory.mktemp("runs")
    assert main(search_args(base / "search")) == 0
    assert main(train_args(base / "train")) == 0
    return base


@pytest.fixture
def search_run(runs, tmp_path):
    return Path(shutil.copytree(runs / "search", tmp_path / "search"))


@pytest.fixture
def train_run(runs, tmp_path):
    return Path(shutil.copytree(runs / "train", tmp_path / "train"))


# ---------------------------------------------------------------------- atomic writes
def test_a_failed_write_leaves_the_old_checkpoint_and_record(tmp_path):
    ckpt, rec = tmp_path / "checkpoint.pt", tmp_path / "r.json"
    save_checkpoint(ckpt, {"kind": "racl-search", "w": torch.ones(3)})
    write_json(rec, {"a": 1})
    before = snapshot(tmp_path)
    with pytest.raises(Exception):  # pickling a lambda fails half-way through torch.save
        save_checkpoint(ckpt, {"kind": "racl-search", "w": torch.zeros(3), "f": lambda: 0})
    with pytest.raises(TypeError):  # not serialisable: refused before the file is touched
        write_json(rec, {"a": object()})
    assert snapshot(tmp_path) == before  # same bytes, and no temporary file left behind


def test_json_records_never_hold_nan(tmp_path):
    rec = tmp_path / "r.json"
    write_json(rec, {"loss": 1.0})
    with pytest.raises(RecordError, match=r"r\.json.*rows\[1\]\.loss = nan"):
        write_json(rec, {"rows": [{"loss": 1.0}, {"loss": float("nan")}]})
    with pytest.raises(RecordError, match="inf"):
        write_json(rec, {"t": torch.tensor(float("inf"))})
    assert read_json(rec) == {"loss": 1.0}
    run = RunDir(tmp_path / "run")
    with pytest.raises(RecordError, match="metrics.jsonl"):
        run.rewrite_metrics([{"val_loss": float("nan")}])
    (tmp_path / "old.json").write_text('{"val_loss": NaN}')  # what an older version wrote
    with pytest.raises(RecordError, match="old.json.*NaN"):
        read_json(tmp_path / "old.json")


# ---------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_a_damaged_checkpoint_is_one_line_and_kept(capsys, search_run, damage):
    ckpt = search_run / "checkpoint.pt"
    data = ckpt.read_bytes()
    ckpt.write_bytes({"garbage": b"not a checkpoint", "truncated": data[: len(data) // 2], "empty": b""}[damage])
    before = snapshot(search_run)
    msg = "empty" if damage == "empty" else "corrupted or truncated"
    one_error(capsys, search_args(search_run), ckpt, msg)  # resuming
    one_error(capsys, ["derive", "--run", search_run], ckpt, msg)
    assert snapshot(search_run) == before


def test_a_truncated_training_checkpoint_is_one_line_and_kept(capsys, train_run):
    ckpt = train_run / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    before = snapshot(train_run)
    one_error(capsys, train_args(train_run), ckpt, "corrupted or truncated")
    assert snapshot(train_run) == before


def test_missing_run_folder_or_checkpoint_is_not_called_corrupted(capsys, tmp_path, train_run):
    err = one_error(capsys, ["derive", "--run", tmp_path / "nowhere"], tmp_path / "nowhere", "does not exist")
    assert "corrupted" not in err
    (tmp_path / "empty").mkdir()
    one_error(capsys, ["derive", "--run", tmp_path / "empty"], "no checkpoint")
    one_error(capsys, ["derive", "--run", train_run], "'racl-train' checkpoint, not a 'racl-search'")


# ---------------------------------------------------------------------- records
def test_a_truncated_record_is_one_line_and_kept(capsys, search_run, tmp_path):
    prov = search_run / "provenance.json"
    prov.write_bytes(prov.read_bytes()[:40])
    before = snapshot(search_run)
    one_error(capsys, search_args(search_run), prov, "not valid JSON")  # resuming reads the provenance
    assert snapshot(search_run) == before
    geno = search_run / "genotype.json"
    geno.write_bytes(geno.read_bytes()[:100])
    one_error(capsys, ["genotype", geno], geno)
    one_error(capsys, train_args(tmp_path / "t", arch=geno), geno)
    assert not (tmp_path / "t").exists()
    metrics = search_run / "metrics.jsonl"
    metrics.write_bytes(metrics.read_bytes()[:-20])
    with pytest.raises(RecordError, match=r"metrics\.jsonl, line 1"):
        RunDir(search_run).metrics()


# ---------------------------------------------------------------------- run folders
def test_a_run_folder_reused_with_another_config_is_refused(capsys, search_run, train_run):
    before = snapshot(search_run)
    one_error(capsys, search_args(search_run, seed=1), search_run, "another config (differs in: seed)")
    assert snapshot(search_run) == before
    one_error(capsys, train_args(search_run), search_run / "checkpoint.pt", "'racl-search' checkpoint, not a 'racl-train'")
    assert snapshot(search_run) == before
    # without a checkpoint, the config.json of another run is not overwritten either
    (train_run / "checkpoint.pt").unlink()
    before = snapshot(train_run)
    one_error(capsys, train_args(train_run, lr=0.01), train_run, "differs in: lr")
    assert snapshot(train_run) == before


def test_out_must_be_a_run_folder(capsys, tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("keep me")
    one_error(capsys, train_args(f), f, "existing file")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("keep me")
    one_error(capsys, search_args(tmp_path / "other"), tmp_path / "other", "holds other things")
    assert f.read_text() == "keep me" and os.listdir(tmp_path / "other") == ["notes.txt"]


# ---------------------------------------------------------------------- non-finite
def test_a_search_whose_weights_blow_up_stops(capsys, tmp_path):
    """lr=1e6: the training loss stays finite (train-mode BN renormalises), but the running
    statistics overflow and the validation loss is NaN at the end of the epoch."""
    out = tmp_path / "s"
    one_error(capsys, search_args(out, lr=1e6), "search epoch 0", "nothing non-finite was saved")
    assert not out.exists()  # it had written no checkpoint: no half-made folder is left


def test_adversarial_training_whose_weights_blow_up_stops(capsys, tmp_path):
    out = tmp_path / "t"
    one_error(capsys, train_args(out, lr=1e30), "non-finite")
    assert not out.exists()


def test_non_finite_bn_statistics_stop_a_resumed_run_and_keep_its_checkpoint(tmp_path):
    from racl.profiles import get_profile
    from racl.search import RACLSearch

    cfg = get_profile("smoke", {**SEARCH, "epochs": 2, "arch_warmup_epochs": 2})
    s = RACLSearch(cfg, tmp_path / "r", progress=False)
    assert s.fit(stop_after_steps=1)["stopped"] and s.epoch == 1  # epoch 0 done and saved
    before = snapshot(tmp_path / "r")
    bn = next(m for m in s.model.modules() if isinstance(m, torch.nn.BatchNorm2d) and m.track_running_stats)
    bn.running_var.fill_(float("inf"))  # what lr=1e6 does to the statistics
    with pytest.raises(NonFiniteLossError, match="search epoch 1"):
        s.fit()
    assert snapshot(tmp_path / "r") == before
    for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(f"bare {c} in metrics.jsonl"))


def test_check_finite_names_the_culprit():
    m = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    check_finite("ok", {"loss": 1.0, "acc": None}, {"net": m})
    with pytest.raises(NonFiniteLossError, match="val_loss is nan"):
        check_finite("epoch 3", {"val_loss": math.nan}, {"net": m})
    m[1].running_var[1] = math.inf
    with pytest.raises(NonFiniteLossError, match="net statistic 1.running_var has 1 non-finite value"):
        check_finite("epoch 3", None, {"net": m})
    m[0].weight.data[0, 0] = math.nan
    with pytest.raises(NonFiniteLossError, match="net parameter 0.weight has 1 non-finite"):
        check_finite("epoch 3", None, {"net": m})


# ---------------------------------------------------------------------- command line
@pytest.mark.parametrize("kind,sets,needle", [
    ("search", {"eta": "abc"}, "eta takes a number"),
    ("search", {"batch_size": "1.5"}, "batch_size takes an integer"),
    ("search", {"sample": "maybe"}, "sample takes true or false"),
    ("search", {"lambda_star": "big"}, "lambda_star takes a number (e.g. 0.1, 1e-3 or 8/255) or none"),
    ("search", {"arch_betas": "0.5,x"}, "comma list of numbers"),
    ("search", {"lr": "nan"}, "finite"),
    ("search", {"primitives": "none,conv_9x9"}, "unknown operation(s) conv_9x9"),
    ("search", {"nosuch": "1"}, "no field 'nosuch'"),
    ("search", {"lr_mn": "1"}, "did you mean lr_min"),
    ("train", {"epsilon": "eight"}, "epsilon takes a number"),
    ("train", {"epochs": "2.5"}, "epochs takes an integer"),
    ("train", {"method": "fgsm"}, "method must be one of"),
])
def test_typed_set_values(capsys, tmp_path, kind, sets, needle):
    args = (search_args if kind == "search" else train_args)(tmp_path / "run", **sets)
    one_error(capsys, args, needle)
    assert not (tmp_path / "run").exists()


def test_a_fraction_is_a_float(capsys, tmp_path):
    from racl.cli import _config

    args = build_parser().parse_args(train_args(tmp_path / "run", epsilon="8/255", max_train_images="none"))
    cfg = _config(args, "train")
    assert cfg.epsilon == 8 / 255 and cfg.max_train_images is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_a_missing_gpu_is_one_line(capsys, tmp_path):
    one_error(capsys, search_args(tmp_path / "run") + ["--device", "cuda"], "no CUDA GPU")
    one_error(capsys, train_args(tmp_path / "run") + ["--device", "tpu"], "device")
    assert not (tmp_path / "run").exists()


def test_unknown_profiles_list_the_valid_ones(capsys):
    one_error(capsys, ["search", "--profile", "nosuch", "--out", "x"], "choose from paper, mini, gpu, smoke")
    rc, err = run_cli(capsys, ["reproduce", "--profile", "nosuch", "--dry-run"])
    assert rc == 2 and "invalid choice: 'nosuch'" in err[-1] and "'gpu', 'mini', 'paper', 'smoke'" in err[-1]


def test_bad_genotype_and_dataset_files_are_named(capsys, tmp_path):
    g = tmp_path / "cell.json"
    g.write_text('{"normal": [["sep_conv_3x3", 0]]')
    one_error(capsys, ["genotype", g], g)
    g.write_text('{"normal": [], "normal_concat": [], "reduce": []}')
    one_error(capsys, ["genotype", g], g, "missing reduce_concat")
    d = tmp_path / "data.npz"
    d.write_text("not an archive")
    one_error(capsys, train_args(tmp_path / "run", dataset=d), d, "not a .npz archive")
    rng = np.random.default_rng(0)
    np.savez(d, x_train=rng.integers(0, 255, (48, 8, 8, 3), dtype=np.uint8), y_train=rng.random(48) * 3,
             x_test=rng.integers(0, 255, (8, 8, 8, 3), dtype=np.uint8), y_test=np.zeros(8, dtype=int))
    one_error(capsys, train_args(tmp_path / "run", dataset=d), d, "non-integer labels")
    assert not (tmp_path / "run").exists()


def test_every_option_has_help_text():
    ap = build_parser()
    sub = next(a for a in ap._actions if a.__class__.__name__ == "_SubParsersAction")
    missing = [f"{name} {'/'.join(a.option_strings) or a.dest}"
               for name, p in sub.choices.items() for a in p._actions
               if not a.help and a.__class__.__name__ != "_HelpAction"]
    assert not missing, missing
    for p in sub.choices.values():
        p.format_help()  # renders (a stray % in a help string would raise here)


def test_racl_debug_shows_the_traceback(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("RACL_DEBUG", "1")
    with pytest.raises(CheckpointError):
        main(["derive", "--run", str(tmp_path / "nowhere")])
