"""The opt-in fast paths of the search (racl.search, SearchConfig fields ``arch_update``,
``grad_norm_grad``, ``power_iteration_fused``) against the exact path.

* Defaults: every fast path is off, so the default step is the paper's Algorithm 1 as before.
* ``arch_update="joint"``: one pass for mu and sigma. Its mu update is the alternating
  path's mu update; its sigma update is the alternating sigma update taken at the step's
  starting mu (Eq. 18 takes it after the mu update).
* ``grad_norm_grad="finite_difference"``: d/dtheta ||grad_x L|| by a forward difference of
  two first-order passes. On a smooth network the error is truncation O(h) plus rounding
  O(eps/h) and the test checks both. On the real (ReLU) supernet a third error dominates:
  a ReLU or max-pool that switches between x and x + h d adds a jump of size O(1) / h, and
  about (units switching) ~ h of them switch, so the estimate is right on average but noisy
  with a variance ~ 1/h that no small h removes; h = 0.1 (per image, pixels in [0, 1]) is
  where noise and truncation balance (measured on real CIFAR batches, see below).
* ``power_iteration_fused``: the warm-started estimate read off the iteration itself, within
  a stated tolerance of a converged estimate during a search.
* ``lipschitz_method="lanczos"``: the warm-started Krylov estimate of every ||W||_2 within
  TOL_LN_LAMBDA of the exact spectral norm (the explicit matrix's) during a search, where one
  power iteration per step is not (the xfail below records by how much it misses).
"""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from racl.constraint import input_gradient_norm
from racl.lipschitz import LipschitzEstimator, exact_operator_norm, lanczos, power_iteration, power_iteration_fused
from racl.profiles import SearchConfig, get_profile, SEARCH_PROFILES
from racl.search import RACLSearch

TINY = dict(dataset="synthetic-8", max_train_images=96, batch_size=16, epochs=2, arch_warmup_epochs=0,
            eval_batches=1, power_iterations_init=5, channels_last=False, fused_optimizer=False)
EPS32 = torch.finfo(torch.float32).eps


def flat(gs):
    return torch.cat([g.flatten() for g in gs if g is not None]).double()


def cos(a, b):
    return F.cosine_similarity(a, b, dim=0).item()


def rel(a, ref):
    return ((a - ref).norm() / ref.norm()).item()


def exact_pieces(s, x, y, make_arch, params):
    """grad mean CE and grad mean ||grad_x CE_i|| by double back-propagation (the exact path)."""
    x0 = x.detach().requires_grad_(True)
    ce_i = F.cross_entropy(s.forward(x0, make_arch()), y, reduction="none")
    gn = input_gradient_norm(ce_i, x0, create_graph=True).mean()
    g_ce = torch.autograd.grad(ce_i.mean(), params, retain_graph=True, allow_unused=True)
    g_gn = torch.autograd.grad(gn, params, allow_unused=True)
    return flat(g_ce), flat(g_gn)


def fd_pieces(s, x, y, make_arch, params, h):
    """grad mean CE and the finite-difference grad of mean ||grad_x CE_i||; checks that the
    extra pass leaves the BN running statistics as one forward pass leaves them."""
    state = {k: v.clone() for k, v in s.model.state_dict().items()}
    _, _, _, g_ce, g_gn = s.grad_norm_fd(x, y, make_arch, params, h)
    after = {k: v.clone() for k, v in s.model.state_dict().items()}
    s.model.load_state_dict(state)
    with torch.no_grad():
        s.forward(x, make_arch())
    assert all(torch.equal(after[k], v) for k, v in s.model.state_dict().items()), "the extra pass moved BN statistics"
    return flat(g_ce), flat(g_gn)


# ---------------------------------------------------------------------------- defaults
def test_fast_paths_are_off_by_default_and_validated():
    for cfg in [SearchConfig(), *SEARCH_PROFILES.values()]:
        assert (cfg.arch_update, cfg.grad_norm_grad, cfg.power_iteration_fused) == ("alternating", "exact", False)
        assert not cfg.power_iteration_batched
    s = RACLSearch(get_profile("smoke", TINY), None, progress=False)
    assert not s._fast and not s.lip.fused and not s.lip.batched  # train_step runs the unchanged exact code
    with pytest.raises(ValueError, match="arch_update must be one of"):
        get_profile("smoke", {"arch_update": "both"})
    with pytest.raises(ValueError, match="grad_norm_grad must be one of"):
        get_profile("smoke", {"grad_norm_grad": "fd"})
    with pytest.raises(ValueError, match="grad_norm_fd_h must be positive"):
        get_profile("smoke", {"grad_norm_fd_h": 0})
    with pytest.raises(ValueError, match="needs precision=fp32"):
        RACLSearch(get_profile("smoke", {**TINY, "grad_norm_grad": "finite_difference", "precision": "bf16"}), None,
                   progress=False)


