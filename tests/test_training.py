"""Adversarial training: objectives, resume after a stop, bad input, evaluation CLI."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from racl.genotypes import GenotypeError
from racl.networks import UnknownArchitectureError, arch_label, build_model
from racl.profiles import get_profile
from racl.records import CheckpointError, NonFiniteLossError, progress
from racl.training import AdversarialTrainer, adversarial_loss, load_trained

REPO = Path(__file__).resolve().parent.parent
TINY = dict(max_train_images=352, val_images=64, epochs=4, batch_size=32, checkpoint_every=2, layers=3, init_channels=4, lr=0.1)


def tiny(**kw):
    return get_profile("smoke", {**TINY, **kw}, kind="train")


@pytest.mark.parametrize("method", ["pgd", "trades", "mart"])
def test_objectives_are_finite_and_differentiable(method):
    torch.manual_seed(0)
    m = build_model("DARTS_V2", 10, 16, init_channels=4, layers=3).train()
    x = torch.rand(8, 3, 16, 16)
    y = torch.randint(0, 10, (8,))
    x_adv = (x + 0.01 * torch.randn_like(x)).clamp(0, 1)
    loss = adversarial_loss(method, m, x, y, x_adv, 6.0)
    loss.backward()
    assert torch.isfinite(loss) and any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())


def test_training_improves_and_resumes_to_the_same_weights(tmp_path):
    cfg = tiny()
    a = AdversarialTrainer(cfg, tmp_path / "a", progress=False)
    res = a.fit()
    assert res["final"]["val_clean_acc"] > 0.5  # synthetic is learnable (chance: 0.1)
    b = AdversarialTrainer(cfg, tmp_path / "b", progress=False)
    assert b.fit(stop_after_steps=3)["stopped"]
    assert "opt" in torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)  # resumable mid-run
    b = AdversarialTrainer(cfg, tmp_path / "b", progress=False)
    assert b._resumed
    (seg,) = json.loads((tmp_path / "b" / "provenance.json").read_text())["resumed"]  # when, with what code, where
    assert seg["code"] == b.prov["code"] and seg["hardware"] == b.prov["hardware"] and seg["started"]
    b.fit()
    for (k, va), (_, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(va, vb), k
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(a.history) == strip(b.history)
    model, meta = load_trained(tmp_path / "a")
    assert meta["complete"] and meta["n_params"] == a.n_params
    # the finished run's checkpoint holds the weights alone; a trainer over it has nothing left
    assert "opt" not in torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)
    again = AdversarialTrainer(cfg, tmp_path / "a", progress=False)
    assert again._resumed and again.epoch == cfg.epochs and again.fit()["final"] == a.history[-1]
    assert "resumed" not in json.loads((tmp_path / "a" / "provenance.json").read_text())  # a finished run goes on no more
    for (k, va), (_, vb) in zip(a.model.state_dict().items(), again.model.state_dict().items()):
        assert torch.equal(va, vb), k


def test_bad_inputs_end_in_clear_errors(tmp_path):
    with pytest.raises(UnknownArchitectureError, match="unknown architecture 'resnet9000'"):
        AdversarialTrainer(tiny(arch="resnet9000"), None, progress=False)
    with pytest.raises(ValueError, match=r"epsilon must lie in \[0, 1\]"):
        tiny(epsilon=8)
    t = AdversarialTrainer(tiny(epochs=1), tmp_path / "r", progress=False)
    t.fit()
    # a checkpoint of another architecture
    with pytest.raises(CheckpointError, match="another config"):
        AdversarialTrainer(tiny(epochs=1, arch="PC_DARTS"), tmp_path / "r", progress=False)
    state = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=False)
    state["config"]["arch"] = "resnet18"
    torch.save(state, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="do not fit architecture 'resnet18'"):
        load_trained(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_trained(tmp_path / "nowhere")


def test_nan_loss_stops_training():
    t = AdversarialTrainer(tiny(), None, progress=False)
    with torch.no_grad():
        for p in t.model.parameters():
            p.fill_(float("nan"))
    _, x, y = next(t.train_loader.epoch(0))
    with pytest.raises(NonFiniteLossError):
        t.train_step(0, 0, x, y)


def _cli(*args):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "racl", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_train_and_evaluate_cli(tmp_path):
    over = sum((["--set", f"{k}={v}"] for k, v in TINY.items()), [])
    r = _cli("train", "--genotype", "RACL", "--profile", "smoke", "--out", str(tmp_path / "t"), "--no-progress", *over)
    assert r.returncode == 0, r.stderr
    r = _cli("evaluate", "--checkpoint", str(tmp_path / "t"), "--attacks", "fgsm,pgd20", "--profile", "smoke",
             "--n", "32", "--out", str(tmp_path / "eval.json"))
    assert r.returncode == 0, r.stderr
    # progress into a pipe (a log file): whole lines, the last one at 2/2 attacks
    assert "\r" not in r.stderr and "attacks: 100%" in r.stderr and "2/2" in r.stderr, r.stderr
    rec = json.loads((tmp_path / "eval.json").read_text())
    assert set(rec["attacks"]) == {"fgsm", "pgd20"} and rec["n"] == 32
    assert rec["attacks"]["pgd20"]["params"]["steps"] == 20 and "sanity" in rec
    assert rec["model"]["arch"] == "RACL" and rec["provenance"]["hardware"]["cpu"]
    r = _cli("train", "--genotype", "NOPE", "--profile", "smoke", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "unknown genotype 'NOPE'" in r.stderr
    r = _cli("evaluate", "--checkpoint", str(tmp_path / "t"), "--eps", "8", "--out", str(tmp_path / "e.json"))
    assert r.returncode == 2 and "epsilon must lie in [0, 1]" in r.stderr
    r = _cli("evaluate", "--checkpoint", str(tmp_path / "t"), "--attacks", "deepfool", "--out", str(tmp_path / "e.json"))
    assert r.returncode == 2 and "unknown attack" in r.stderr


def test_progress_written_to_a_log_is_whole_lines():
    """A campaign's or a Slurm job's log is a file: the bar writes its first state and then a
    whole line at most every records.LOG_PROGRESS_EVERY seconds, and keeps its last one, so
    that `tail` of the log shows how far a run is (no carriage-return redraws)."""
    log = io.StringIO()
    bar = progress(81, "RACL mart epoch 3/6", file=log, initial=40)
    for _ in range(41):
        bar.set_postfix(loss="2.386", refresh=False)
        bar.update(1)
    bar.close()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and len(lines) == 2, lines  # resumed at step 40; no line per step
    assert lines[0].startswith("RACL mart epoch 3/6:") and "40/81" in lines[0]
    assert "81/81" in lines[-1] and "loss=2.386" in lines[-1]
    jupyter = type("OutStream", (io.StringIO,), {"__module__": "ipykernel.iostream"})()  # redraws in place there
    bar = progress(5, "search epoch 1/7", file=jupyter)
    bar.update(5)
    bar.close()
    assert "\r" in jupyter.getvalue()
    quiet = io.StringIO()
    bar = progress(5, "x", enabled=False, file=quiet)
    bar.update(5)
    bar.close()
    assert quiet.getvalue() == ""
    # a searched cell's bar is named by its search run, and a long name keeps the count on the line
    name = arch_label("data/runs/search/mini-cifar10-mini-racl-eta0.9-rho-x10-s0-epyc2/genotype.json")
    assert name == "mini-cifar10-mini-racl-eta0.9-rho-x10-s0-epyc2"
    assert arch_label("RACL") == "RACL" and arch_label("Genotype(normal=[('skip_connect', 0)], ...)") == "Genotype(...)"
    long = io.StringIO()
    bar = progress(81, "x" * 150 + " mart epoch 1/6", file=long)
    bar.update(81)
    bar.close()
    assert "81/81" in long.getvalue().splitlines()[-1]


def _old_step_lr(lr, epoch, epochs):
    """The schedule before the fix: floors alone (a 1-epoch run trained at lr / 100)."""
    if epoch >= int(0.75 * epochs):
        lr /= 10
    if epoch >= int(0.9 * epochs):
        lr /= 10
    return lr


def test_step_schedule_at_1_2_3_and_100_epochs():
    from racl.training import step_lr

    sched = lambda epochs, lr=0.1: [step_lr(lr, e, epochs) for e in range(epochs)]  # noqa: E731
    assert sched(1) == [0.1]  # the old floors gave [0.001]
    assert sched(2) == [0.1, 0.1 / 10]  # old: [0.1, 0.001]
    assert sched(3) == [0.1, 0.1, 0.1 / 10]  # old: [0.1, 0.1, 0.001]
    assert sched(100) == [0.1] * 75 + [0.1 / 10] * 15 + [0.1 / 10 / 10] * 10
    # the committed mini records (6 epochs, lr 0.05) keep their learning rates bit for bit,
    # and so does every run of 5 epochs or more
    assert sched(6, 0.05) == [0.05] * 4 + [0.05 / 10, 0.05 / 10 / 10] == [_old_step_lr(0.05, e, 6) for e in range(6)]
    for epochs in range(5, 301):
        assert sched(epochs) == [_old_step_lr(0.1, e, epochs) for e in range(epochs)], epochs
    t = AdversarialTrainer(tiny(epochs=2), None, progress=False)
    assert [t.lr_at(e) for e in range(2)] == [0.1, 0.1 / 10]


def test_warmup_epochs_train_at_a_tenth_of_the_schedule():
    """He et al.'s ResNet-110 warm-up (lr_warmup_epochs): a tenth of the schedule's rate in
    the first epochs, the schedule itself afterwards, for both schedules; Table 4's source
    is planned with one warm-up epoch and nothing else is; a negative count is refused."""
    from racl.plan import plan
    from racl.training import WARMUP_FACTOR

    assert WARMUP_FACTOR == 0.1
    for schedule in ("step", "cosine"):
        plain = AdversarialTrainer(tiny(epochs=6, lr_schedule=schedule), None, progress=False)
        warm = AdversarialTrainer(tiny(epochs=6, lr_schedule=schedule, lr_warmup_epochs=2), None, progress=False)
        assert [warm.lr_at(e) for e in range(6)] == [plain.lr_at(e) * 0.1 for e in range(2)] + [plain.lr_at(e) for e in range(2, 6)]
    assert AdversarialTrainer(tiny(epochs=3, lr_warmup_epochs=1), None, progress=False).lr_at(0) == 0.1 * 0.1
    with pytest.raises(ValueError, match="lr_warmup_epochs must be non-negative"):
        tiny(lr_warmup_epochs=-1).validate()
    jobs = plan("mini", ["table4", "table7"], None, (0,), "mart", None)
    warm = {j.name for j in jobs if j.kind == "train" and j.spec.get("overrides", {}).get("lr_warmup_epochs")}
    assert warm == {"mini-cifar10-mini-resnet110-mart-s0"}
