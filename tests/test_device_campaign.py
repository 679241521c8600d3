"""A campaign in the few minutes of a lent GPU (issue 13, item 5): ``reproduce --kinds
--time-budget`` runs only the jobs of those kinds whose estimated time fits; a finished
retraining travels back with its weights alone (``racl.training.export_weights``), which
evaluate exactly as the full checkpoint does and cannot resume an unfinished training;
``benchmarks/device_campaign.py`` packs what a call changed into tar files within the device's
limits and unpacks them here without replacing a finished record or writing outside the
runs folder; its ``testdata`` keeps a dataset's test images alone. (On the CPU at tiny sizes:
the shell driver itself was rehearsed with ``PROFILE=smoke DEVICE=cpu``.)"""

import importlib.util
import io
import json
import shutil
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from racl import cli, reproduce
from racl.plan import plan
from racl.records import CheckpointError
from racl.training import AdversarialTrainer, export_weights, load_trained

REPO = Path(__file__).resolve().parent.parent
OVERRIDES = {"train": dict(epochs=2, max_train_images=96, val_images=0, attack_steps=1, layers=3, init_channels=4,
                           checkpoint_every=2),
             "eval": dict(attacks=("fgsm",), n=16, n_slow=16, batch_size=16, sanity=False, sanity_n=8,
                          sweep_eps=(0.03,), sweep_steps=(1, 2))}