# ---------------------------------------------------------------------------- joint mu / sigma pass
def test_joint_pass_is_the_alternating_mu_step_and_sigma_at_the_starting_mu():
    """Three searches from the same seed and the same first (exact) iteration, then one
    more iteration each: alternating, joint, and alternating with mu frozen."""
    def run():
        s = RACLSearch(get_profile("smoke", TINY), None, progress=False)
        batches = list(zip(s.train_loader.epoch(0), s.arch_loader.epoch(0)))[:2]
        (_, xw, yw), (_, xa, ya) = batches[0]
        s.train_step(0, 0, xw, yw, xa, ya)
        return s, batches[1]

    alt, b = run()
    joint, _ = run()
    joint.cfg.arch_update, joint._fast = "joint", True  # from here on, one pass for mu and sigma
    frozen, _ = run()
    frozen.mu_opt.step = lambda: None  # the alternating path with mu held at its starting value
    for s in (alt, joint, frozen):
        (_, xw, yw), (_, xa, ya) = b
        s.train_step(0, 1, xw, yw, xa, ya)
    mu = lambda s: flat(s.dist.mu_parameters())  # noqa: E731
    sigma = lambda s: flat(s.dist.sigma_parameters())  # noqa: E731
    # the same gradients, summed in another order: one Adam step apart by fp32 rounding
    torch.testing.assert_close(mu(joint), mu(alt), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(sigma(joint), sigma(frozen), rtol=1e-6, atol=1e-7)
    assert not torch.equal(sigma(joint), sigma(alt))  # Eq. 18's order does matter


# ---------------------------------------------------------------------------- finite differences
def smooth_search():
    """A tiny supernet without kinks (SiLU for ReLU, no max pooling, K = 1) in fp64: where the
    finite difference's error is exactly truncation plus rounding."""
    s = RACLSearch(get_profile("smoke", {**TINY, "partial_channels": 1,
                                         "primitives": ("none", "skip_connect", "avg_pool_3x3", "sep_conv_3x3")}),
                   None, progress=False)
    for m in list(s.model.modules()):
        for name, child in m.named_children():
            if isinstance(child, nn.ReLU):
                setattr(m, name, nn.SiLU())
    s.model.train()
    return s


def test_finite_difference_converges_at_first_order_on_a_smooth_supernet():
    s = smooth_search()
    (_, x, y), = [next(iter(s.train_loader.epoch(0)))]
    eps = s._eps(0, 0)
    params = s.dist.mu_parameters() + s.dist.sigma_parameters()
    arch = lambda: s.arch_weights(eps)  # noqa: E731
    s.model.double()
    s.dist.double()
    x64 = x.double()
    g_ce_ref, exact = exact_pieces(s, x64, y, arch, params)
    errs = {h: rel(fd_pieces(s, x64, y, arch, params, h)[1], exact) for h in (0.04, 0.02, 0.01)}
    print(f"\nsmooth supernet, fp64: relative error of the term by h: {errs}")
    # truncation error c h: halving h halves it (ratio 2 up to O(h^2) terms)
    assert 1.7 < errs[0.04] / errs[0.02] < 2.3 and 1.7 < errs[0.02] / errs[0.01] < 2.3, errs
    assert errs[0.01] < 0.05, errs
    # in fp32: truncation (as in fp64) plus rounding. Each first-order gradient carries a
    # relative rounding error delta (measured here against fp64), so the difference of the
    # two, divided by h, carries an absolute error of about 2 delta |grad CE| / h. The
    # assertion allows 3x the sum of the two.
    s.model.float()
    s.dist.float()
    g_ce32, _ = fd_pieces(s, x, y, arch, params, 0.01)
    delta = max(rel(g_ce32, g_ce_ref), 16 * EPS32)
    for h in (0.01, 0.001):
        _, fd32 = fd_pieces(s, x, y, arch, params, h)
        rounding = 2 * delta * g_ce_ref.norm().item() / (h * exact.norm().item())
        truncation = errs[0.01] * h / 0.01
        err = rel(fd32, exact)
        print(f"fp32, h={h}: error {err:.2e}, truncation {truncation:.2e} + rounding {rounding:.2e} (delta {delta:.1e})")
        assert err <= 3 * (truncation + rounding), (h, err, truncation, rounding)


@pytest.fixture(scope="module")
def cifar_search(shared_data):
    """The smoke supernet on real CIFAR-10 images (32x32), after one weight step."""
    import os

    os.environ.setdefault("RACL_DATA", str(shared_data))
    s = RACLSearch(get_profile("smoke", {**TINY, "dataset": "cifar10-mini", "max_train_images": 256, "batch_size": 32,
                                         "arch_warmup_epochs": 1}), None, progress=False)
    batches = list(zip(s.train_loader.epoch(0), s.arch_loader.epoch(0)))[:3]
    (_, xw, yw), (_, xa, ya) = batches[0]
    s.train_step(0, 0, xw, yw, xa, ya)
    s.model.train()
    return s, batches[1:]


# Measured on the two batches below (smoke supernet, cifar10-mini, fp32, h = 0.1): for the
# gradient-norm term alone, cosine 0.90 / relative error 0.43 for the weights, cosine 0.993 /
# relative error 0.17 for mu and sigma; the objective's whole gradient (CE + 0.1 x term)
# has cosine > 0.998. The error is the ReLU switching noise of the module docstring: fp32 and
# fp64 give the same numbers to three digits, and it shrinks as h grows to 0.1-0.3 before
# truncation takes over. The bounds below leave a margin for other batches and CPUs.
@pytest.mark.parametrize("target", ["weights", "arch"])
def test_finite_difference_against_double_backprop_on_cifar(cifar_search, target):
    s, batches = cifar_search
    gamma, h = s.cfg.grad_norm_weight, 0.1
    assert s.cfg.grad_norm_fd_h == h
    eps = s._eps(0, 1)
    results = []
    for (_, xw, yw), (_, xa, ya) in batches:
        if target == "weights":
            params, arch, x, y = list(s.model.parameters()), (lambda: s.arch_weights(eps).detach()), xw, yw
        else:
            params, arch, x, y = s.dist.mu_parameters() + s.dist.sigma_parameters(), (lambda: s.arch_weights(eps)), xa, ya
        state = {k: v.clone() for k, v in s.model.state_dict().items()}
        g_ce, g_gn = exact_pieces(s, x, y, arch, params)
        s.model.load_state_dict(state)
        f_ce, f_gn = fd_pieces(s, x, y, arch, params, h)
        torch.testing.assert_close(f_ce, g_ce, rtol=1e-5, atol=1e-8)  # the first-order part is the same gradient
        results.append((cos(f_gn, g_gn), rel(f_gn, g_gn), cos(f_ce + gamma * f_gn, g_ce + gamma * g_gn)))
    print(f"\n{target}: (term cosine, term relative error, whole-gradient cosine) per batch: "
          + ", ".join(f"({a:.4f}, {b:.3f}, {c:.5f})" for a, b, c in results))
    min_cos, max_rel = (0.8, 0.7) if target == "weights" else (0.97, 0.35)
    for c_term, r_term, c_all in results:
        assert c_term > min_cos and r_term < max_rel and c_all > 0.99


def test_finite_difference_search_step_runs_and_counts_the_term():
    s = RACLSearch(get_profile("smoke", {**TINY, "grad_norm_grad": "finite_difference", "arch_update": "joint",
                                         "power_iteration_fused": True}), None, progress=False)
    ref = RACLSearch(get_profile("smoke", TINY), None, progress=False)
    (_, xw, yw), (_, xa, ya) = next(zip(s.train_loader.epoch(0), s.arch_loader.epoch(0)))
    a, b = s.train_step(0, 0, xw, yw, xa, ya), ref.train_step(0, 0, xw, yw, xa, ya)
    # the reported loss and gradient norm are those of the exact path on the same weights
    assert a.loss == pytest.approx(b.loss, rel=1e-5) and a.grad_norm == pytest.approx(b.grad_norm, rel=1e-5)
    assert all(math.isfinite(v) for v in (a.arch_loss, a.c)) and s.dual.theta >= 0


# ---------------------------------------------------------------------------- power iteration
def test_finite_difference_gradients_are_combined_per_tensor_bit_for_bit():
    """fd_gradients and add_scaled take each step over all parameters at once (torch._foreach_*:
    a few kernels on a GPU, not one per tensor); each element is the per-tensor expression's,
    bit for bit, parameters without a gradient in either pass included; and a pass's operators
    drop by at least one per parameter tensor."""
    from racl import speed
    from racl.search import add_scaled, fd_gradients

    gen = torch.Generator().manual_seed(0)
    shapes = [(3, 4, 3, 3), (7,), (2, 5), (1,), (6, 1, 5, 5)]
    g0 = [torch.randn(s, generator=gen) for s in shapes] + [None, torch.randn(3, generator=gen), None]
    g1 = [torch.randn(s, generator=gen) for s in shapes] + [torch.randn(4, generator=gen), None, None]
    n, h, gamma = 7, 0.1, 0.3
    g_ce, g_gn = fd_gradients(g0, g1, n, h)
    for a, b, c, g in zip(g0, g1, g_ce, g_gn):
        want_ce = None if a is None else a / n
        want_gn = None if a is None and b is None else (b if a is None else (b - a if b is not None else -a)) / (h * n)
        for got, want in ((c, want_ce), (g, want_gn)):
            assert (got is None) == (want is None) and (got is None or torch.equal(got, want))
    for got, a, b in zip(add_scaled(g_ce, g_gn, gamma), g_ce, g_gn):
        want = a if b is None else (b * gamma if a is None else a + gamma * b)
        assert (got is None) == (want is None) and (got is None or torch.equal(got, want))
    assert add_scaled([], [], gamma) == [] and fd_gradients([], [], n, h) == ([], [])

    # in a search step: the combination is two foreach calls per pass, not one operator per tensor
    cfg = get_profile("smoke", {"device": "cpu", "grad_norm_grad": "finite_difference", "arch_warmup_epochs": 0})
    torch.manual_seed(0)
    s = RACLSearch(cfg, None, progress=False)
    (_, x, y), = [b for b, _ in zip(s.train_loader.epoch(0), range(1))]
    w = [p for p in s.model.parameters() if p.requires_grad]
    arch = s.arch_weights(None).detach()
    counted = speed.operator_count(lambda: s.loss_grads(x, y, lambda: arch, w))["ops"]

    def loop_version(x, y):  # the same pass with the per-tensor combination
        ce, gn, logits, g_ce, g_gn = s.grad_norm_fd(x, y, lambda: arch, w, cfg.grad_norm_fd_h)
        return [a if b is None else (b * cfg.grad_norm_weight if a is None else a + cfg.grad_norm_weight * b)
                for a, b in zip(g_ce, g_gn)]

    loop = speed.operator_count(lambda: loop_version(x, y))["ops"]
    assert len(w) > 20 and counted + len(w) - 2 <= loop  # a multiply and an add per tensor, against two in all


def test_fused_estimate_lies_between_the_start_and_end_estimates():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 5, 3, padding=1, bias=False).double()
    shape = (3, 6, 6)
    exact = exact_operator_norm(conv, shape)
    v = torch.randn((1, *shape), dtype=torch.float64)
    v = v / v.norm()
    for n in (1, 3, 10):
        start = conv(v).norm().item() if n == 1 else power_iteration(conv, v, n - 1)[0].item()
        fused, v_f = power_iteration_fused(conv, v, n)
        full, v_p = power_iteration(conv, v, n)
        assert torch.allclose(v_f, v_p, rtol=1e-12, atol=1e-14)  # the same iteration
        assert start * (1 - 1e-12) <= fused.item() <= full.item() * (1 + 1e-12) <= exact * (1 + 1e-9)


