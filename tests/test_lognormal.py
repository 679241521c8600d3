"""Properties 1-2, Proposition 1 (Fenton-Wilkinson) and the supernet-level propagation,
against Monte Carlo."""

import math

import pytest
import torch

from racl.lognormal import LogNormal, fenton_wilkinson, product, propagate, sample_bound, scale
from racl.sampler import ArchDistribution
from racl.supernet import SuperNet
from racl.lipschitz import LipschitzEstimator

N_MC = 400_000


def mc_sum(mu, s2, gen, n=N_MC):
    z = torch.randn((n, len(mu)), generator=gen, dtype=torch.float64)
    return torch.exp(mu + s2.sqrt() * z).sum(1)


@pytest.mark.parametrize("n_terms", [2, 5, 8])
@pytest.mark.parametrize("sigma", [0.05, 0.3, 0.8])
def test_fenton_wilkinson_matches_monte_carlo_moments(n_terms, sigma, gen):
    mu = torch.linspace(-1.0, 1.0, n_terms, dtype=torch.float64)
    s2 = torch.full((n_terms,), sigma**2, dtype=torch.float64) * torch.linspace(0.5, 1.5, n_terms, dtype=torch.float64)
    fw = fenton_wilkinson(mu, s2)
    x = mc_sum(mu, s2, gen)
    # the mean and variance of the sum are matched exactly, up to Monte Carlo error
    se_mean = x.std() / math.sqrt(len(x))
    assert abs(fw.mean() - x.mean()) < 5 * se_mean
    assert fw.var().item() == pytest.approx(x.var().item(), rel=0.05 + 0.1 * sigma)
    # the log-normal shape is an approximation: its quantiles are close for moderate sigma
    # (at sigma = 0.8 the lower tail is off by up to ~20%; the book charts where it fails)
    if sigma <= 0.3:
        for q in (0.1, 0.5, 0.9):
            assert fw.quantile(q).item() == pytest.approx(torch.quantile(x.float(), q).item(), rel=0.03)


def test_paper_mean_form_breaks_the_first_moment(gen):
    mu = torch.tensor([0.0, 0.5, -0.3], dtype=torch.float64)
    s2 = torch.tensor([0.4, 0.3, 0.5], dtype=torch.float64)
    exact = torch.exp(mu + s2 / 2).sum()
    assert fenton_wilkinson(mu, s2, mean_form="moment").mean().item() == pytest.approx(exact.item(), rel=1e-12)
    paper = fenton_wilkinson(mu, s2, mean_form="paper").mean().item()
    assert abs(paper - exact.item()) / exact.item() > 1e-3


def test_properties_scaling_and_product(gen):
    x = LogNormal(torch.tensor(0.3, dtype=torch.float64), torch.tensor(0.2, dtype=torch.float64))
    y = scale(x, 2.5)
    assert y.mean().item() == pytest.approx(2.5 * x.mean().item())
    mus = torch.tensor([0.1, -0.2, 0.4], dtype=torch.float64)
    s2s = torch.tensor([0.1, 0.2, 0.05], dtype=torch.float64)
    p = product(mus, s2s)
    z = torch.randn((N_MC, 3), generator=gen, dtype=torch.float64)
    samples = torch.exp(mus + s2s.sqrt() * z).prod(1)
    assert p.mean().item() == pytest.approx(samples.mean().item(), rel=0.01)
    assert p.var().item() == pytest.approx(samples.var().item(), rel=0.05)


def test_zero_terms_drop_out_and_gradients_stay_finite():
    mu = torch.tensor([0.2, -float("inf"), 0.4], dtype=torch.float64, requires_grad=True)
    s2 = torch.tensor([0.1, 0.1, 0.2], dtype=torch.float64, requires_grad=True)
    fw = fenton_wilkinson(mu, s2)
    ref = fenton_wilkinson(mu.detach()[[0, 2]], s2.detach()[[0, 2]])
    assert fw.mu.item() == pytest.approx(ref.mu.item())
    assert fw.sigma2.item() == pytest.approx(ref.sigma2.item())
    (fw.mu + fw.sigma2).backward()
    assert torch.isfinite(mu.grad[[0, 2]]).all() and torch.isfinite(s2.grad).all()


