"""Log-normal algebra of the paper (Sec. 3.3): Properties 1-2, Proposition 1, Eqs. 11-12.

Notation: a log-normal variable X = exp(N) with N ~ Normal(mu, sigma^2) is written
LN(mu, sigma^2) and carried around as the pair ``(mu, sigma2)`` of *log-space* parameters.

* Property 1 (scaling): a * LN(mu, s2) = LN(mu + ln a, s2) for a > 0.
* Property 2 (products): a product of independent LN(mu_i, s2_i) is LN(sum mu_i, sum s2_i).
* Proposition 1 (Fenton-Wilkinson): a sum of independent LN(mu_i, s2_i) is approximated by
  the LN(mu_Z, s2_Z) with the same first two moments:

      s2_Z = ln( sum_i e^(2 mu_i + s2_i) (e^(s2_i) - 1) / (sum_i e^(mu_i + s2_i / 2))^2 + 1 )
      mu_Z = ln( sum_i e^(mu_i + s2_i / 2) ) - s2_Z / 2

  The paper prints the last line with ``- sigma_Z / 2`` (the standard deviation). Moment
  matching gives ``- sigma_Z^2 / 2``: the mean of LN(mu_Z, s2_Z) is exp(mu_Z + s2_Z / 2),
  which must equal sum_i exp(mu_i + s2_i / 2). We implement the moment-matching form by
  default and keep the printed one as ``mean_form="paper"``; the book settles it numerically.

Everything is written with log-sum-exp so it stays finite for the very large and very small
numbers a network-level Lipschitz bound produces, and is differentiable in mu and s2.
Terms whose ``mu`` is ``-inf`` (the zero operation, lambda = 0) drop out of sums.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

_TINY = 1e-12


def _t(x) -> torch.Tensor:
    return x if torch.is_tensor(x) else torch.as_tensor(x, dtype=torch.float64)


@dataclass
class LogNormal:
    """LN(mu, sigma2), the law of exp(N(mu, sigma2)); fields may be tensors (batched)."""

    mu: torch.Tensor
    sigma2: torch.Tensor

    @property
    def sigma(self) -> torch.Tensor:
        return _t(self.sigma2).clamp_min(0).sqrt()

    def mean(self) -> torch.Tensor:
        return torch.exp(_t(self.mu) + _t(self.sigma2) / 2)

    def var(self) -> torch.Tensor:
        s2 = _t(self.sigma2)
        return torch.expm1(s2) * torch.exp(2 * _t(self.mu) + s2)

    def quantile(self, eta: float) -> torch.Tensor:
        """The eta-quantile exp(mu + Phi^-1(eta) sigma)."""
        return torch.exp(_t(self.mu) + normal_icdf(eta) * self.sigma)

    def cdf(self, x) -> torch.Tensor:
        """P(X <= x) = Phi((ln x - mu) / sigma)."""
        z = (torch.log(_t(x)) - _t(self.mu)) / self.sigma.clamp_min(_TINY)
        return 0.5 * (1 + torch.erf(z / math.sqrt(2)))

    def log_cdf_at_log(self, log_x) -> torch.Tensor:
        """P(ln X <= log_x), convenient when x itself would overflow."""
        z = (_t(log_x) - _t(self.mu)) / self.sigma.clamp_min(_TINY)
        return 0.5 * (1 + torch.erf(z / math.sqrt(2)))


def normal_icdf(p: float) -> float:
    """Phi^-1(p) for 0 < p < 1 (the standard normal quantile)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"a probability strictly between 0 and 1 is needed, got {p}")
    return math.sqrt(2.0) * torch.erfinv(torch.tensor(2.0 * p - 1.0, dtype=torch.float64)).item()


def scale(x: LogNormal, a) -> LogNormal:
    """Property 1: a * LN(mu, s2) = LN(mu + ln a, s2), a > 0 (a = 0 gives mu = -inf)."""
    return LogNormal(_t(x.mu) + torch.log(_t(a)), _t(x.sigma2))


def product(mu: torch.Tensor, sigma2: torch.Tensor, dim: int = -1) -> LogNormal:
    """Property 2: the product of independent log-normals along ``dim``."""
    return LogNormal(mu.sum(dim), sigma2.sum(dim))


def fenton_wilkinson(mu: torch.Tensor, sigma2: torch.Tensor, dim: int = -1, mean_form: str = "moment") -> LogNormal:
    """Proposition 1: LN approximation of a sum of independent LN(mu_i, sigma2_i) along ``dim``.

    ``mean_form="moment"`` matches the first two moments exactly (correct);
    ``mean_form="paper"`` uses the paper's printed mean, ln(sum e^(mu+s2/2)) - sigma_Z / 2.
    """
    if mean_form not in ("moment", "paper"):
        raise ValueError(f"mean_form must be 'moment' or 'paper', got {mean_form!r}")
    a = mu + sigma2 / 2
    log_m1 = torch.logsumexp(a, dim)
    # log of sum_i e^(2 mu_i + s2_i) (e^(s2_i) - 1); the clamp keeps gradients finite at s2 = 0
    log_excess = torch.log(torch.expm1(sigma2.clamp_min(_TINY)))
    log_v = torch.logsumexp(2 * mu + sigma2 + log_excess, dim)
    sigma2_z = torch.log1p(torch.exp(log_v - 2 * log_m1))
    if mean_form == "moment":
        mu_z = log_m1 - sigma2_z / 2
    else:
        mu_z = log_m1 - sigma2_z.clamp_min(_TINY).sqrt() / 2
    return LogNormal(mu_z, sigma2_z)