# The tolerance: ln lambda enters the constraint c through log-sum-exps, so an error of at
# most tol in every ln lambda moves ln of each edge's and node's bound by at most tol and c by
# at most (cells x nodes) x tol. We ask the warm-started estimates (one iteration per
# architecture step, as every profile runs) to stay within tol = 1e-3 of a converged estimate
# (the same vectors iterated 50 more times, on the same weights): c then moves by at most
# 0.012 on this 3-cell supernet, against the c of order 0.1 - 1 the dual reacts to.
TOL_LN_LAMBDA = 1e-3


@pytest.mark.xfail(strict=True, reason=(
    "not met yet: after 20 initial iterations the warm-started estimates sit about 0.06 below "
    "(in ln lambda) the same vectors iterated 50 more times, and 1, 2, 3, 5 or 10 iterations per "
    "step shrink that only to 0.062, 0.060, 0.059, 0.057, 0.046 over three steps (smoke, "
    "2-core Xeon). Over 40 steps at one iteration per step the worst part stays 0.06-0.33 "
    "from a 200-iteration estimate while the mean over parts is -0.002 to -0.005: a few parts "
    "(dense top of the spectrum, weights that move) never settle; the iteration count that "
    "meets TOL_LN_LAMBDA for every part is still to be found. Against the exact norms (explicit "
    "matrices, AMD EPYC) one iteration per step leaves the worst part 0.056 low and ~100 of 310 "
    "parts more than 1e-3 low, on parts whose sigma_2 / sigma_1 is 0.94-1.0: power iteration "
    "cannot close that in a few iterations; lipschitz_method='lanczos' does (the test below)"))