def load_driver():
    spec = importlib.util.spec_from_file_location("device_campaign", REPO / "benchmarks" / "device_campaign.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def jobs(runs: Path):
    return plan("smoke", ["table7"], ["DARTS_V2"], (0,), "pgd", runs)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One call's worth: the retraining alone (--kinds train), its status, and the time before it."""
    runs = tmp_path_factory.mktemp("device") / "runs"
    since = time.time()
    time.sleep(0.01)
    status = reproduce.run_sequential(jobs(runs), "smoke", None, "cpu", OVERRIDES, progress=False,
                                      log=lambda *a: None, kinds=["train"], time_budget_s=600)
    return runs, status, since


def test_kinds_runs_only_those_kinds(trained):
    runs, status, _ = trained
    train, ev = jobs(runs)
    assert status[train.key] == "ran" and train.done()
    assert status[ev.key].startswith("not run: kind eval") and not ev.path.exists()


def test_time_budget_skips_what_does_not_fit(tmp_path, monkeypatch):
    js = jobs(tmp_path / "runs")
    monkeypatch.setattr(reproduce, "estimate", lambda *a, **k: 1.0)  # an hour each
    status = reproduce.run_sequential(js, "smoke", None, "cpu", OVERRIDES, progress=False, log=lambda *a: None,
                                      time_budget_s=600, cost_device="a GPU")
    assert status[js[0].key] == "not run: estimated 60.0 min on a GPU, 10.0 min of the budget left"
    assert status[js[1].key] == f"not run: needs {js[0].key}"
    assert not (tmp_path / "runs").exists()
    # a kind that may stop starts whatever its estimate (what it did is kept): here the
    # retraining, then its evaluation once it ran
    ran = []
    monkeypatch.setattr(reproduce, "run_job", lambda j, *a, **k: ran.append(j.key))
    status = reproduce.run_sequential(js, "smoke", None, "cpu", OVERRIDES, progress=False, log=lambda *a: None,
                                      time_budget_s=600, cost_device="a GPU", may_stop=["train", "eval"])
    assert ran == [js[0].key, js[1].key] and set(status.values()) == {"ran"}
    with pytest.raises(ValueError, match="unknown job kind 'trian'"):
        reproduce.run_sequential(js, "smoke", kinds=["trian"], log=lambda *a: None)
    with pytest.raises(ValueError, match="time budget must be positive"):
        reproduce.run_sequential(js, "smoke", time_budget_s=0, log=lambda *a: None)


def test_cli_refuses_budget_outside_sequential(capsys):
    assert cli.main(["reproduce", "--profile", "smoke", "--targets", "table7", "--executor", "local",
                     "--kinds", "train"]) != 0
    assert "--kinds and --time-budget apply to --executor sequential" in capsys.readouterr().err
    assert cli.main(["reproduce", "--profile", "smoke", "--targets", "table7", "--may-stop", "eval"]) != 0
    assert "--may-stop applies with --time-budget" in capsys.readouterr().err


def test_weights_only_checkpoint(trained, tmp_path):
    runs, _, _ = trained
    run = jobs(runs)[0].path
    # the trainer's last checkpoint holds the weights alone already ...
    assert "opt" not in torch.load(run / "checkpoint.pt", weights_only=False)
    # ... an older trainer's held SGD's momentum buffers too: the export drops them
    older = tmp_path / "older"
    shutil.copytree(run, older)
    state = torch.load(older / "checkpoint.pt", weights_only=False)
    params = [v for k, v in state["model"].items() if v.is_floating_point() and "running" not in k]
    state["opt"] = {"state": {i: {"momentum_buffer": torch.ones_like(v)} for i, v in enumerate(params)},
                    "param_groups": [{"params": list(range(len(params)))}]}
    torch.save(state, older / "checkpoint.pt")
    dest = export_weights(older, tmp_path / "w")
    light = torch.load(dest / "checkpoint.pt", weights_only=False)
    assert "opt" not in light
    assert sorted(p.name for p in dest.iterdir()) == ["checkpoint.pt", "config.json", "metrics.jsonl", "provenance.json"]
    assert (dest / "checkpoint.pt").stat().st_size < (older / "checkpoint.pt").stat().st_size
    a, meta_a = load_trained(run)
    b, meta_b = load_trained(dest)
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(a(x), b(x))  # the same tensors, the same arithmetic
    assert meta_a["complete"] and meta_b["complete"] and meta_a["history"] == meta_b["history"]
    # a finished run over weights only: nothing to train, nothing refused
    cfg = reproduce.job_config(jobs(runs)[0], "smoke", OVERRIDES, "cpu")
    assert AdversarialTrainer(cfg, dest, progress=False).epoch == cfg.epochs
    # ... but an unfinished training cannot go on from it
    state = torch.load(dest / "checkpoint.pt", weights_only=False)
    state["epoch"] = 1
    torch.save(state, dest / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="holds the weights only"):
        AdversarialTrainer(cfg, dest, progress=False)
    with pytest.raises(CheckpointError, match="not a finished training run"):
        export_weights(tmp_path / "nothing", tmp_path / "w2")


def test_pack_then_unpack_then_evaluate_elsewhere(trained, tmp_path):
    runs, _, since = trained
    drv = load_driver()
    said = []
    out = tmp_path / "out"
    files = drv.pack(runs, since, out, log=said.append)
    assert [f.name for f in files] == ["train-smoke-synthetic-darts-v2-pgd-s0.tar"]
    with tarfile.open(files[0]) as t:
        names = sorted(t.getnames())
    assert names == [f"train/smoke-synthetic-darts-v2-pgd-s0/{n}" for n in
                     ("checkpoint.pt", "config.json", "metrics.jsonl", "provenance.json")]
    # nothing changed after a time: nothing packed
    assert drv.pack(runs, time.time() + 60, tmp_path / "none", log=said.append) == []
    assert said[-1] == "nothing under the runs folder changed in this call"
    # here: unpack into another runs folder, evaluate there
    here = tmp_path / "here"
    assert drv.unpack(out, here, log=said.append) == ["train/smoke-synthetic-darts-v2-pgd-s0"]
    train, ev = jobs(here)
    assert train.done() and not ev.done()
    t_eval = time.time()
    time.sleep(0.01)
    status = reproduce.run_sequential(jobs(here), "smoke", None, "cpu", OVERRIDES, progress=False,
                                      log=lambda *a: None, kinds=["eval"])
    assert status == {train.key: "done", ev.key: "ran"} and ev.done()
    rec = json.loads(ev.path.read_text())
    assert rec["model"]["checkpoint_sha256"]
    # the evaluation record packs into records.tar and comes back; a finished record here is kept
    back = drv.pack(here, t_eval, tmp_path / "out2", log=said.append)
    assert [f.name for f in back] == ["records.tar"]
    again = tmp_path / "again"
    assert drv.unpack(tmp_path / "out2", again, log=said.append) == [f"eval/{ev.path.name}"]
    assert json.loads((again / "eval" / ev.path.name).read_text()) == rec
    assert drv.unpack(out, here, log=said.append) == []
    assert said[-1] == "train/smoke-synthetic-darts-v2-pgd-s0: kept the finished run here; " \
                       "train-smoke-synthetic-darts-v2-pgd-s0.tar's copy skipped"


def test_pack_leaves_behind_what_does_not_fit(trained, tmp_path):
    runs, _, since = trained
    said = []
    assert load_driver().pack(runs, since, tmp_path / "out", max_bytes=1000, log=said.append) == []
    assert said[0].startswith("train/smoke-synthetic-darts-v2-pgd-s0: left behind (finished, weights only;")


def test_unpack_refuses_members_outside_a_record(tmp_path):
    drv = load_driver()
    src = tmp_path / "in"
    src.mkdir()
    with tarfile.open(src / "bad.tar", "w") as t:
        data = b"{}"
        info = tarfile.TarInfo("../../escape.json")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    with pytest.raises(ValueError, match="is not a record of a run"):
        drv.unpack(src, tmp_path / "runs")
    assert not (tmp_path / "escape.json").exists() and not (tmp_path / "runs").exists()
    with pytest.raises(FileNotFoundError, match="no .tar files"):
        drv.unpack(tmp_path / "runs2", tmp_path / "runs")


def test_testdata_keeps_the_test_images_alone(tmp_path, monkeypatch):
    from racl.data import DatasetFormatError, load_dataset

    rng = np.random.default_rng(0)
    full = {"x_train": rng.integers(0, 256, (20, 8, 8, 3), dtype=np.uint8), "y_train": np.arange(20) % 3,
            "x_test": rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8), "y_test": np.arange(6) % 3}
    (tmp_path / "src").mkdir()
    np.savez(tmp_path / "src" / "toy-mini.npz", **full)
    monkeypatch.setenv("RACL_DATA", str(tmp_path / "src"))
    out = load_driver().testdata("toy-mini", tmp_path / "device")
    monkeypatch.setenv("RACL_DATA", str(tmp_path / "device"))
    test = load_dataset("toy-mini", "test")
    assert test.source == str(out) and torch.equal(test.y, torch.as_tensor(full["y_test"]))
    assert torch.equal(test.x, load_dataset(str(tmp_path / "src" / "toy-mini.npz"), "test").x)
    with pytest.raises(DatasetFormatError, match="holds no images"):  # a training cannot run on it
        load_dataset("toy-mini", "train")
    with pytest.raises(FileNotFoundError, match="nothing-mini.npz not found"):
        load_driver().testdata("nothing-mini", tmp_path / "device")