def _supernet_bound(cell_sampling):
    torch.manual_seed(0)
    net = SuperNet(C=4, num_classes=10, layers=3, k=2).double()
    dist = ArchDistribution(4, 8, sigma_init=0.3, generator=torch.Generator().manual_seed(1)).double()
    with torch.no_grad():
        for p in dist.mu_parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel()), dtype=p.dtype))
    types = net.cell_types
    net.train()
    x = torch.rand(8, 3, 16, 16, dtype=torch.float64)
    net(x, dist.weights(types, mode="median"))
    net.eval()
    est = LipschitzEstimator("exact", n_iter=1, init_iter=30)
    log_lambda, log_C = net.log_lambdas(est).double(), net.log_C(est).double()
    mu_a, s2_a, mu_b, s2_b = dist.stacked(types)
    group = None if cell_sampling == "per_cell" else [("normal", "reduce").index(t) for t in types]
    prop = propagate(mu_a.detach(), s2_a.detach(), mu_b.detach(), s2_b.detach(), log_lambda, log_C, 4, group)
    # Monte Carlo of the actual bound C * prod_cells prod_nodes sum beta sum alpha lambda
    n, g = 100_000, torch.Generator().manual_seed(2)
    keys = list(range(len(types))) if group is None else group
    k = max(keys) + 1
    la = mu_a.detach() + s2_a.detach().sqrt() * torch.randn((n, k, *mu_a.shape[1:]), generator=g, dtype=torch.float64)[:, keys]
    lb = mu_b.detach() + s2_b.detach().sqrt() * torch.randn((n, k, *mu_b.shape[1:]), generator=g, dtype=torch.float64)[:, keys]
    return prop, la, lb, log_lambda, log_C


@pytest.mark.parametrize("cell_sampling", ["per_cell", "shared"])
def test_supernet_bound_propagation_matches_monte_carlo(cell_sampling):
    prop, la, lb, log_lambda, log_C = _supernet_bound(cell_sampling)
    ln_bound = sample_bound(la, lb, log_lambda, log_C, 4)
    assert prop.network.mu.item() == pytest.approx(ln_bound.mean().item(), abs=0.02 * max(1, abs(ln_bound.mean().item())) ** 0.5)
    assert prop.network.sigma.item() == pytest.approx(ln_bound.std().item(), rel=0.1)
    # the eta-quantile the constraint uses
    q_mc = torch.quantile(ln_bound.float(), 0.9).item()
    q_fw = (prop.network.mu + 1.2815515655446004 * prop.network.sigma).item()
    assert q_fw == pytest.approx(q_mc, abs=0.1)


def test_edge_and_node_levels_match_monte_carlo():
    prop, la, lb, log_lambda, _ = _supernet_bound("per_cell")
    log_edge = torch.logsumexp(la + log_lambda, dim=-1) + lb  # (n, cells, E)
    for c in range(log_edge.shape[1]):
        for e in (0, 5, 13):
            mc = torch.exp(log_edge[:, c, e])
            assert prop.edge.mean()[c, e].item() == pytest.approx(mc.mean().item(), rel=0.02)
            assert prop.edge.var()[c, e].item() == pytest.approx(mc.var().item(), rel=0.1)
    node3 = torch.exp(torch.logsumexp(log_edge[:, 1, 9:14], dim=-1))
    assert prop.node.mean()[1, 3].item() == pytest.approx(node3.mean().item(), rel=0.02)
    assert prop.node.var()[1, 3].item() == pytest.approx(node3.var().item(), rel=0.1)