@pytest.mark.parametrize("fused", [False, True])
def test_warm_started_power_iteration_tracks_the_converged_constants(fused):
    s = RACLSearch(get_profile("smoke", {**TINY, "power_iteration_fused": fused, "power_iterations_init": 20}), None,
                   progress=False)
    worst = []
    refresh = s.refresh_lipschitz

    def refresh_and_compare():
        refresh()  # one warm-started iteration per part (power_iterations = 1)
        est = LipschitzEstimator(s.cfg.op_constants, 50, 50)
        est.load_state_dict(s.lip.state_dict())
        ref = s.model.log_lambdas(est)
        finite = torch.isfinite(ref)
        worst.append((s.log_lambda[finite] - ref[finite]).abs().max().item())

    s.refresh_lipschitz = refresh_and_compare
    for step, ((_, xw, yw), (_, xa, ya)) in enumerate(zip(s.train_loader.epoch(0), s.arch_loader.epoch(0))):
        if step == 3:
            break
        s.train_step(0, step, xw, yw, xa, ya)  # the weights move by SGD between the refreshes
    print(f"\nfused={fused}: max |ln lambda - converged| per refresh: {[f'{w:.1e}' for w in worst]}")
    assert len(worst) >= 3 and max(worst[1:]) < TOL_LN_LAMBDA  # worst[0]: right after the 20 initial iterations


# ------------------------------------------------------------------ Lanczos (lipschitz_method)
def _dense_top_map(n=64, gap=0.99, seed=0):
    """A linear map R^n -> R^n with singular values 1, gap, gap^2, ...: a dense top of the
    spectrum like the supernet's separable convolutions (sigma_2 / sigma_1 = 0.94-1.0)."""
    g = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    s = gap ** torch.arange(n, dtype=torch.float64)
    m = (u * s) @ v.T
    return (lambda x: x.reshape(x.shape[0], -1) @ m.T.to(x.dtype)), 1.0


