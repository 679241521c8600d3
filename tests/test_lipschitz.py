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
