"""Power iteration against exact singular values; every op's constant bounds its
empirical Lipschitz ratios."""

import pytest
import torch

from racl.lipschitz import LipschitzEstimator, empirical_ratio, exact_operator_norm, power_iteration
from racl.operations import ALL_OPS, Pool, make_op, max_pool_constant, paper_pool_constant

SHAPE = (2, 6, 6)  # small enough for explicit operator matrices


def _randomise_bn(op, gen):
    for m in op.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.copy_(0.2 + torch.rand(m.running_var.shape, generator=gen, dtype=m.running_var.dtype))
            m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen, dtype=m.running_mean.dtype))
            if m.weight is not None:
                m.weight.data.copy_(torch.randn(m.weight.shape, generator=gen, dtype=m.weight.dtype))


def _ops(stride):
    gen = torch.Generator().manual_seed(0)
    for name in ALL_OPS:
        if name == "none":
            continue
        for pool_bn in (False, True):
            if pool_bn and "pool" not in name:
                continue
            torch.manual_seed(1)
            op = make_op(name, SHAPE[0], stride, affine=True, pool_bn=pool_bn).double().eval()
            _randomise_bn(op, gen)
            yield f"{name}{'+bn' if pool_bn else ''}", op


@pytest.mark.parametrize("stride", [1, 2])
def test_power_iteration_matches_exact_singular_values(stride):
    for name, op in _ops(stride):
        shape = SHAPE
        for i, part in enumerate(op.lipschitz_parts()):
            out_shape = part.fn(torch.zeros((1, *shape), dtype=torch.float64)).shape[1:]
            if part.const is None:
                exact = exact_operator_norm(part.fn, shape)
                v = torch.randn((1, *shape), dtype=torch.float64, generator=torch.Generator().manual_seed(3))
                sigma, _ = power_iteration(part.fn, v / v.norm(), 3000)
                assert sigma.item() == pytest.approx(exact, rel=1e-3), f"{name} part {i}"
                assert sigma.item() <= exact * (1 + 1e-9)  # power iteration approaches from below
            shape = out_shape


@pytest.mark.parametrize("stride", [1, 2])
def test_op_constants_bound_empirical_ratios(stride):
    gen = torch.Generator().manual_seed(5)
    est = LipschitzEstimator("exact", n_iter=1, init_iter=300)
    for name, op in _ops(stride):
        L = est.op_constant(name, op, SHAPE).item()
        x = torch.randn((256, *SHAPE), generator=gen, dtype=torch.float64)
        # random pairs, close pairs, and pairs along the power-iteration direction
        y = x + 1e-3 * torch.randn(x.shape, generator=gen, dtype=torch.float64)
        z = torch.randn(x.shape, generator=gen, dtype=torch.float64)
        ratios = torch.cat([empirical_ratio(op, x, y), empirical_ratio(op, x, z)])
        assert ratios.max().item() <= L * (1 + 1e-6), f"{name}: ratio {ratios.max().item()} > bound {L}"
        assert ratios.max().item() > 0.05 * L, f"{name}: bound {L} is suspiciously loose"


def test_max_pool_constant_is_exact_and_attained():
    assert max_pool_constant(3, 1) == 3.0
    assert max_pool_constant(3, 2) == 2.0
    pool = Pool("max", 1, 1, with_bn=False).double()
    x = torch.zeros(1, 1, 7, 7, dtype=torch.float64)
    y = x.clone()
    y[0, 0, 3, 3] = 1.0  # a spike is the maximum of all nine windows that contain it
    assert empirical_ratio(pool, y, x).item() == pytest.approx(3.0)


def test_avg_pool_without_padding_counts_exceeds_one_at_the_border():
    pool = Pool("avg", 1, 1, with_bn=False).double()
    exact = exact_operator_norm(pool, (1, 6, 6))
    assert exact > 1.0  # count_include_pad=False reweights border windows
    est_exact = LipschitzEstimator("exact", init_iter=300)
    assert est_exact.op_constant("p", pool, (1, 6, 6)).item() == pytest.approx(exact, rel=1e-4)


@pytest.mark.parametrize("stride", [1, 2])
def test_paper_mode_uses_the_constants_of_section_3_2(stride):
    """Sec. 3.2: average pooling S^-0.5 (S the stride), max pooling 1, identity 1, zero 0.
    The values are set, not computed, so they compare exactly (fp32 of S^-0.5)."""
    est = LipschitzEstimator("paper")
    shape = (2, 6, 6)

    def const(name):
        return est.op_constant(f"{name}/{stride}", make_op(name, shape[0], stride, pool_bn=False), shape).item()

    assert paper_pool_constant("avg", 2) == 2**-0.5
    assert const("avg_pool_3x3") == torch.tensor(stride**-0.5, dtype=torch.float32).item()
    assert const("max_pool_3x3") == 1.0
    assert const("none") == 0.0
    if stride == 1:
        assert const("skip_connect") == 1.0
    # the exact mode departs from the paper: the true operator norms of the DARTS pools
    exact = LipschitzEstimator("exact", init_iter=300)
    avg = make_op("avg_pool_3x3", 1, stride, pool_bn=False).double()
    exact_avg = exact.op_constant("a", avg, (1, 8, 8)).item()
    assert exact_avg == pytest.approx(exact_operator_norm(avg, (1, 8, 8)), rel=1e-4)
    assert (exact_avg > 1.0) if stride == 1 else (exact_avg < 2**-0.5)
    assert exact.op_constant("m", make_op("max_pool_3x3", 1, stride, pool_bn=False).double(), (1, 8, 8)).item() == (
        3.0 if stride == 1 else 2.0)