def test_lanczos_converges_where_power_iteration_crawls():
    fn, norm = _dense_top_map()
    v = torch.randn(1, 64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    sig_pi, _ = power_iteration(fn, v, 10)
    sig_lz, y, k = lanczos(fn, v, max_steps=10, tol=1e-12)
    assert k == 10 and abs(y.norm().item() - 1) < 1e-12
    # with sigma_2 / sigma_1 = 0.99, ten power iterations leave a gap of order 1e-2;
    # ten Krylov steps leave a far smaller one, and both stay below the norm
    assert norm - sig_lz.item() < 0.2 * (norm - sig_pi.item())
    assert sig_lz.item() <= norm * (1 + 1e-12) and sig_pi.item() <= norm * (1 + 1e-12)
    # the residual criterion stops early, and the Ritz vector warm-starts the next call
    sig1, y1, k1 = lanczos(fn, v, max_steps=60, tol=1e-6)
    assert k1 < 60 and norm - sig1.item() < 1e-5
    sig2, _, k2 = lanczos(fn, y1, max_steps=60, tol=1e-6)
    assert k2 < k1 and norm - sig2.item() < 1e-5
    with pytest.raises(ValueError, match="at least one step"):
        lanczos(fn, v, max_steps=0)


def test_lanczos_on_an_invariant_subspace_stops_at_once():
    fn = lambda x: 3.0 * x  # noqa: E731  every vector is a top singular vector
    sig, _, k = lanczos(fn, torch.ones(1, 5, dtype=torch.float64), max_steps=8)
    assert k == 1 and abs(sig.item() - 3.0) < 1e-12


def test_warm_started_lanczos_tracks_the_exact_constants():
    """During a search (the weights moving by SGD between refreshes), every warm-started
    Lanczos estimate lies within TOL_LN_LAMBDA below the exact ||W||_2 of its part (the
    largest singular value of the part's explicit matrix, in float64).

    The upper side is rounding only: a Ritz value of the float32 operator is at most its
    largest eigenvalue, and the float32 matrix differs from the float64 one by about n * eps
    relative (n <= 8 * 8 * 8 = 512 inputs per output: 3e-5), so the estimate may exceed the
    exact norm by at most 1e-4 in ln."""
    cfg = get_profile("smoke", {**TINY, "lipschitz_method": "lanczos", "power_iterations_init": 20})
    s = RACLSearch(cfg, None, progress=False)
    assert s.lip.method == "lanczos" and s.lip.n_iter == cfg.lanczos_steps
    parts = {}
    part_constant = s.lip.part_constant

    def recording(key, part, in_shape, like):
        out = part_constant(key, part, in_shape, like)
        parts[key] = (part, tuple(in_shape), out[0].item())
        return out

    s.lip.part_constant = recording
    worst, steps = [], []
    refresh = s.refresh_lipschitz

    def refresh_and_compare():
        parts.clear()
        s.lip.steps_taken.clear()
        refresh()
        errs = []
        for key, (part, shape, est) in parts.items():
            if part.const is not None:
                continue
            exact = exact_operator_norm(lambda x: part.fn(x.float()).double(), shape)
            errs.append(math.log(exact) - math.log(est))
        assert errs and min(errs) > -1e-4, f"an estimate above the exact norm: {min(errs):.2e}"
        worst.append(max(errs))
        steps.append(sum(s.lip.steps_taken) / len(s.lip.steps_taken))

    s.refresh_lipschitz = refresh_and_compare
    for step, ((_, xw, yw), (_, xa, ya)) in enumerate(zip(s.train_loader.epoch(0), s.arch_loader.epoch(0))):
        if step == 3:
            break
        s.train_step(0, step, xw, yw, xa, ya)
    print(f"\nlanczos: max (ln ||W|| - ln estimate) per refresh {[f'{w:.1e}' for w in worst]}; "
          f"mean steps per part {[f'{k:.1f}' for k in steps]}")
    assert len(worst) >= 3 and max(worst) < TOL_LN_LAMBDA
    assert max(steps[1:]) <= cfg.lanczos_steps


def test_lipschitz_method_is_validated():
    with pytest.raises(ValueError, match="lipschitz_method"):
        get_profile("smoke", {"lipschitz_method": "arnoldi"})
    with pytest.raises(ValueError, match="lanczos_steps"):
        get_profile("smoke", {"lanczos_steps": 0})
    with pytest.raises(ValueError, match="method must be"):
        LipschitzEstimator("exact", method="svd")


# ---------------------------------------------------------------- depthwise second derivative
@pytest.mark.parametrize("stride,dilation,size", [(1, 1, 8), (2, 1, 8), (2, 1, 7), (1, 2, 8), (2, 2, 9)])
def test_explicit_depthwise_backward_is_the_native_one(stride, dilation, size):
    """DepthwiseConv2d with ``explicit`` set: the same output, input and weight gradients and
    the same second derivative (the gradient of ||grad_x L|| with respect to the input and the
    weight, as the gradient-norm term of Eq. 16 takes it) as nn.Conv2d, in float64 where the
    two summation orders agree to ~1e-15 relative (odd and even sizes: the output padding)."""
    from racl.operations import DepthwiseConv2d

    torch.manual_seed(0)
    C, k = 5, 3
    conv = DepthwiseConv2d(C, k, stride, dilation, dilation).double()
    x = torch.randn(3, C, size, size, dtype=torch.float64)
    target = torch.randn_like(conv(x))

    def pieces(explicit):
        conv.explicit = explicit
        x0 = x.clone().requires_grad_(True)
        y = conv(x0)
        loss = (torch.tanh(y) * target).sum()  # a non-linear head: the second derivative is not zero
        gx, = torch.autograd.grad(loss, x0, create_graph=True)
        gn = gx.flatten(1).norm(dim=1).sum()
        second = torch.autograd.grad(gn, [x0, conv.weight])
        y2 = conv(x.clone().requires_grad_(True))
        g1 = torch.autograd.grad((torch.tanh(y2) * target).sum(), conv.weight)[0]
        return y.detach(), gx.detach(), g1, second

    y_n, gx_n, gw_n, (sx_n, sw_n) = pieces(False)
    y_e, gx_e, gw_e, (sx_e, sw_e) = pieces(True)
    assert torch.equal(y_n, y_e)  # the same forward call
    for a, b in ((gx_e, gx_n), (gw_e, gw_n), (sx_e, sx_n), (sw_e, sw_n)):
        assert a.shape == b.shape and torch.allclose(a, b, rtol=1e-10, atol=1e-12)


def test_explicit_depthwise_backward_needs_two_convolutions_not_one_per_channel():
    """The reason for the switch: PyTorch differentiates a depthwise convolution's backward
    with one convolution per channel (C + 1 in all); the explicit one with a fixed few."""
    from racl.operations import DepthwiseConv2d
    from racl.speed import convolution_count

    counts = {}
    for C in (4, 16):
        conv = DepthwiseConv2d(C, 3, 2, 1)
        for explicit in (False, True):
            conv.explicit = explicit

            def term():
                x = torch.randn(2, C, 8, 8, requires_grad=True)
                gx, = torch.autograd.grad(conv(x).square().sum(), x, create_graph=True)
                gx.norm().backward()

            counts[C, explicit] = convolution_count(term)
    assert counts[16, False] - counts[4, False] == 12  # one more per channel
    assert counts[16, True] == counts[4, True] <= 6, counts  # whatever the width


def test_explicit_depthwise_backward_in_a_search_step():
    """``depthwise_backward="explicit"`` reaches every depthwise convolution of the supernet,
    is validated, and gives the exact path's losses and gradients of mu and the weights to
    fp32 rounding (same seed, same batch, one step from the same weights)."""
    from racl.operations import DepthwiseConv2d

    with pytest.raises(ValueError, match="depthwise_backward"):
        get_profile("smoke", {"depthwise_backward": "fast"})
    out = {}
    for mode in ("native", "explicit"):
        torch.manual_seed(0)
        s = RACLSearch(get_profile("smoke", {**TINY, "depthwise_backward": mode}), None, progress=False)
        dws = [m for m in s.model.modules() if isinstance(m, DepthwiseConv2d)]
        assert dws and all(m.explicit == (mode == "explicit") for m in dws)
        _, xw, yw = next(iter(s.train_loader.epoch(0)))
        eps = s._eps(0, 0)
        params = list(s.model.parameters()) + s.dist.mu_parameters()
        total, ce, gn, _, grads = s.loss_grads(xw, yw, lambda: s.arch_weights(eps), params)
        out[mode] = (total.detach(), gn.detach(), flat(grads))
    (t_n, gn_n, g_n), (t_e, gn_e, g_e) = out["native"], out["explicit"]
    assert torch.allclose(t_n, t_e, rtol=1e-5) and torch.allclose(gn_n, gn_e, rtol=1e-5)
    assert rel(g_e, g_n) < 1e-4 and cos(g_e, g_n) > 1 - 1e-6


def _second_derivatives_under_bf16(module, net, head, params, x):
    """For ``module.explicit`` False, then True: the input gradient of ``head(net(x).float())``
    with ``net`` under bf16 autocast, and the gradient of its norm with respect to ``params``
    (the second derivative of Eq. 16's term), as {explicit: (grad_x, *second)}."""
    res = {}
    for explicit in (False, True):
        module.explicit = explicit
        x0 = x.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = net(x0)
        gx, = torch.autograd.grad(head(y.float()), x0, create_graph=True)
        res[explicit] = (gx.detach(), *torch.autograd.grad(gx.norm(), params))
    return res


def test_explicit_depthwise_backward_under_bf16_autocast():
    """Under autocast (precision=bf16) the gradient reaches the explicit backward in bf16 while
    the weight is fp32: it computes in the gradient's dtype and returns the weight gradient in
    the weight's, within bf16 rounding (2^-8 relative, a few roundings deep) of the native path."""
    from racl.operations import DepthwiseConv2d

    torch.manual_seed(0)
    conv = DepthwiseConv2d(4, 3, 2, 1)
    res = _second_derivatives_under_bf16(conv, conv, lambda y: y.square().sum(), [conv.weight], torch.randn(2, 4, 8, 8))
    assert res[True][1].dtype == conv.weight.dtype == torch.float32
    for a, b in zip(res[True], res[False]):
        assert rel(a.double(), b.double()) < 8 * 2 ** -8


# ---------------------------------------------------------------- batch norm's second derivative
def _bn_pieces(bn, x, target):
    """Output, input gradient and the second derivative (the gradient of sum_i ||grad_x L_i||
    with respect to the input and BN's parameters, as Eq. 16's term takes it), twice in a row
    (running statistics moved twice)."""
    out = []
    for _ in range(2):
        x0 = x.clone().requires_grad_(True)
        y = bn(x0)
        loss = (torch.tanh(y) * target).sum()  # a non-linear head: the second derivative is not zero
        gx, = torch.autograd.grad(loss, x0, create_graph=True)
        gn = gx.flatten(1).norm(dim=1).sum()
        second = torch.autograd.grad(gn, [x0, *bn.parameters()])
        out.append((y.detach(), gx.detach(), *second))
    return out, (bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone())


@pytest.mark.parametrize("affine,momentum", [(False, 0.1), (True, 0.1), (False, None), (True, None)])
def test_explicit_batchnorm_backward_is_the_native_one(affine, momentum):
    """racl.operations.BatchNorm2d with ``explicit`` set: in training mode the same output,
    input gradient, second derivative and running statistics as nn.BatchNorm2d, in float64
    where the two summation orders agree to ~1e-14 relative; the hand-derived second
    derivative passes gradcheck and gradgradcheck. In evaluation mode it is nn.BatchNorm2d."""
    import copy

    from racl.operations import BatchNorm2d, _BatchNormFn

    torch.manual_seed(0)
    native = BatchNorm2d(5, affine=affine, momentum=momentum).double()
    if affine:
        with torch.no_grad():
            native.weight.uniform_(0.5, 1.5), native.bias.uniform_(-1, 1)
    explicit = copy.deepcopy(native)
    explicit.explicit = True
    x = 3 + 2 * torch.randn(4, 5, 6, 6, dtype=torch.float64)  # a mean and scale away from 0 and 1
    target = torch.randn_like(x)
    steps_n, stats_n = _bn_pieces(native, x, target)
    steps_e, stats_e = _bn_pieces(explicit, x, target)
    for a, b in zip([t for step in steps_e for t in step] + list(stats_e), [t for step in steps_n for t in step] + list(stats_n)):
        assert a.shape == b.shape and torch.allclose(a, b, rtol=1e-10, atol=1e-12)
    x64 = torch.randn(3, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    fn = lambda t: _BatchNormFn.apply(t, None, None, 0.1, 1e-5)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x64,)) and torch.autograd.gradgradcheck(fn, (x64,))
    for bn in (native, explicit):
        bn.eval()
    assert torch.equal(native(x), explicit(x))


