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


def rel_err(b, a):
    """Norm-wise relative error ||b - a|| / ||a|| (in float64) over the finite entries; the
    non-finite ones (ln 0 = -inf for the zero op) must sit in the same places."""
    a, b = a.double().flatten(), b.double().flatten()
    finite = torch.isfinite(a)
    assert torch.equal(finite, torch.isfinite(b)) and torch.equal(a[~finite], b[~finite])
    a, b = a[finite], b[finite]
    return ((b - a).norm() / a.norm().clamp_min(1e-300)).item()


# fp32 carries 24 bits (unit roundoff u = 2**-24 = 6e-8). A convolution sums a few hundred
# products, and channels_last sums them in another order: each output may differ by about
# sqrt(K) * u = 1e-6 relative for K ~ 300, and the 3-cell supernet, its double backward and
# the log-normal propagation chain a few tens of such layers. RTOL = 1e-4 is 100x that
# estimate; a layout bug (a transposed tensor, a wrong stride) gives errors of order 1.
RTOL = 1e-4


def test_channels_last_search_matches_baseline_at_the_same_state():
    """channels_last changes the memory layout, not the arithmetic. On the same weights,
    distribution, lambda*, power-iteration vectors and batch, the objective, the constraint
    and the gradients of mu, sigma and the weights agree to fp32 rounding. One forward and
    one backward pass: nothing amplifies the rounding."""
    a, xa, ya = make_search()
    b = RACLSearch(get_profile("smoke", {**SEARCH, "channels_last": True}), None, progress=False)
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    pa, pb = search_pieces(a, xa, ya), search_pieces(b, xa, ya)
    for k in ("total", "ce", "gn", "c", "log_C"):
        assert pb[k] == pytest.approx(pa[k], rel=RTOL, abs=1e-6), k
    for k in ("log_lambda", "g_mu", "g_sigma", "g_w"):
        assert rel_err(pb[k], pa[k]) < RTOL, k


def test_channels_last_search_iteration_stays_within_what_rounding_can_do():
    """A whole iteration of Algorithm 1 (weight step, mu and sigma steps, dual) from the same
    initial state, with and without channels_last.

    The weight step is SGD from identical weights, linear in the gradient: the weights agree
    to rounding (RTOL). The architecture steps are Adam's first steps, whose size is
    arch_lr * m_hat / (sqrt(v_hat) + eps) = arch_lr * g / (|g| + eps): about arch_lr * sign(g)
    for every component, however small its gradient. A component whose gradient is at the
    rounding level can therefore move by arch_lr one way in one run and the other way in the
    other, so what rounding alone can do to mu and sigma after one iteration is
    |difference| <= 2 * arch_lr per component. That is the bound asserted (and the reason
    the objective *after* the iteration is not compared: a few sign flips of arch_lr move it
    by far more than rounding, by different amounts on different CPUs)."""
    a, _, _ = make_search()
    b, _, _ = make_search(channels_last=True)
    wa = torch.cat([p.detach().flatten() for p in a.model.parameters()])
    wb = torch.cat([p.detach().flatten() for p in b.model.parameters()])
    assert rel_err(wb, wa) < RTOL
    lr = a.cfg.arch_lr
    for group in ("mu_parameters", "sigma_parameters"):
        pa = torch.cat([p.detach().flatten() for p in getattr(a.dist, group)()])
        pb = torch.cat([p.detach().flatten() for p in getattr(b.dist, group)()])
        assert (pb - pa).abs().max().item() <= 2 * lr * (1 + 1e-3), group
    assert a.dual.state_dict().keys() == b.dual.state_dict().keys()


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


def trainer(**kw):
    t = AdversarialTrainer(get_profile("smoke", {**TRAIN, **kw}, kind="train"), None, progress=False)
    _, x, y = next(iter(t.train_loader.epoch(0)))
    return t, x, y


def train_step(**kw):
    t, x, y = trainer(**kw)
    loss, _ = t.train_step(0, 0, x, y)
    return loss, torch.cat([p.detach().flatten() for p in t.model.parameters()])