def test_paper_pool_constant_refuses_bad_input():
    with pytest.raises(ValueError, match="stride"):
        paper_pool_constant("avg", 0)
    with pytest.raises(ValueError, match="kind"):
        paper_pool_constant("min", 1)


def test_estimator_state_round_trip():
    op = make_op("sep_conv_3x3", 2, 1).double().eval()
    a = LipschitzEstimator("exact", n_iter=1, init_iter=5)
    a.op_constant("k", op, SHAPE)
    b = LipschitzEstimator("exact", n_iter=1, init_iter=5)
    b.load_state_dict(a.state_dict())
    assert a.op_constant("k", op, SHAPE).item() == b.op_constant("k", op, SHAPE).item()
    with pytest.raises(ValueError, match="mode"):
        LipschitzEstimator("paper").load_state_dict(a.state_dict())


def test_jacobian_norm_matches_the_exact_spectral_norm():
    from torch.autograd.functional import jacobian

    from racl.lipschitz import jacobian_norm

    torch.manual_seed(0)
    A = torch.randn(5, 12, dtype=torch.float64)
    f = lambda z: torch.tanh(z.flatten(1) @ A.T)  # noqa: E731 - acts on each example separately
    x = torch.randn(3, 3, 2, 2, dtype=torch.float64)
    est = jacobian_norm(f, x, n_iter=100)
    for i in range(3):
        J = jacobian(lambda z: f(z[None])[0], x[i]).reshape(5, 12)
        assert est[i].item() == pytest.approx(torch.linalg.matrix_norm(J, 2).item(), rel=1e-6)


# ------------------------------------------------------------ batched power iteration
def _supernet():
    """A 3-cell supernet with running statistics away from their initial values, after one
    forward pass with uniform architecture weights (the ops' input shapes are set)."""
    from racl.sampler import ArchSample
    from racl.supernet import SuperNet

    torch.manual_seed(0)
    net = SuperNet(8, 10, 3, steps=2, multiplier=2, k=2)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_var.uniform_(0.5, 2.0)
    E, O = len(net.cells[0].edges), len(net.primitives)
    arch = ArchSample([torch.full((E, O), 1.0 / O)] * len(net.cells), [torch.ones(E)] * len(net.cells), {})
    net(torch.rand(4, 3, 16, 16), arch)
    return net


@pytest.mark.parametrize("mode,fused", [("exact", False), ("exact", True), ("paper", False)])
def test_batched_power_iteration_is_the_per_op_one(mode, fused):
    """LipschitzEstimator(batched=True).op_constants, through the supernet's log_lambdas:
    every op's constant, every vector and the generator's state as the per-op path leaves
    them, over a first call (fresh vectors, init_iter iterations) and warm-started calls
    with the weights moving in between, to fp32 rounding (the grouped convolution may sum
    in another order), with fewer kernels."""
    from racl.speed import operator_count

    net = _supernet()
    ests = {b: LipschitzEstimator(mode, n_iter=1, init_iter=4, seed=3, fused=fused, batched=b) for b in (False, True)}
    for call in range(3):
        out = {b: net.log_lambdas(e) for b, e in ests.items()}
        assert torch.equal(torch.isfinite(out[False]), torch.isfinite(out[True]))
        fin = torch.isfinite(out[False])
        assert torch.allclose(out[True][fin], out[False][fin], rtol=1e-5, atol=1e-6), call
        with torch.no_grad():  # the weights move between calls, as in a search
            for p in net.parameters():
                p.mul_(1.01)
    a, b = ests[False], ests[True]
    assert sorted(a.vectors) == sorted(b.vectors)
    assert all(torch.allclose(a.vectors[k], b.vectors[k], atol=1e-5) for k in a.vectors)
    assert torch.equal(a._gen.get_state(), b._gen.get_state())
    counts = {k: operator_count(lambda: net.log_lambdas(e))["kernels"] for k, e in ests.items()}
    assert counts[True] < counts[False], counts  # the saving grows with the edges: bench.py --part ops


def test_batched_power_iteration_keeps_explicit_depthwise_flags_and_lanczos_is_per_op():
    """The batched path calls the plain convolution (an autograd.Function has no vmap rule)
    and gives each DepthwiseConv2d its flag back; Lanczos is not batched (the per-op path)."""
    from racl.operations import DepthwiseConv2d, set_depthwise_backward

    net = set_depthwise_backward(_supernet(), "explicit")
    LipschitzEstimator(n_iter=1, init_iter=2, batched=True).op_constants(
        [("a", net.cells[0].edges[0].ops[4], net.cells[0].edges[0].in_shape)], net.stem[0].weight)
    assert all(m.explicit for m in net.modules() if isinstance(m, DepthwiseConv2d))
    ests = [LipschitzEstimator(n_iter=2, init_iter=3, method="lanczos", batched=b) for b in (False, True)]
    assert torch.equal(net.log_lambdas(ests[0]), net.log_lambdas(ests[1]))