def test_explicit_batchnorm_backward_takes_under_half_the_operators():
    """The reason for the switch: PyTorch's second derivative of batch norm is 66 ATen
    operators per layer (89 with the affine map; each at least one kernel launch on a GPU),
    the explicit one 24 (37): counted as the term's operators less those of the same term
    without the layer."""
    from racl.operations import BatchNorm2d
    from racl.speed import operator_count

    def count(layer, params):
        x = torch.randn(2, 4, 8, 8, requires_grad=True)
        gx, = torch.autograd.grad(layer(x).square().sum(), x, create_graph=True)
        term = gx.norm()
        return operator_count(lambda: torch.autograd.grad(term, [x, *params]))["ops"]

    rest = count(lambda t: t * 1.0, [])
    counts = {}
    for affine in (False, True):
        bn = BatchNorm2d(4, affine=affine)
        for explicit in (False, True):
            bn.explicit = explicit
            counts[affine, explicit] = count(bn, list(bn.parameters())) - rest
    for affine in (False, True):
        assert 0 < 2 * counts[affine, True] < counts[affine, False], counts
    # the figures the search chapter and the README quote (PyTorch 2.14: its own second
    # derivative may change with the version, which this flags)
    assert counts == {(False, False): 66, (False, True): 24, (True, False): 89, (True, True): 37}, counts


