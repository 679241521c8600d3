"""The fast paths compute what the baseline computes (racl.speed): channels_last and the
fused optimisers to fp32 rounding, bf16 autocast within bf16 tolerance, and the Lipschitz
machinery exactly, since it always runs in fp32."""

import copy

import pytest
import torch
import torch.nn.functional as F

from racl import speed
from racl.profiles import get_profile
from racl.records import CheckpointError, save_checkpoint
from racl.search import RACLSearch
from racl.training import AdversarialTrainer

SEARCH = dict(dataset="synthetic-8", max_train_images=96, batch_size=16, epochs=2, arch_warmup_epochs=0,
              eval_batches=1, power_iterations_init=5, channels_last=False, fused_optimizer=False)
TRAIN = dict(max_train_images=160, val_images=32, epochs=1, batch_size=32, layers=3, init_channels=8,
             channels_last=False, fused_optimizer=False)


def make_search(**kw):
    """A tiny search after one full iteration of Algorithm 1 (shapes, lambda*, BN set)."""
    s = RACLSearch(get_profile("smoke", {**SEARCH, **kw}), None, progress=False)
    (_, xw, yw), (_, xa, ya) = next(zip(s.train_loader.epoch(0), s.arch_loader.epoch(0)))
    s.train_step(0, 0, xw, yw, xa, ya)
    return s, xa, ya


def search_pieces(s, xa, ya):
    """The architecture objective on a fixed batch, its pieces, and its gradients with
    respect to mu, sigma and the weights."""
    s.model.train()
    total, ce, gn, _ = s.loss(xa, ya, s.arch_weights(s._eps(0, 1)))
    c = s.constraint(s.propagation().network)
    obj = total + s.dual.penalty(c)
    mu, sigma, w = s.dist.mu_parameters(), s.dist.sigma_parameters(), list(s.model.parameters())
    grads = torch.autograd.grad(obj, mu + sigma + w, allow_unused=True)
    flat = lambda gs: torch.cat([g.flatten() for g in gs if g is not None])  # noqa: E731
    return {"total": total.item(), "ce": ce.item(), "gn": gn.item(), "c": c.item(),
            "log_lambda": s.log_lambda.detach().clone(), "log_C": float(s.log_C),
            "g_mu": flat(grads[: len(mu)]), "g_sigma": flat(grads[len(mu): len(mu) + len(sigma)]),
            "g_w": flat(grads[len(mu) + len(sigma):]),
            "mu_after_step": torch.cat([p.detach().flatten() for p in mu])}


def cos(a, b):
    return F.cosine_similarity(a.double(), b.double(), dim=0).item()


def test_channels_last_search_matches_baseline():
    """A whole iteration (weight step, mu and sigma steps, dual) and then the objective."""
    a, b = search_pieces(*make_search()), search_pieces(*make_search(channels_last=True))
    for k in ("total", "ce", "gn", "c", "log_C"):
        assert b[k] == pytest.approx(a[k], rel=1e-4, abs=1e-5), k
    torch.testing.assert_close(b["log_lambda"], a["log_lambda"], rtol=1e-4, atol=1e-5)
    for k in ("g_mu", "g_sigma", "g_w", "mu_after_step"):
        torch.testing.assert_close(b[k], a[k], rtol=1e-3, atol=1e-5, msg=k)


def test_bf16_search_stays_within_bf16_tolerance_of_fp32():
    """The objective on the same weights, distribution and batch under fp32 and under bf16,
    then a whole iteration in bf16."""
    s, xa, ya = make_search()
    a = search_pieces(s, xa, ya)
    s.precision = "bf16"
    b = search_pieces(s, xa, ya)
    # the network in bf16 (8 bits of mantissa): losses to a few parts in a hundred
    for k in ("total", "ce"):
        assert b[k] == pytest.approx(a[k], rel=3e-2), k
    assert b["gn"] == pytest.approx(a["gn"], rel=0.1)  # double back-propagation in bf16
    for k in ("g_mu", "g_sigma", "g_w"):  # sigma's gradients are the smallest and noisiest
        assert cos(a[k], b[k]) > 0.95, k
    # the Lipschitz machinery runs in fp32 even inside autocast: the same constants
    state = copy.deepcopy(s.lip.state_dict())
    s.refresh_lipschitz()
    ref = s.log_lambda.clone()
    s.lip.load_state_dict(copy.deepcopy(state))
    with speed.autocast("bf16", "cpu"):
        s.refresh_lipschitz()
    assert s.log_lambda.dtype == torch.float32 and torch.equal(s.log_lambda, ref)
    (_, xw, yw), (_, xa, ya) = next(zip(s.train_loader.epoch(0, 1), s.arch_loader.epoch(0, 1)))
    stats = s.train_step(0, 1, xw, yw, xa, ya)
    assert torch.isfinite(torch.tensor([stats.loss, stats.arch_loss, stats.c])).all()
    assert all(torch.isfinite(p).all() for p in s.dist.parameters())


def train_step(**kw):
    t = AdversarialTrainer(get_profile("smoke", {**TRAIN, **kw}, kind="train"), None, progress=False)
    _, x, y = next(iter(t.train_loader.epoch(0)))
    loss, _ = t.train_step(0, 0, x, y)
    return loss, torch.cat([p.detach().flatten() for p in t.model.parameters()])


@pytest.mark.parametrize("flag", ["channels_last", "fused_optimizer"])
def test_training_fast_paths_match_baseline(flag):
    loss0, w0 = train_step()
    loss1, w1 = train_step(**{flag: True})
    assert loss1 == pytest.approx(loss0, rel=1e-4)
    torch.testing.assert_close(w1, w0, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("method", ["pgd", "trades"])
def test_bf16_training_step_within_tolerance(method):
    loss0, w0 = train_step(method=method)
    loss1, w1 = train_step(method=method, precision="bf16")
    assert loss1 == pytest.approx(loss0, rel=5e-2)
    assert cos(w1, w0) > 0.999


def test_bad_speed_settings_are_clear_errors():
    with pytest.raises(ValueError, match="precision must be one of"):
        get_profile("smoke", {"precision": "fp16"})
    with pytest.raises(ValueError, match="true, false or auto"):
        get_profile("smoke", {"channels_last": "sometimes"}, kind="train")
    assert speed.resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert speed.resolve_flag("auto", torch.device("cuda")) is True
    assert speed.resolve_flag("auto", torch.device("cpu")) is False


def test_checkpoint_from_before_the_speed_fields_resumes(tmp_path):
    cfg = get_profile("smoke", {**TRAIN, "channels_last": "auto", "fused_optimizer": "auto"}, kind="train")
    t = AdversarialTrainer(cfg, tmp_path / "r", progress=False)
    state = t.state_dict()
    for k in ("precision", "channels_last", "fused_optimizer"):
        state["config"].pop(k)  # a checkpoint written by an older version
    save_checkpoint(t.run.checkpoint, state)
    assert AdversarialTrainer(cfg, tmp_path / "r", progress=False)._resumed
    # the memory format may change on resume (same arithmetic); the precision may not
    cl = get_profile("smoke", {**TRAIN, "channels_last": True}, kind="train")
    assert AdversarialTrainer(cl, tmp_path / "r", progress=False)._resumed
    bf = get_profile("smoke", {**TRAIN, "precision": "bf16"}, kind="train")
    with pytest.raises(CheckpointError, match="differs in: precision"):
        AdversarialTrainer(bf, tmp_path / "r", progress=False)