def node_edge_index(steps: int) -> list[list[int]]:
    """Indices of the incoming edges of each intermediate node in the DARTS edge order
    (node 0: edges 0-1, node 1: edges 2-4, node 2: edges 5-8, node 3: edges 9-13)."""
    out, offset = [], 0
    for i in range(steps):
        out.append(list(range(offset, offset + 2 + i)))
        offset += 2 + i
    return out


@dataclass
class Propagation:
    """Log-normal laws of the Lipschitz bound at each level of the supernet."""

    edge: LogNormal  # per cell, per edge: beta_e * sum_o alpha_o lambda_o   (cells, E)
    node: LogNormal  # per cell, per node (Eq. 12)                          (cells, steps)
    cell: LogNormal  # per cell: product over nodes                           (cells,)
    network: LogNormal  # C * product over cells                              ()


def propagate(
    mu_alpha: torch.Tensor,
    sigma2_alpha: torch.Tensor,
    mu_beta: torch.Tensor,
    sigma2_beta: torch.Tensor,
    log_lambda: torch.Tensor,
    log_C,
    steps: int,
    cell_group: Sequence[int] | None = None,
    mean_form: str = "moment",
) -> Propagation:
    """Propagate the log-normal laws of alpha, beta through the bound (Eqs. 10-12).

    Shapes: ``mu_alpha``/``sigma2_alpha`` (cells, E, O) and ``mu_beta``/``sigma2_beta``
    (cells, E) give the distribution used by each cell (cells of one type share parameters,
    so callers expand them); ``log_lambda`` (cells, E, O) holds ln lambda of every op of every
    cell, ``-inf`` for the zero op. ``log_C`` is ln of the architecture-independent factor.

    Edge (Eq. 11): alpha_o lambda_o ~ LN(mu_o + ln lambda_o, s2_o) (Property 1), summed over
    ops by Fenton-Wilkinson, then times beta (Property 2). Node (Eq. 12): the weighted edges
    into a node summed by Fenton-Wilkinson. Cell: product over its nodes (their edges are
    disjoint, hence independent). Network: C times the product over cells.

    ``cell_group`` says how cells are correlated. ``None`` means every cell draws its own
    alpha, beta (independent cells): the network variance is the sum of the node variances,
    as the paper writes. Otherwise ``cell_group[c]`` is the draw cell ``c`` shares with the
    other cells of its group (DARTS shares one draw per cell type). The same node of cells in
    one group is then driven by the same random variables; we treat those node terms as
    perfectly correlated (their standard deviations add), an approximation that the tests
    check against Monte Carlo.
    """
    op = LogNormal(mu_alpha + log_lambda, sigma2_alpha.expand_as(log_lambda))
    edge_sum = fenton_wilkinson(op.mu, op.sigma2, dim=-1, mean_form=mean_form)
    edge = LogNormal(edge_sum.mu + mu_beta, edge_sum.sigma2 + sigma2_beta)
    node_mu, node_s2 = [], []
    for idx in node_edge_index(steps):
        n = fenton_wilkinson(edge.mu[:, idx], edge.sigma2[:, idx], dim=-1, mean_form=mean_form)
        node_mu.append(n.mu)
        node_s2.append(n.sigma2)
    node = LogNormal(torch.stack(node_mu, -1), torch.stack(node_s2, -1))
    cell = product(node.mu, node.sigma2, dim=-1)
    net_mu = _t(log_C) + cell.mu.sum()
    if cell_group is None:
        net_s2 = cell.sigma2.sum()
    else:
        groups = torch.as_tensor(list(cell_group), device=node.mu.device)
        net_s2 = node.mu.new_zeros(())
        for g in groups.unique():
            sd = node.sigma2[groups == g].clamp_min(0).sqrt().sum(0)  # sum over cells of the group
            net_s2 = net_s2 + (sd**2).sum()
    return Propagation(edge, node, cell, LogNormal(net_mu, net_s2))


def sample_bound(
    log_alpha: torch.Tensor, log_beta: torch.Tensor, log_lambda: torch.Tensor, log_C, steps: int
) -> torch.Tensor:
    """ln of the actual bound C * prod_cells prod_nodes sum_i beta_i sum_o alpha_o lambda_o.

    ``log_alpha`` (S, cells, E, O) and ``log_beta`` (S, cells, E) are ln of S sampled
    architectures; returns S values. This is what :func:`propagate` approximates.
    """
    log_edge = torch.logsumexp(log_alpha + log_lambda, dim=-1) + log_beta
    total = torch.zeros(log_alpha.shape[0], dtype=log_alpha.dtype, device=log_alpha.device)
    for idx in node_edge_index(steps):
        total = total + torch.logsumexp(log_edge[..., idx], dim=-1).sum(-1)
    return total + _t(log_C)