def test_explicit_batchnorm_backward_in_a_search_step():
    """``batchnorm_backward="explicit"`` reaches every batch norm of the supernet, is
    validated and resumable, and gives the exact path's losses and gradients of mu and the
    weights to fp32 rounding (same seed, same batch, one step from the same weights), alone
    and with the explicit depthwise convolutions."""
    from racl.operations import BatchNorm2d
    from racl.search import _RESUMABLE_FIELDS

    with pytest.raises(ValueError, match="batchnorm_backward"):
        get_profile("smoke", {"batchnorm_backward": "fast"})
    assert "batchnorm_backward" in _RESUMABLE_FIELDS
    out = {}
    for mode in ("native", "explicit", "both"):
        torch.manual_seed(0)
        fields = {"batchnorm_backward": "native" if mode == "native" else "explicit",
                  "depthwise_backward": "explicit" if mode == "both" else "native"}
        s = RACLSearch(get_profile("smoke", {**TINY, **fields}), None, progress=False)
        bns = [m for m in s.model.modules() if isinstance(m, nn.BatchNorm2d)]
        assert bns and all(type(m) is BatchNorm2d and m.explicit == (mode != "native") for m in bns)
        _, xw, yw = next(iter(s.train_loader.epoch(0)))
        eps = s._eps(0, 0)
        params = list(s.model.parameters()) + s.dist.mu_parameters()
        total, ce, gn, _, grads = s.loss_grads(xw, yw, lambda: s.arch_weights(eps), params)
        out[mode] = (total.detach(), gn.detach(), flat(grads))
    t_n, gn_n, g_n = out["native"]
    for mode in ("explicit", "both"):
        t_e, gn_e, g_e = out[mode]
        assert torch.allclose(t_n, t_e, rtol=1e-5) and torch.allclose(gn_n, gn_e, rtol=1e-5)
        assert rel(g_e, g_n) < 1e-4 and cos(g_e, g_n) > 1 - 1e-6