def test_dry_run_names_the_devices_that_timed_runs(trained):
    runs, _, _ = trained
    out = io.StringIO()
    reproduce.print_cost("smoke", ["table7"], "Some GPU", ["DARTS_V2"], (0,), "pgd", runs=runs, out=out)
    text = out.getvalue()
    here = reproduce.run_devices(runs)
    assert len(here) == 1 and "(" in here[0]  # this CPU, 'model (N threads)'
    assert f"were timed on {here[0]}: --cost-device NAME" in text
    out = io.StringIO()
    reproduce.print_cost("smoke", ["table7"], here[0], ["DARTS_V2"], (0,), "pgd", runs=runs, out=out)
    assert "--cost-device NAME" not in out.getvalue()  # its own runs cost the retraining


def test_driver_script_wiring(tmp_path):
    """benchmarks/device_campaign.sh with a stand-in for `python -m racl reproduce` (it records
    its arguments and writes an evaluation record, as a call would) and the real pack: the
    call runs within BUDGET less RESERVE, reads DATA first, and what it wrote comes back in $OUT."""
    import subprocess
    import sys

    runs, out = tmp_path / "runs", tmp_path / "out"
    (runs / "eval").mkdir(parents=True)
    fake = tmp_path / "python"
    fake.write_text("#!/usr/bin/env bash\n"
                    'if [ "$1" = -m ]; then echo "$@ RACL_DATA=$RACL_DATA" >> "$OUT/calls"; '
                    f'echo "{{}}" > "{runs}/eval/x.json"; exit 0; fi\n'
                    f'exec "{sys.executable}" "$@"\n')
    fake.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "OUT": str(out), "PYTHON": str(fake), "RUNS": str(runs), "BUDGET": "100",
           "RESERVE": "40", "KINDS": "train,eval", "TARGETS": "table7", "DEVICE": "cpu", "DATA": "data/device",
           "EXTRA": "--archs DARTS_V2 --seeds 0"}
    res = subprocess.run(["bash", str(REPO / "benchmarks" / "device_campaign.sh")], env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    call = (out / "calls").read_text().split()
    assert call[:3] == ["-m", "racl", "reproduce"]
    for flag, value in [("--profile", "gpu"), ("--kinds", "train,eval"), ("--time-budget", "60"),
                        ("--may-stop", "search,eval"), ("--device", "cpu"),
                        ("--runs", str(runs)), ("--archs", "DARTS_V2"), ("--seeds", "0")]:
        assert call[call.index(flag) + 1] == value
    assert call[-1] == f"RACL_DATA={REPO}/data/device"
    with tarfile.open(out / "records.tar") as t:
        assert t.getnames() == ["eval/x.json"]
    assert "records.tar: eval/x.json" in (out / "campaign.log").read_text()
    env["BUDGET"] = "60"  # under 30 s beside the reserve: refused before anything runs
    res = subprocess.run(["bash", str(REPO / "benchmarks" / "device_campaign.sh")], env=env, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 2 and "leaves under 30 s" in res.stdout


def test_unfinished_run_travels_whole_and_replaces_an_older_copy(trained, tmp_path):
    """A run stopped at the budget (its provenance not finished) travels with its full
    checkpoint, optimizer state included, so that it resumes; unpacked over an older
    unfinished copy here, it replaces it."""

    runs, _, _ = trained
    src = tmp_path / "there" / "train" / "r"
    shutil.copytree(jobs(runs)[0].path, src)
    prov = json.loads((src / "provenance.json").read_text())
    prov.pop("finished")
    (src / "provenance.json").write_text(json.dumps(prov))
    drv = load_driver()
    said = []
    files = drv.pack(tmp_path / "there", 0.0, tmp_path / "out", log=said.append)
    assert [f.name for f in files] == ["train-r.tar"] and "(not finished: resumes from it" in said[0]
    old = tmp_path / "here" / "train" / "r"
    old.mkdir(parents=True)
    (old / "stale.txt").write_text("an older stop")
    assert drv.unpack(tmp_path / "out", tmp_path / "here", log=said.append) == ["train/r"]
    assert sorted(p.name for p in old.iterdir()) == sorted(p.name for p in src.iterdir())
    assert (old / "checkpoint.pt").read_bytes() == (src / "checkpoint.pt").read_bytes()


def test_travel_size_counts_what_a_call_sends(tmp_path):
    """Tracked and untracked-not-ignored files and the carried paths count; ignored files do
    not; over the limit, the largest untracked files are named."""
    import subprocess

    repo = tmp_path / "repo"
    repo.mkdir()
    run = lambda *a: subprocess.run(["git", "-C", str(repo), *a], check=True, capture_output=True)  # noqa: E731
    run("init", "-q")
    (repo / ".gitignore").write_text("ignored/\ncarried/\n")
    (repo / "tracked.bin").write_bytes(b"x" * 3000)
    run("add", ".")
    (repo / "untracked.bin").write_bytes(b"y" * 2000)
    (repo / "ignored").mkdir()
    (repo / "ignored" / "big.bin").write_bytes(b"z" * 50000)
    (repo / "carried").mkdir()
    (repo / "carried" / "data.npz").write_bytes(b"w" * 1000)
    drv = load_driver()
    said = []
    total = drv.travel_size(repo, ["carried"], limit=10_000, log=said.append)
    assert total == 3000 + (repo / ".gitignore").stat().st_size + 2000 + 1000
    assert len(said) == 1
    assert drv.travel_size(repo, ["carried"], limit=4000, log=said.append) == total
    assert said[-2].startswith("over the limit") and said[-1].endswith("untracked.bin")
    with pytest.raises(FileNotFoundError, match="carry path nowhere does not exist"):
        drv.travel_size(repo, ["nowhere"])
