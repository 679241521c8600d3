"""Architecture weights drawn from multivariate log-normals (paper Sec. 3.3, Eq. 5).

Per cell type t (normal, reduce), the operation weights alpha_t (E edges x O ops) and the
edge weights beta_t (E) are

    alpha_t = exp(mu_alpha + sigma_alpha * eps),  beta_t = exp(mu_beta + sigma_beta * eps'),

eps, eps' ~ N(0, I): a log-normal LN(mu, diag sigma^2) with the reparameterisation trick, so
gradients reach mu and sigma. sigma is kept positive by learning ln sigma. The weights
enter the supernet as they are drawn (no softmax), which is what makes the Lipschitz bound
a sum and product of log-normals.

``deterministic`` gives the median exp(mu) (the default value from which the discrete cell
is derived); ``mean`` gives exp(mu + sigma^2 / 2).

Initialisation (``mu_init="uniform"``, the default): mu_alpha = ln(1 / O) and mu_beta =
ln(1 / n_j) for the n_j edges into node j, plus DARTS' 1e-3 Gaussian jitter, so the initial
mixture is the average a softmax initialisation gives. (``mu_init="darts"`` starts at
mu = 1e-3 N(0, 1), i.e. alpha ~ 1: the supernet then sums rather than averages its ops, and
its inference-mode BN statistics lag so far behind that the evaluation loss explodes.)

Weight decay (PC-DARTS applies 1e-3 to its logits, pulling them towards the uniform
softmax) is applied to mu as a pull towards its initial value, and to sigma itself (towards
0, full confidence), not to ln sigma, whose decay would pull sigma towards 1; see
:meth:`ArchDistribution.decay`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn as nn

from .lognormal import node_edge_index

CELL_TYPES = ("normal", "reduce")


def num_edges(steps: int) -> int:
    return sum(2 + i for i in range(steps))


@dataclass
class ArchSample:
    """Weights for every cell: ``alpha[c]`` (E, O), ``beta[c]`` (E), plus the noise used."""

    alpha: list
    beta: list
    eps: dict

    def detach(self) -> "ArchSample":
        return ArchSample([a.detach() for a in self.alpha], [b.detach() for b in self.beta], self.eps)


class ArchDistribution(nn.Module):
    """mu and ln sigma of alpha and beta for each cell type."""

    def __init__(
        self,
        steps: int = 4,
        n_ops: int = 8,
        sigma_init: float = 0.1,
        init_noise: float = 1e-3,
        learn_sigma: bool = True,
        generator: Optional[torch.Generator] = None,
        mu_init: str = "uniform",
    ):
        super().__init__()
        self.steps, self.n_ops, self.learn_sigma = steps, n_ops, learn_sigma
        E = num_edges(steps)
        mu_b = torch.zeros(E)
        mu_a0 = 0.0
        if mu_init == "uniform":
            mu_a0 = -math.log(n_ops)
            for idx in node_edge_index(steps):
                mu_b[idx] = -math.log(len(idx))
        elif mu_init != "darts":
            raise ValueError(f"mu_init must be 'darts' or 'uniform', got {mu_init!r}")
        g = generator
        self.mu_alpha = nn.ParameterDict()
        self.log_sigma_alpha = nn.ParameterDict()
        self.mu_beta = nn.ParameterDict()
        self.log_sigma_beta = nn.ParameterDict()
        log_s = math.log(sigma_init) if sigma_init > 0 else -30.0
        for t in CELL_TYPES:
            self.mu_alpha[t] = nn.Parameter(mu_a0 + init_noise * torch.randn(E, n_ops, generator=g))
            self.mu_beta[t] = nn.Parameter(mu_b + init_noise * torch.randn(E, generator=g))
            self.register_buffer(f"mu_alpha0_{t}", self.mu_alpha[t].detach().clone())
            self.register_buffer(f"mu_beta0_{t}", self.mu_beta[t].detach().clone())
            self.log_sigma_alpha[t] = nn.Parameter(torch.full((E, n_ops), log_s), requires_grad=learn_sigma)
            self.log_sigma_beta[t] = nn.Parameter(torch.full((E,), log_s), requires_grad=learn_sigma)

    # -- parameter groups (Algorithm 1 updates mu with sigma fixed, then sigma with mu fixed)
    def mu_parameters(self):
        return list(self.mu_alpha.values()) + list(self.mu_beta.values())

    def sigma_parameters(self):
        return list(self.log_sigma_alpha.values()) + list(self.log_sigma_beta.values())

    def decay(self, group: str) -> torch.Tensor:
        """The weight-decay penalty of a parameter group: sum (mu - mu_init)^2 / 2 for ``mu``,
        sum sigma^2 / 2 for ``sigma``."""
        if group == "mu":
            return sum(((self.mu_alpha[t] - getattr(self, f"mu_alpha0_{t}")) ** 2).sum()
                       + ((self.mu_beta[t] - getattr(self, f"mu_beta0_{t}")) ** 2).sum() for t in CELL_TYPES) / 2
        if group == "sigma":
            return sum((p.exp() ** 2).sum() for p in self.sigma_parameters()) / 2
        raise ValueError(f"unknown parameter group {group!r}")

    def sigma_alpha(self, t: str) -> torch.Tensor:
        return self.log_sigma_alpha[t].exp()

    def sigma_beta(self, t: str) -> torch.Tensor:
        return self.log_sigma_beta[t].exp()

    def noise(self, cell_types: Sequence[str], per_cell: bool, generator: Optional[torch.Generator]) -> dict:
        """Standard normal noise: one draw per cell (``per_cell``) or one per cell type."""
        dev = self.mu_alpha["normal"].device
        E = self.mu_alpha["normal"].shape[0]
        keys = range(len(cell_types)) if per_cell else sorted(set(cell_types))
        eps = {}
        for k in keys:
            a = torch.randn((E, self.n_ops), generator=generator, device="cpu")
            b = torch.randn((E,), generator=generator, device="cpu")
            eps[k] = (a.to(dev), b.to(dev))
        return eps

    def weights(self, cell_types: Sequence[str], eps: Optional[dict] = None, mode: str = "sample") -> ArchSample:
        """alpha, beta for every cell. ``mode``: ``sample`` (uses ``eps``), ``median`` or ``mean``."""
        alphas, betas = [], []
        for c, t in enumerate(cell_types):
            mu_a, mu_b = self.mu_alpha[t], self.mu_beta[t]
            s_a, s_b = self.sigma_alpha(t), self.sigma_beta(t)
            if mode == "sample":
                if eps is None:
                    raise ValueError("mode='sample' needs noise eps")
                ea, eb = eps[c] if c in eps else eps[t]
                alphas.append(torch.exp(mu_a + s_a * ea))
                betas.append(torch.exp(mu_b + s_b * eb))
            elif mode == "median":
                alphas.append(mu_a.exp())
                betas.append(mu_b.exp())
            elif mode == "mean":
                alphas.append(torch.exp(mu_a + s_a**2 / 2))
                betas.append(torch.exp(mu_b + s_b**2 / 2))
            else:
                raise ValueError(f"unknown mode {mode!r}")
        return ArchSample(alphas, betas, eps or {})

    def stacked(self, cell_types: Sequence[str]):
        """mu and sigma^2 of alpha (cells, E, O) and beta (cells, E), expanded to every cell."""
        mu_a = torch.stack([self.mu_alpha[t] for t in cell_types])
        s2_a = torch.stack([self.sigma_alpha(t) ** 2 for t in cell_types])
        mu_b = torch.stack([self.mu_beta[t] for t in cell_types])
        s2_b = torch.stack([self.sigma_beta(t) ** 2 for t in cell_types])
        return mu_a, s2_a, mu_b, s2_b

    def summary(self) -> dict:
        """Mean sigma of alpha and beta (the confidence the method is named for)."""
        with torch.no_grad():
            return {
                "mean_sigma_alpha": float(torch.cat([self.sigma_alpha(t).flatten() for t in CELL_TYPES]).mean()),
                "mean_sigma_beta": float(torch.cat([self.sigma_beta(t).flatten() for t in CELL_TYPES]).mean()),
            }