def test_explicit_batchnorm_backward_under_bf16_autocast():
    """Under autocast (precision=bf16) a convolution hands batch norm a bf16 input: the
    explicit second derivative keeps its per-channel statistics in fp32 and returns each
    gradient in its input's dtype, within bf16 rounding (2^-8 relative, a few roundings deep)
    of the native path."""
    from racl.operations import BatchNorm2d

    torch.manual_seed(0)
    conv, bn = nn.Conv2d(3, 4, 3, padding=1, bias=False), BatchNorm2d(4)
    res = _second_derivatives_under_bf16(bn, lambda t: bn(conv(t)), lambda y: torch.tanh(y).sum(),
                                         [conv.weight, *bn.parameters()], torch.randn(4, 3, 8, 8))
    assert all(g.dtype == torch.float32 for grads in res.values() for g in grads)
    for a, b in zip(res[True], res[False]):
        assert rel(a.double(), b.double()) < 8 * 2 ** -8


@pytest.mark.parametrize("explicit", [False, True])
def test_frozen_bn_statistics_normalises_by_the_batch_and_copies_nothing(explicit):
    """The finite difference's extra pass (racl.search.frozen_bn_statistics): batch norm in
    training mode gives the same output as without the block, its running statistics and
    batch counter stay bit-identical, it dispatches no copy of them (no kernel on a GPU), and
    a module in evaluation mode keeps using its running statistics."""
    from racl.operations import BatchNorm2d
    from racl.search import frozen_bn_statistics
    from racl.speed import operator_count

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), BatchNorm2d(4), nn.ReLU(), BatchNorm2d(4, affine=False))
    model[1].explicit = model[3].explicit = explicit
    x = torch.randn(8, 3, 6, 6)
    model(x)  # running statistics away from their initial values
    state = {k: v.clone() for k, v in model.state_dict().items()}
    ref = model(x)
    model.load_state_dict(state)
    with frozen_bn_statistics(model):
        counts = operator_count(lambda: model(x).sum().backward())
        out = model(x)
    assert torch.equal(out, ref)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert all(m.track_running_stats for m in (model[1], model[3]))  # restored
    plain = operator_count(lambda: model(x).sum().backward())  # outside: updates and counts
    assert counts["kernels"] < plain["kernels"]
    model.eval()
    with torch.no_grad():
        inference = model(x)
    with frozen_bn_statistics(model), torch.no_grad():
        assert torch.equal(model(x), inference)


def test_batched_power_iteration_in_a_search_step():
    """``power_iteration_batched`` reaches the search's estimator, and one architecture step
    with it gives the per-op path's constraint value and mu to fp32 rounding (same seed, same
    batches; the estimator itself: tests/test_lipschitz.py)."""
    out = {}
    for batched in (False, True):
        torch.manual_seed(0)
        s = RACLSearch(get_profile("smoke", {**TINY, "power_iteration_batched": batched}), None, progress=False)
        assert s.lip.batched == batched
        it = zip(s.train_loader.epoch(0), s.arch_loader.epoch(0))
        for _ in range(2):
            (_, xw, yw), (_, xa, ya) = next(it)
            stats = s.train_step(0, 1, xw, yw, xa, ya)
        out[batched] = (stats.c, flat([p.detach() for p in s.dist.mu_parameters()]))
    assert out[True][0] == pytest.approx(out[False][0], rel=1e-5)
    assert rel(out[True][1], out[False][1]) < 1e-5


def test_compare_fast_search_records_both_runs(tmp_path):
    """racl.search.compare_fast_search (benchmarks/compare_search.py, the book's fast-versus-
    exact record): both searches of one seed, their genotypes, the per-edge agreement, the
    trajectories and times; with a workdir each run is a run directory, and a second call
    resumes the finished runs instead of searching again (the same genotypes)."""
    from racl.genotypes import Genotype
    from racl.search import SEARCH_FAST_PATHS, compare_fast_search

    assert SEARCH_FAST_PATHS["power_iteration_batched"] is True
    over = {**TINY, "epochs": 2}
    rec = compare_fast_search("smoke", 0, over, {"power_iteration_batched": True}, workdir=tmp_path)
    assert rec["fast_paths"] == {"power_iteration_batched": True}
    assert rec["runs"]["fast"]["config"]["power_iteration_batched"] is True
    assert rec["runs"]["exact"]["config"]["power_iteration_batched"] is False
    for name in ("exact", "fast"):
        run = rec["runs"][name]
        Genotype.from_dict(run["genotype"])
        assert len(run["trajectory"]) == over["epochs"] and run["wall_s"] > 0
        assert (tmp_path / name / "provenance.json").exists()
    assert 0 <= rec["edge_agreement"] <= 1 and isinstance(rec["same_genotype"], bool)
    again = compare_fast_search("smoke", 0, over, {"power_iteration_batched": True}, workdir=tmp_path)
    assert all(again["runs"][k]["genotype"] == rec["runs"][k]["genotype"] for k in ("exact", "fast"))
