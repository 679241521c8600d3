"""The confidence constraint and its ADMM treatment (paper Sec. 3.3, Eqs. 13-19).

With the network bound L ~ LN(mu, sigma^2) (:func:`racl.lognormal.propagate`), asking that
L stays below a target lambda* with probability at least eta,

    P(L <= lambda*) = Phi((ln lambda* - mu) / sigma) >= eta,

is equivalent to the deterministic constraint

    c(mu, sigma) = mu + Phi^-1(eta) * sigma - ln lambda* <= 0            (Eqs. 13-15)

with sigma the *standard deviation* of ln L (Eq. 15). Eqs. 16-17 write it as
``mu + Phi^-1(eta) sigma^2 - ln lambda*`` ("omitting the square root on sigma" for
convexity); that is not the eta-quantile of a log-normal, so it is kept only as
``form="paper_variance"``.

Algorithm 1 handles c with an augmented Lagrangian and dual ascent (Eqs. 17-19). The paper
writes the equality-constraint form

    L_rho = L_val + theta * c + rho / 2 * c^2,        theta <- theta + rho * c,

kept here as ``admm="equality"``. For the inequality c <= 0 we use by default the standard
(Powell-Hestenes-Rockafellar) form with theta >= 0,

    L_rho = L_val + (max(0, theta + rho c)^2 - theta^2) / (2 rho),   theta <- max(0, theta + rho c),

which only penalises a violated (or nearly violated) constraint.

lambda* is an input of Algorithm 1 whose value the paper never gives. ``lambda_star=None``
calibrates it at the first architecture step as the bound's eta-quantile at that moment
times ``lambda_star_ratio``: "do not let the architecture raise the network's Lipschitz
bound (at confidence eta) above ratio x its value when architecture learning starts". With
ratio 1 the architecture step, which lowers the bound by itself, leaves the constraint
slack; a ratio below 1 (c starts at -ln ratio > 0) makes it bind.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .lognormal import LogNormal, normal_icdf


def confidence_constraint(net: LogNormal, eta: float, log_lambda_star: float, form: str = "std") -> torch.Tensor:
    """c(mu, sigma) of Eq. 15: <= 0 exactly when P(L <= lambda*) >= eta (``form="std"``)."""
    z = normal_icdf(eta)
    if form == "std":
        return net.mu + z * net.sigma - log_lambda_star
    if form == "paper_variance":
        return net.mu + z * net.sigma2 - log_lambda_star
    raise ValueError(f"constraint form must be 'std' or 'paper_variance', got {form!r}")


def calibrate_log_lambda_star(net: LogNormal, eta: float, ratio: float) -> float:
    """ln lambda* = ln(ratio) + ln of the bound's current eta-quantile."""
    if ratio <= 0:
        raise ValueError(f"lambda_star_ratio must be positive, got {ratio}")
    return float(net.mu + normal_icdf(eta) * net.sigma) + math.log(ratio)


@dataclass
class ADMMDual:
    """The dual variable theta and penalty rho of Eqs. 17-19."""

    rho: float = 1e-3
    form: str = "inequality"
    theta: float = 0.0

    def __post_init__(self):
        if self.form not in ("inequality", "equality"):
            raise ValueError(f"ADMM form must be 'inequality' or 'equality', got {self.form!r}")
        if self.rho <= 0:
            raise ValueError(f"rho must be positive, got {self.rho}")

    def penalty(self, c: torch.Tensor) -> torch.Tensor:
        """The augmented-Lagrangian term added to the architecture loss."""
        if self.form == "equality":
            return self.theta * c + self.rho / 2 * c**2
        return (torch.clamp(self.theta + self.rho * c, min=0) ** 2 - self.theta**2) / (2 * self.rho)

    def update(self, c: float) -> float:
        """Dual ascent on theta (Eq. 19); projected onto theta >= 0 for the inequality."""
        self.theta = self.theta + self.rho * float(c)
        if self.form == "inequality":
            self.theta = max(0.0, self.theta)
        return self.theta

    def state_dict(self) -> dict:
        return {"rho": self.rho, "form": self.form, "theta": self.theta}

    def load_state_dict(self, d: dict) -> None:
        self.rho, self.form, self.theta = d["rho"], d["form"], d["theta"]


def input_gradient_norm(loss_per_example: torch.Tensor, x: torch.Tensor, create_graph: bool = True) -> torch.Tensor:
    """||grad_x L_CE(f(x_i), y_i)||_2 for each example (Eq. 16's lower-bound term).

    ``x`` must require grad. With ``create_graph`` the result can itself be differentiated
    (double back-propagation), which is how the term enters both the weight and the
    architecture step."""
    (g,) = torch.autograd.grad(loss_per_example.sum(), x, create_graph=create_graph)
    return g.flatten(1).norm(dim=1)