@pytest.mark.parametrize("flag", ["channels_last", "fused_optimizer"])
def test_training_fast_paths_match_baseline(flag, monkeypatch):
    """One adversarial training step from the same initial weights on the same batch.

    PGD steps along sign(grad): a pixel whose input gradient is at the rounding level may
    step the other way under another summation order, and that is not rounding any more.
    So the step is compared with the *same* adversarial examples (the baseline's) fed to
    both runs: what remains (loss, gradient clipping, the SGD update) is linear in rounding
    errors, and the weights after the step agree to RTOL. The crafting itself is compared
    separately: the examples may differ only where a sign flipped, by at most two PGD
    steps, in a small fraction of the pixels."""
    t0, x, y = trainer()
    gen = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    x_adv0 = t0.craft(x, y, gen())
    t1, _, _ = trainer(**{flag: True})
    x_adv1 = t1.craft(speed.as_input(x, t1.channels_last), y, gen())
    diff = (x_adv1 - x_adv0).abs()
    assert diff.max().item() <= 2 * t0.cfg.step_size + 1e-6
    assert (diff > 1e-6).float().mean().item() < 0.01  # sign flips are rare
    for t in (t0, t1):
        monkeypatch.setattr(t, "craft", lambda *a, **k: x_adv0.clone())
    loss0, _ = t0.train_step(0, 0, x, y)
    loss1, _ = t1.train_step(0, 0, x, y)
    assert loss1 == pytest.approx(loss0, rel=RTOL)
    w0 = torch.cat([p.detach().flatten() for p in t0.model.parameters()])
    w1 = torch.cat([p.detach().flatten() for p in t1.model.parameters()])
    assert rel_err(w1, w0) < RTOL


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


def test_factorized_reduce_double_backward_in_channels_last_on_the_cpu():
    """PyTorch 2.14's CPU double backward of a stride-2 1x1 convolution of a channels_last
    input corrupts the heap (the process aborts; seen on an AMD EPYC, where it killed the whole
    test run). FactorizedReduce samples every other pixel and convolves at stride 1 instead
    there: the same map. Run in a subprocess, so that a crash fails this test alone; and the
    two forms give the same output (float64, where both are exact to 1e-12)."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import torch
        from racl.operations import FactorizedReduce
        torch.manual_seed(0)
        op = FactorizedReduce(4, 4, affine=False).train().to(memory_format=torch.channels_last)
        for _ in range(5):
            x = torch.randn(8, 4, 8, 8).to(memory_format=torch.channels_last).requires_grad_(True)
            (g,) = torch.autograd.grad(op(x).square().sum(), x, create_graph=True)
            g.norm().backward()
        print("ok")
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and res.stdout.strip() == "ok", (res.returncode, res.stderr[-2000:])

    from racl.operations import FactorizedReduce

    torch.manual_seed(0)
    op = FactorizedReduce(4, 4, affine=False).double().eval()
    x = torch.randn(3, 4, 6, 6, dtype=torch.float64)
    xc = x.to(memory_format=torch.channels_last)
    assert torch.allclose(op(x), op(xc), rtol=0, atol=1e-12)


def test_channels_last_search_step_does_not_crash_on_the_cpu():
    """One RACL iteration (with its double back-propagation) and one PC-DARTS-like pass in
    channels_last on the CPU, in a subprocess (see the test above)."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(f"""
        import torch
        from racl.profiles import get_profile
        from racl.search import RACLSearch
        s = RACLSearch(get_profile("smoke", {{**{SEARCH!r}, "channels_last": True}}), None, progress=False)
        for i, ((_, xw, yw), (_, xa, ya)) in enumerate(zip(s.train_loader.epoch(0), s.arch_loader.epoch(0))):
            if i == 2:
                break
            s.train_step(0, i, xw, yw, xa, ya)
        print("ok")
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0 and res.stdout.strip() == "ok", (res.returncode, res.stderr[-2000:])


def test_operator_count_tells_computing_operators_from_views():
    """racl.speed.operator_count: every ATen operator, those that compute (views, detaches and
    bare allocations launch no kernel) and the convolutions, backward passes included."""
    from racl.speed import launches_kernel, operator_count

    a = torch.ops.aten
    assert not any(launches_kernel(f) for f in (a.detach.default, a.view.default, a.transpose.int, a.slice.Tensor,
                                                a._unsafe_view.default, a.empty.memory_format))
    assert all(launches_kernel(f) for f in (a.mul.Tensor, a.convolution.default, a.zeros_like.default))
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    fwd = operator_count(lambda: F.conv2d(x.transpose(2, 3), w).detach())
    assert fwd == {"ops": 3, "kernels": 1, "convolutions": 1}
    both = operator_count(lambda: F.conv2d(x, w).sum().backward())
    assert both["convolutions"] == 1 and both["kernels"] < both["ops"]
