"""Algorithm 1: gradients, dual ascent, the chance constraint after a toy search, the
gradient-norm term, derivation, and exact resumption after a kill."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from racl.constraint import ADMMDual, confidence_constraint, input_gradient_norm
from racl.lognormal import LogNormal
from racl.profiles import get_profile
from racl.records import CheckpointError, NonFiniteLossError
from racl.search import RACLSearch, load_search

REPO = Path(__file__).resolve().parent.parent

TINY = dict(dataset="synthetic-8", max_train_images=96, batch_size=16, epochs=2, arch_warmup_epochs=1,
            eval_batches=1, power_iterations_init=5, checkpoint_every=2)


def tiny(**kw):
    return get_profile("smoke", {**TINY, **kw})


def _batches(s):
    (_, xw, yw), (_, xa, ya) = next(zip(s.train_loader.epoch(0), s.arch_loader.epoch(0)))
    return xw, yw, xa, ya


def test_architecture_step_moves_mu_and_sigma():
    s = RACLSearch(tiny(arch_warmup_epochs=0, lambda_star_ratio=0.5, rho=1.0), None, progress=False)
    before = {n: p.detach().clone() for n, p in s.dist.named_parameters()}
    s.train_step(0, 0, *_batches(s))
    for n, p in s.dist.named_parameters():
        moved = (p.detach() - before[n]).abs()
        assert moved.max() > 0, f"{n} did not move"
        if n.startswith("mu_alpha"):
            none_col = s.cfg.primitives.index("none")
            others = torch.cat([moved[:, :none_col], moved[:, none_col + 1 :]], 1)
            assert (others > 0).float().mean() > 0.9, "gradients should reach (nearly) every op's mu"


def test_gradients_reach_mu_and_sigma_through_the_constraint():
    s = RACLSearch(tiny(arch_warmup_epochs=0), None, progress=False)
    s.train_step(0, 0, *_batches(s))  # one forward so shapes and lambda exist
    s.log_lambda_star = 0.0
    c = s.constraint(s.propagation().network)
    params = s.dist.mu_parameters() + s.dist.sigma_parameters()
    grads = torch.autograd.grad(c, params)
    for p, g in zip(params, grads):
        assert torch.isfinite(g).all()
        assert g.abs().sum() > 0
    # raising sigma raises the eta-quantile, so dc/d ln sigma > 0 for every op with lambda > 0
    ga = grads[len(s.dist.mu_parameters())]
    none_col = s.cfg.primitives.index("none")
    assert (ga[:, [i for i in range(ga.shape[1]) if i != none_col]] > 0).all()


def test_dual_ascent():
    d = ADMMDual(rho=0.5)
    for _ in range(4):
        d.update(1.0)
    assert d.theta == pytest.approx(2.0)
    for _ in range(10):
        d.update(-1.0)
    assert d.theta == 0.0  # projected onto theta >= 0
    c = torch.tensor(-0.3, requires_grad=True)
    assert d.penalty(c).item() == 0.0  # a satisfied constraint with theta = 0 costs nothing
    e = ADMMDual(rho=0.5, form="equality")
    e.update(-1.0)
    assert e.theta == pytest.approx(-0.5)  # the literal form lets theta go negative
    d.theta = 1.0
    c = torch.tensor(0.2, requires_grad=True)
    d.penalty(c).backward()
    assert c.grad.item() == pytest.approx(1.0 + 0.5 * 0.2)  # max(0, theta + rho c)


def test_constraint_is_the_eta_quantile():
    net = LogNormal(torch.tensor(2.0), torch.tensor(0.25))
    c = confidence_constraint(net, 0.9, log_lambda_star=2.0)
    assert c.item() == pytest.approx(1.2815515655446004 * 0.5, rel=1e-6)
    # c <= 0 exactly when P(L <= lambda*) >= eta
    lam = 2.0 + 1.2815515655446004 * 0.5
    assert net.log_cdf_at_log(lam).item() == pytest.approx(0.9, abs=1e-6)
    assert confidence_constraint(net, 0.9, lam, form="paper_variance").item() != pytest.approx(0.0)


def test_chance_constraint_holds_after_a_toy_search():
    cfg = tiny(epochs=12, arch_warmup_epochs=6, max_train_images=128, lambda_star_ratio=0.5, rho=1.0,
               arch_lr=0.05, lr=0.0, grad_norm_weight=0.0, lipschitz_every=2, checkpoint_every=0)
    s = RACLSearch(cfg, None, progress=False)
    s.fit(stop_after_steps=cfg.arch_warmup_epochs * len(s.train_loader) + 1)
    # lambda* was set to half the bound's eta-quantile at the first architecture step, so the
    # constraint started violated (c = ln 2 before that step) and the search had to restore it
    assert s.log_lambda_star is not None
    s.fit()
    assert any(r.get("c") is not None for r in s.history)
    p = s.empirical_probability(1000, seed=123)
    assert p >= cfg.eta, f"P(bound <= lambda*) = {p} < eta = {cfg.eta}"
    assert s.history[-1]["prob_bound"] >= cfg.eta - 0.01


def test_gradient_norm_term_against_finite_differences():
    torch.manual_seed(0)
    s = RACLSearch(tiny(), None, progress=False)
    s.model.double()
    s.dist.double()
    x = torch.rand(4, 3, 8, 8, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3])
    s.model.eval()  # a fixed function of x (batch statistics would couple the examples)

    def gn():
        _, _, g, _ = s.loss(x, y, s.dist.weights(s.types, mode="median"))
        return g

    # 1) the term is the input-gradient norm: compare with central differences in x
    xr = x.clone().requires_grad_(True)
    ce = torch.nn.functional.cross_entropy(s.model(xr, s.dist.weights(s.types, mode="median")), y, reduction="none")
    (g_all,) = torch.autograd.grad(ce.sum(), xr, retain_graph=True)
    norms = input_gradient_norm(ce, xr, create_graph=False)
    h = 1e-6
    for i in range(2):
        d = torch.randn(x[i].shape, dtype=torch.float64, generator=torch.Generator().manual_seed(i))
        xp, xm = x.clone(), x.clone()
        xp[i] += h * d
        xm[i] -= h * d
        f = lambda z: torch.nn.functional.cross_entropy(s.model(z, s.dist.weights(s.types, mode="median")), y, reduction="none")[i]
        fd = (f(xp) - f(xm)) / (2 * h)
        assert (g_all[i] * d).sum().item() == pytest.approx(fd.item(), rel=1e-5, abs=1e-9)
        assert norms[i].item() == pytest.approx(g_all[i].norm().item(), rel=1e-9)
    # 2) double back-propagation: d gn / d mu against finite differences in mu
    p = s.dist.mu_alpha["normal"]
    (dg,) = torch.autograd.grad(gn(), p)
    for idx in [(0, 4), (3, 5), (9, 6)]:
        p.data[idx] += h
        up = gn().item()
        p.data[idx] -= 2 * h
        down = gn().item()
        p.data[idx] += h
        assert dg[idx].item() == pytest.approx((up - down) / (2 * h), rel=1e-4, abs=1e-8)


def test_nan_loss_stops_with_a_clear_error():
    s = RACLSearch(tiny(), None, progress=False)
    xw, yw, xa, ya = _batches(s)
    with torch.no_grad():
        s.model.classifier.weight.fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match="non-finite"):
        s.train_step(0, 0, xw, yw, xa, ya)


def _strip(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def test_resume_after_stop_gives_the_same_result(tmp_path):
    cfg = tiny(epochs=2)
    full = RACLSearch(cfg, tmp_path / "a", progress=False).fit()
    # stop in the middle of epoch 2 (after a mid-epoch checkpoint), then resume in new objects
    s = RACLSearch(cfg, tmp_path / "b", progress=False)
    assert s.fit(stop_after_steps=5)["stopped"]
    s = RACLSearch(cfg, tmp_path / "b", progress=False)
    assert s._resumed and (s.epoch, s.step) == (1, 2)
    part = s.fit()
    assert part["genotype_str"] == full["genotype_str"]
    a = _strip(json.loads(l) for l in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines())
    b = _strip(json.loads(l) for l in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines())
    assert a == b
    assert part["arch"] == full["arch"]


def test_resume_refuses_another_config_and_corrupted_checkpoints(tmp_path):
    cfg = tiny(epochs=1)
    RACLSearch(cfg, tmp_path / "a", progress=False).fit()
    with pytest.raises(CheckpointError, match="another config"):
        RACLSearch(tiny(epochs=1, eta=0.8), tmp_path / "a", progress=False)
    (tmp_path / "a" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupted"):
        RACLSearch(cfg, tmp_path / "a", progress=False)
    with pytest.raises(CheckpointError):
        load_search(tmp_path / "a")


def _cli(args, **kw):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "racl", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _set(d):
    out = []
    for k, v in d.items():
        out += ["--set", f"{k}={v}"]
    return out


def test_killed_cli_run_resumes_to_the_same_result(tmp_path):
    over = _set({**TINY, "epochs": 2, "checkpoint_every": 1})
    ref = _cli(["search", "--profile", "smoke", "--out", str(tmp_path / "ref"), "--no-progress", *over])
    assert ref.wait(timeout=300) == 0, ref.stderr.read()
    run = tmp_path / "killed"
    p = _cli(["search", "--profile", "smoke", "--out", str(run), "--no-progress", *over])
    deadline = time.time() + 300
    while not (run / "metrics.jsonl").exists() and time.time() < deadline:  # killed after the first epoch
        time.sleep(0.1)
    time.sleep(0.5)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not (run / "genotype.json").exists(), "the run finished before it could be killed"
    q = _cli(["search", "--profile", "smoke", "--out", str(run), "--no-progress", *over])
    out, err = q.communicate(timeout=300)
    assert q.returncode == 0, err
    assert "resuming" in err
    a = json.loads((tmp_path / "ref" / "genotype.json").read_text())
    b = json.loads((run / "genotype.json").read_text())
    assert a["genotype_str"] == b["genotype_str"] and a["arch"] == b["arch"]
    ma = _strip(json.loads(l) for l in (tmp_path / "ref" / "metrics.jsonl").read_text().splitlines())
    mb = _strip(json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines())
    assert ma == mb


def test_cli_reports_bad_input_clearly(tmp_path):
    p = _cli(["search", "--profile", "nope", "--out", str(tmp_path / "x")])
    _, err = p.communicate(timeout=60)
    assert p.returncode == 2 and "unknown search profile 'nope'" in err
    p = _cli(["search", "--profile", "smoke", "--dataset", "cifar10", "--data-root", str(tmp_path / "empty"),
              "--out", str(tmp_path / "x")])
    _, err = p.communicate(timeout=120)
    assert p.returncode == 2 and "cifar10 (train) not found" in err and str(tmp_path / "empty") in err
    p = _cli(["search", "--profile", "smoke", "--set", "eta=1.5", "--out", str(tmp_path / "x")])
    _, err = p.communicate(timeout=60)
    assert p.returncode == 2 and "eta must lie in (0, 1)" in err
