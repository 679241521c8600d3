"""RACL search: the paper's Algorithm 1.

Each iteration

1. draws alpha, beta from the log-normals (one draw per cell, or per cell type);
2. **weight step** on a training batch: SGD on CE + gamma * ||grad_x CE|| (Eq. 16, the
   input-gradient norm by double back-propagation);
3. **architecture step** on a validation batch (after the warm-up epochs): with the op
   constants lambda recomputed by power iteration, the network bound's law LN(mu, sigma^2)
   is propagated (Eqs. 10-12), the constraint c (Eq. 15) formed, and the augmented
   Lagrangian L_val + gamma ||grad_x L_val|| + penalty(c, theta) minimised by Adam, first
   over mu (sigma fixed), then over sigma (mu fixed) (Eqs. 17-18);
4. **dual step**: theta <- theta + rho * c (Eq. 19; projected on theta >= 0 by default).

At the end of every epoch the supernet is evaluated on the architecture half with the
median weights exp(mu), the current cell is derived, and a metrics row and a checkpoint are
written. Checkpoints can also be written every ``checkpoint_every`` steps; a run started
again in the same directory resumes from the last one and reaches the same result as an
uninterrupted run (every random draw is keyed by seed, epoch and step).
"""

from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from . import speed
from .constraint import ADMMDual, calibrate_log_lambda_star, confidence_constraint, input_gradient_norm
from .data import Loader, batch_seed, load_dataset, split_indices
from .genotypes import Genotype, agreement, derive, enumerate_edges
from .lipschitz import LipschitzEstimator
from .lognormal import LogNormal, propagate, sample_bound
from .operations import set_batchnorm_backward, set_depthwise_backward
from .profiles import SearchConfig, from_dict, get_profile, to_dict
from .records import (CheckpointError, NonFiniteLossError, RunDir, read_json, check_finite, code_version, finish_provenance, hardware,
                      load_checkpoint, progress, provenance, resolve_device, save_checkpoint, write_json)
from .sampler import CELL_TYPES, ArchDistribution
from .supernet import SuperNet

# Config fields that may change between a run and its resumption without changing results.
# depthwise_backward, batchnorm_backward: the same second derivatives summed by other kernels
# (racl.operations.DepthwiseConv2d, racl.operations.BatchNorm2d)
_RESUMABLE_FIELDS = ("checkpoint_every", "device", "depthwise_backward", "batchnorm_backward", *speed.RESUMABLE)


@dataclass
class StepStats:
    loss: float
    acc: float
    grad_norm: float
    arch_loss: float = float("nan")
    c: float = float("nan")


class RACLSearch:
    def __init__(self, cfg: SearchConfig, out: Optional[str | Path] = None, data_root=None, progress: bool = True):
        from .distributed import DistributedError, shard

        if shard().active:
            raise DistributedError("the search runs in one process (it is not data-parallel): start it without torchrun")
        self.cfg = cfg.validate()
        self.device = resolve_device(cfg.device)
        self.progress = progress
        self.run = RunDir(out) if out else None
        torch.manual_seed(cfg.seed)

        train = load_dataset(cfg.dataset, "train", data_root).head(cfg.max_train_images)
        w_idx, a_idx = split_indices(len(train), cfg.train_portion, cfg.seed)
        self.data = train
        self.train_loader = Loader(train.subset(w_idx), cfg.batch_size, True, cfg.augment, cfg.seed, self.device, True, stream=1)
        self.arch_loader = Loader(train.subset(a_idx), cfg.batch_size, True, cfg.augment, cfg.seed, self.device, True, stream=2)
        self.eval_loader = Loader(train.subset(a_idx), cfg.batch_size, False, False, cfg.seed, self.device)
        if len(self.train_loader) == 0 or len(self.arch_loader) == 0:
            raise ValueError(f"batch size {cfg.batch_size} is larger than a half of the {len(train)} training images")

        self.precision = speed.resolve_precision(cfg.precision, self.device)
        self.channels_last = speed.resolve_flag(cfg.channels_last, self.device)
        fused = speed.resolve_flag(cfg.fused_optimizer, self.device)
        self.model = SuperNet(cfg.init_channels, train.num_classes, cfg.layers, cfg.steps, cfg.multiplier,
                              cfg.stem_multiplier, cfg.partial_channels, cfg.primitives, train.mean, train.std).to(self.device)
        speed.memory_format(self.model, self.channels_last)
        set_depthwise_backward(self.model, cfg.depthwise_backward)
        set_batchnorm_backward(self.model, cfg.batchnorm_backward)
        self.dist = ArchDistribution(cfg.steps, len(cfg.primitives), cfg.sigma_init if cfg.sample else 0.0,
                                     learn_sigma=cfg.sample, generator=torch.Generator().manual_seed(cfg.seed),
                                     mu_init=cfg.mu_init).to(self.device)
        self.types = self.model.cell_types
        self.cell_group = None if cfg.cell_sampling == "per_cell" else [CELL_TYPES.index(t) for t in self.types]
        lanczos = cfg.lipschitz_method == "lanczos"
        self.lip = LipschitzEstimator(cfg.op_constants, cfg.lanczos_steps if lanczos else cfg.power_iterations,
                                      cfg.power_iterations_init, seed=cfg.seed, fused=cfg.power_iteration_fused,
                                      method=cfg.lipschitz_method, tol=cfg.lanczos_tol,
                                      batched=cfg.power_iteration_batched)
        self._fast = cfg.arch_update != "alternating" or cfg.grad_norm_grad != "exact"
        if cfg.grad_norm_grad == "finite_difference" and self.precision != "fp32":
            raise ValueError("grad_norm_grad=finite_difference needs precision=fp32: its rounding error grows as "
                             "eps/h, and bf16's eps (4e-3) is not small against any usable step h")
        self.w_opt = speed.sgd(self.model.parameters(), cfg.lr, cfg.momentum, cfg.weight_decay, fused)
        # weight decay enters the objectives (mu towards its initial value, sigma towards 0)
        self.mu_opt = speed.adam(self.dist.mu_parameters(), cfg.arch_lr, cfg.arch_betas, fused)
        self.sigma_opt = speed.adam(self.dist.sigma_parameters(), cfg.arch_lr, cfg.arch_betas, fused) if cfg.sample else None
        self.dual = ADMMDual(cfg.rho, cfg.admm)
        self.log_lambda_star: Optional[float] = None if cfg.lambda_star is None else math.log(cfg.lambda_star)
        self.log_lambda: Optional[torch.Tensor] = None
        self.log_C: Optional[torch.Tensor] = None
        self._arch_steps = 0
        self.epoch, self.step = 0, 0
        self.history: list[dict] = []
        self._acc: dict = {}
        self._resumed = False
        if self.run is not None:
            self._prepare_run_dir()

    # ------------------------------------------------------------------ run directory
    def _prepare_run_dir(self):
        state = self.run.resume_state("racl-search", self.cfg, _RESUMABLE_FIELDS, self.device)
        if state is not None:
            self.load_state_dict(state)
            self._resumed = True
        self.prov = self.run.start_provenance(self._resumed, lambda: provenance(
            self.cfg.profile, self.cfg.dataset, self.cfg.seed, self.device, data_source=self.data.source,
            n_train_images=len(self.data)))
        write_json(self.run.path / "config.json", to_dict(self.cfg))

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        return {
            "kind": "racl-search",
            "config": to_dict(self.cfg),
            "epoch": self.epoch,
            "step": self.step,
            "model": self.model.state_dict(),
            "dist": self.dist.state_dict(),
            "w_opt": self.w_opt.state_dict(),
            "mu_opt": self.mu_opt.state_dict(),
            "sigma_opt": self.sigma_opt.state_dict() if self.sigma_opt else None,
            "dual": self.dual.state_dict(),
            "log_lambda_star": self.log_lambda_star,
            "log_lambda": self.log_lambda,
            "log_C": self.log_C,
            "arch_steps": self._arch_steps,
            "lip": self.lip.state_dict(),
            "history": self.history,
            "acc": self._acc,
            "in_shapes": self._in_shapes(),
        }

    def load_state_dict(self, s: dict) -> None:
        try:
            self.model.load_state_dict(s["model"])
            self.dist.load_state_dict(s["dist"])
        except RuntimeError as e:
            raise CheckpointError(f"checkpoint does not fit this supernet: {e}") from e
        self.w_opt.load_state_dict(s["w_opt"])
        self.mu_opt.load_state_dict(s["mu_opt"])
        if self.sigma_opt and s["sigma_opt"]:
            self.sigma_opt.load_state_dict(s["sigma_opt"])
        self.dual.load_state_dict(s["dual"])
        self.log_lambda_star = s["log_lambda_star"]
        self.log_lambda, self.log_C = s.get("log_lambda"), s.get("log_C")
        self._arch_steps = s.get("arch_steps", 0)
        self.lip.load_state_dict(s["lip"])
        self.epoch, self.step = s["epoch"], s["step"]
        self.history, self._acc = list(s["history"]), dict(s["acc"])
        self._set_in_shapes(s.get("in_shapes"))

    def _in_shapes(self):
        return [[c.in_shapes, [e.in_shape for e in c.edges]] for c in self.model.cells] + [self.model._pool_hw]

    def _set_in_shapes(self, shapes):
        if not shapes:
            return
        for c, (cin, edges) in zip(self.model.cells, shapes[:-1]):
            c.in_shapes = tuple(tuple(s) for s in cin) if cin else None
            for e, s in zip(c.edges, edges):
                e.in_shape = tuple(s) if s else None
        self.model._pool_hw = shapes[-1]

    # ------------------------------------------------------------------ pieces
    def _eps(self, epoch, step):
        if not self.cfg.sample:
            return None
        gen = torch.Generator().manual_seed(batch_seed(self.cfg.seed, 3, epoch, step))
        return self.dist.noise(self.types, self.cfg.cell_sampling == "per_cell", gen)

    def arch_weights(self, eps=None):
        return self.dist.weights(self.types, eps, "sample" if eps is not None else "median")

    def loss(self, x, y, arch):
        """CE + gamma * mean_i ||grad_x CE_i|| (Eq. 16); returns (total, ce, gn, logits)."""
        gamma = self.cfg.grad_norm_weight
        if gamma > 0:
            x = x.detach().requires_grad_(True)
        logits = self.forward(x, arch)
        ce_i = F.cross_entropy(logits, y, reduction="none")
        ce = ce_i.mean()
        if gamma > 0:
            gn = input_gradient_norm(ce_i, x, create_graph=True).mean()
            return ce + gamma * gn, ce, gn, logits
        return ce, ce, ce.new_zeros(()), logits

    def forward(self, x, arch):
        """The supernet's logits (fp32) under the run's precision and memory format."""
        with speed.autocast(self.precision, self.device):
            return speed.full(self.model(speed.as_input(x, self.channels_last), arch))

    def propagation(self):
        mu_a, s2_a, mu_b, s2_b = self.dist.stacked(self.types)
        return propagate(mu_a, s2_a, mu_b, s2_b, self.log_lambda, self.log_C, self.cfg.steps, self.cell_group, self.cfg.fw_mean)

    def refresh_lipschitz(self):
        """Recompute every ln lambda (and ln C unless frozen) by power iteration on the
        current weights.

        C, the factor of the parts outside the searched cells, is a constant in the paper.
        Computed live it is not: its preprocessing BNs rescale to undo any change in the
        scale of alpha, so a constraint that includes a live C chases itself. By default
        (``freeze_C``) it is measured once, when lambda* is set, and kept."""
        self.model.eval()  # inference-mode BN for the constants; restored by the caller
        with speed.fp32():
            self.log_lambda = self.model.log_lambdas(self.lip)
            if self.log_C is None or not self.cfg.freeze_C:
                self.log_C = self.model.log_C(self.lip)

    def constraint(self, net: LogNormal) -> torch.Tensor:
        return confidence_constraint(net, self.cfg.eta, self.log_lambda_star, self.cfg.constraint_form)

    def sample_log_weights(self, n: int, gen: torch.Generator):
        """ln alpha (n, cells, E, O) and ln beta (n, cells, E) of n architectures drawn from
        the current distribution, with the run's cell-sampling scheme."""
        mu_a, s2_a, mu_b, s2_b = [t.detach().cpu() for t in self.dist.stacked(self.types)]
        cells = len(self.types)
        keys = list(range(cells)) if self.cell_group is None else self.cell_group
        nk = max(keys) + 1
        ea = torch.randn((n, nk, *mu_a.shape[1:]), generator=gen)[:, keys]
        eb = torch.randn((n, nk, *mu_b.shape[1:]), generator=gen)[:, keys]
        return mu_a + s2_a.sqrt() * ea, mu_b + s2_b.sqrt() * eb

    def empirical_probability(self, n: int = 1000, seed: int = 0) -> float:
        """Fraction of n sampled architectures whose actual bound C * prod sum beta sum alpha
        lambda is <= lambda* (to be compared with eta)."""
        if self.log_lambda is None or self.log_lambda_star is None:
            return float("nan")
        la, lb = self.sample_log_weights(n, torch.Generator().manual_seed(seed))
        b = sample_bound(la, lb, self.log_lambda.cpu(), self.log_C.cpu(), self.cfg.steps)
        return float((b <= self.log_lambda_star).double().mean())

    # ------------------------------------------------------------------ one iteration
    def _prepare_arch_step(self, epoch: int) -> list:
        """Before an architecture step: BN statistics and lambda* at the first one, the Lipschitz
        constants every ``lipschitz_every`` steps. Returns the (name, parameters, optimiser)
        groups of Eq. 18: mu, then sigma when it is learned."""
        cfg = self.cfg
        if self.log_lambda_star is None and cfg.bn_recalibration_batches:
            # lambda* is set now: measure the bound with current BN statistics
            batches = (x for i, (_, x, _) in zip(range(cfg.bn_recalibration_batches), self.train_loader.epoch(epoch, 0)))
            self.model.recalibrate_bn(batches, self.arch_weights(None))
            self.log_lambda = None
        if self.log_lambda is None or self._arch_steps % cfg.lipschitz_every == 0:
            self.refresh_lipschitz()
        self._arch_steps += 1
        self.model.train()
        if self.log_lambda_star is None:
            with torch.no_grad():
                self.log_lambda_star = calibrate_log_lambda_star(self.propagation().network, cfg.eta, cfg.lambda_star_ratio)
        groups = [("mu", self.dist.mu_parameters(), self.mu_opt)]
        if self.sigma_opt is not None:
            groups.append(("sigma", self.dist.sigma_parameters(), self.sigma_opt))
        return groups

    def train_step(self, epoch: int, step: int, xw, yw, xa, ya) -> StepStats:
        if self._fast:
            return self._train_step_fast(epoch, step, xw, yw, xa, ya)
        cfg = self.cfg
        eps = self._eps(epoch, step)
        # weight step
        self.model.train()
        arch = self.arch_weights(eps).detach()
        total, ce, gn, logits = self.loss(xw, yw, arch)
        if not torch.isfinite(total):
            raise NonFiniteLossError(f"non-finite weight loss {total.item()} at epoch {epoch}, step {step}")
        self.w_opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.w_opt.step()
        stats = StepStats(total.item(), (logits.argmax(1) == yw).float().mean().item(), gn.item())
        if epoch < cfg.arch_warmup_epochs:
            return stats
        # architecture step: mu with sigma fixed, then sigma with mu fixed
        groups = self._prepare_arch_step(epoch)
        for group, params, opt in groups:
            arch = self.arch_weights(eps)
            val_total, _, _, _ = self.loss(xa, ya, arch)
            objective = val_total + cfg.arch_weight_decay * self.dist.decay(group)
            if cfg.use_constraint:
                c = self.constraint(self.propagation().network)
                objective = objective + self.dual.penalty(c)
            if not torch.isfinite(objective):
                raise NonFiniteLossError(f"non-finite architecture loss at epoch {epoch}, step {step}")
            grads = torch.autograd.grad(objective, params, allow_unused=True)
            opt.zero_grad(set_to_none=True)
            for p, g in zip(params, grads):
                p.grad = g
            opt.step()
        stats.arch_loss = val_total.item()
        with torch.no_grad():
            c_now = self.constraint(self.propagation().network).item()
        if cfg.use_constraint:
            self.dual.update(c_now)
        stats.c = c_now
        return stats

    # ------------------------------------------------------------------ fast paths
    def loss_grads(self, x, y, make_arch: Callable, params: list):
        """The loss of Eq. 16, CE + gamma * mean_i ||grad_x CE_i||, and its gradient with
        respect to ``params`` (weights, or mu and / or sigma; ``make_arch()`` builds the
        architecture weights, on the graph of mu and sigma where they are learned).

        ``grad_norm_grad="exact"``: :meth:`loss` and one back-propagation through it (double
        back-propagation). ``"finite_difference"``: with S = sum_i CE_i, g = grad_x S and
        D the per-example unit vectors g_i / ||g_i||, the gradient of sum_i ||g_i|| is the
        directional derivative of grad_theta S along D (D held fixed), taken by a forward
        difference of two first-order passes,

            grad_theta sum_i ||g_i|| ~ [grad_theta S(x + h D) - grad_theta S(x)] / h,

        with truncation error O(h) and rounding error O(eps / h) (tests/test_fastpaths.py).
        The first pass gives g and grad_theta S(x) from one backward pass; batch norm's
        batch statistics couple the examples, so S is perturbed as a whole, which is exact
        for that coupling too. The second pass leaves the BN running statistics alone.
        Returns (total, ce, gn, logits, grads); total, ce, gn are detached in that mode."""
        cfg = self.cfg
        gamma = cfg.grad_norm_weight
        if cfg.grad_norm_grad == "exact" or gamma == 0:
            total, ce, gn, logits = self.loss(x, y, make_arch())
            return total, ce, gn, logits, torch.autograd.grad(total, params, allow_unused=True)
        ce, gn, logits, g_ce, g_gn = self.grad_norm_fd(x, y, make_arch, params, cfg.grad_norm_fd_h)
        return ce + gamma * gn, ce, gn, logits, add_scaled(g_ce, g_gn, gamma)

    def grad_norm_fd(self, x, y, make_arch: Callable, params: list, h: float):
        """The pieces of the finite-difference path of :meth:`loss_grads`: (ce, gn, logits,
        grad ce, grad gn) with ce = mean_i CE_i and gn = mean_i ||grad_x CE_i|| at x, and the
        gradient of gn by the forward difference along the unit input gradients."""
        x0 = x.detach().requires_grad_(True)
        logits = self.forward(x0, make_arch())
        ce_i = F.cross_entropy(logits, y, reduction="none")
        n = ce_i.shape[0]
        gx, *g0 = torch.autograd.grad(ce_i.sum(), [x0, *params], allow_unused=True)
        norms = gx.flatten(1).norm(dim=1)
        d = gx / norms.clamp_min(1e-30).view(-1, *[1] * (gx.dim() - 1))
        with frozen_bn_statistics(self.model):  # batch statistics, running ones left alone
            logits1 = self.forward((x0.detach() + h * d).detach(), make_arch())
            g1 = torch.autograd.grad(F.cross_entropy(logits1, y, reduction="sum"), params, allow_unused=True)
        g_ce, g_gn = fd_gradients(g0, g1, n, h)
        return ce_i.detach().mean(), norms.detach().mean(), logits.detach(), g_ce, g_gn

    def _train_step_fast(self, epoch: int, step: int, xw, yw, xa, ya) -> StepStats:
        """Algorithm 1 with the opt-in fast paths: the gradient-norm term by finite
        differences (``grad_norm_grad``, :meth:`loss_grads`) and / or one architecture pass
        that takes the gradients of mu and sigma together (``arch_update="joint"``; the
        sigma gradient is then taken at the mu of the step's start, not after the mu update
        as in Eq. 18). Host synchronisations: one finiteness check before each optimiser
        step and one read of the step's statistics at the end."""
        cfg = self.cfg
        eps = self._eps(epoch, step)
        # weight step
        self.model.train()
        arch = self.arch_weights(eps).detach()
        w_params = [p for p in self.model.parameters() if p.requires_grad]
        total, ce, gn, logits, grads = self.loss_grads(xw, yw, lambda: arch, w_params)
        if not torch.isfinite(total):
            raise NonFiniteLossError(f"non-finite weight loss {total.item()} at epoch {epoch}, step {step}")
        self.w_opt.zero_grad(set_to_none=True)
        for p, g in zip(w_params, grads):
            p.grad = None if g is None else g.detach()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.w_opt.step()
        acc = (logits.argmax(1) == yw).float().mean()
        if epoch < cfg.arch_warmup_epochs:
            t, a, g = torch.stack([total.detach(), acc, gn.detach()]).tolist()
            return StepStats(t, a, g)
        # architecture step (the same preparation as train_step)
        groups = self._prepare_arch_step(epoch)
        passes = [groups] if cfg.arch_update == "joint" else [[g] for g in groups]
        for gs in passes:
            params = [p for _, ps, _ in gs for p in ps]
            val_total, _, _, _, grads = self.loss_grads(xa, ya, lambda: self.arch_weights(eps), params)
            extra = sum(cfg.arch_weight_decay * self.dist.decay(group) for group, _, _ in gs)
            if cfg.use_constraint:
                extra = extra + self.dual.penalty(self.constraint(self.propagation().network))
            extra_grads = torch.autograd.grad(extra, params, allow_unused=True)
            if not torch.isfinite(val_total.detach() + extra.detach()):
                raise NonFiniteLossError(f"non-finite architecture loss at epoch {epoch}, step {step}")
            for p, g, e in zip(params, grads, extra_grads):
                g = e if g is None else (g if e is None else g + e)
                p.grad = None if g is None else g.detach()
            for _, _, opt in gs:
                opt.step()
        with torch.no_grad():
            c_now = self.constraint(self.propagation().network)
        t, a, g, v, c = torch.stack([total.detach(), acc, gn.detach(), val_total.detach(),
                                     torch.as_tensor(c_now, dtype=total.dtype, device=total.device)]).tolist()
        if cfg.use_constraint:
            self.dual.update(c)
        return StepStats(t, a, g, arch_loss=v, c=c)

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self) -> dict:
        self.model.eval()
        arch = self.arch_weights(None)
        n = correct = 0
        loss = 0.0
        for i, (x, y) in enumerate(self.eval_loader):
            if self.cfg.eval_batches is not None and i >= self.cfg.eval_batches:
                break
            logits = self.forward(x, arch)
            loss += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
            n += len(y)
        return {"val_loss": loss / max(n, 1), "val_acc": correct / max(n, 1), "val_n": n}

    def genotype(self, mode: str = "median", eps=None) -> Genotype:
        alpha, beta = {}, {}
        for t in CELL_TYPES:
            if mode == "sample":
                ea, eb = eps[t]
                alpha[t] = torch.exp(self.dist.mu_alpha[t] + self.dist.sigma_alpha(t) * ea)
                beta[t] = torch.exp(self.dist.mu_beta[t] + self.dist.sigma_beta(t) * eb)
            elif mode == "median":
                alpha[t], beta[t] = self.dist.mu_alpha[t].exp(), self.dist.mu_beta[t].exp()
            elif mode == "mean":
                alpha[t] = torch.exp(self.dist.mu_alpha[t] + self.dist.sigma_alpha(t) ** 2 / 2)
                beta[t] = torch.exp(self.dist.mu_beta[t] + self.dist.sigma_beta(t) ** 2 / 2)
            else:
                raise ValueError(f"unknown derivation mode {mode!r}")
        return derive(alpha, beta, self.cfg.steps, self.cfg.primitives, self.cfg.multiplier)

    def sampled_genotypes(self, n: int = 100, seed: int = 0) -> list[Genotype]:
        """Genotypes derived from n architectures sampled from the learned distribution."""
        gen = torch.Generator().manual_seed(seed)
        out = []
        with torch.no_grad():
            for _ in range(n):
                eps = self.dist.noise(CELL_TYPES, False, gen)
                out.append(self.genotype("sample", eps))
        return out

    def summary_row(self, epoch: int, acc: dict, seconds: float) -> dict:
        n = max(acc.get("n", 0), 1)
        row = {"epoch": epoch, "lr": self.w_opt.param_groups[0]["lr"], "train_loss": acc.get("loss", 0) / n,
               "train_acc": acc.get("acc", 0) / n, "grad_norm": acc.get("gn", 0) / n}
        na = acc.get("na", 0)
        row["arch_loss"] = acc.get("arch_loss", 0) / na if na else None
        row.update(self.evaluate())
        row.update(self.dist.summary())
        row["theta"] = self.dual.theta
        row["log_lambda_star"] = self.log_lambda_star
        if self.log_lambda is not None:
            with torch.no_grad():
                net = self.propagation().network
                row["net_mu"], row["net_sigma"] = float(net.mu), float(net.sigma)
                row["log_C"] = float(self.log_C)
                if self.log_lambda_star is not None:
                    row["c"] = float(self.constraint(net))
                    row["prob_bound"] = float(net.log_cdf_at_log(self.log_lambda_star))
                    row["empirical_prob"] = self.empirical_probability(1000, seed=epoch)
        row["genotype"] = str(self.genotype())
        row["seconds"] = round(seconds, 2)
        return row

    # ------------------------------------------------------------------ main loop
    def set_lr(self, epoch: int) -> None:
        cfg = self.cfg
        lr = cfg.lr_min + (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * epoch / cfg.epochs)) / 2
        for g in self.w_opt.param_groups:
            g["lr"] = lr

    def fit(self, stop_after_steps: Optional[int] = None, callback: Optional[Callable[[dict], None]] = None) -> dict:
        """Run (or resume) the search. ``stop_after_steps`` stops early after that many
        iterations of this call, as a kill would (used by the resume tests)."""
        cfg = self.cfg
        t_start = time.time()
        done_this_call = 0
        steps_per_epoch = min(len(self.train_loader), len(self.arch_loader))
        if cfg.max_steps_per_epoch:
            steps_per_epoch = min(steps_per_epoch, cfg.max_steps_per_epoch)
        while self.epoch < cfg.epochs:
            epoch = self.epoch
            self.set_lr(epoch)
            t_epoch = time.time() - self._acc.get("seconds", 0.0)
            bar = progress(steps_per_epoch, f"search epoch {epoch + 1}/{cfg.epochs}", self.progress, self.step)
            batches = zip(self.train_loader.epoch(epoch, self.step), self.arch_loader.epoch(epoch, self.step))
            for (step, xw, yw), (_, xa, ya) in batches:
                if step >= steps_per_epoch:
                    break
                if stop_after_steps is not None and done_this_call >= stop_after_steps:
                    bar.close()
                    return {"stopped": True, "epoch": epoch, "step": step}
                s = self.train_step(epoch, step, xw, yw, xa, ya)
                b = len(yw)
                a = self._acc
                a["loss"] = a.get("loss", 0.0) + s.loss * b
                a["acc"] = a.get("acc", 0.0) + s.acc * b
                a["gn"] = a.get("gn", 0.0) + s.grad_norm * b
                a["n"] = a.get("n", 0) + b
                if not math.isnan(s.arch_loss):
                    a["arch_loss"] = a.get("arch_loss", 0.0) + s.arch_loss
                    a["na"] = a.get("na", 0) + 1
                self.step = step + 1
                done_this_call += 1
                bar.set_postfix(loss=f"{s.loss:.3f}", acc=f"{s.acc:.2f}", c=f"{s.c:.3f}", theta=f"{self.dual.theta:.3g}",
                                refresh=False)  # shown by update(), at the bar's own pace
                bar.update(1)
                if self.run and cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 and self.step < steps_per_epoch:
                    self._acc["seconds"] = time.time() - t_epoch
                    self._save()
            bar.close()
            row = self.summary_row(epoch, self._acc, time.time() - t_epoch)
            check_finite(f"search epoch {epoch}", row, {"supernet": self.model, "distribution": self.dist})
            self.history.append(row)
            self.epoch, self.step, self._acc = epoch + 1, 0, {}
            if self.run:
                self.run.rewrite_metrics(self.history)
                self._save()
            if callback:
                callback(row)
        return self.finish(time.time() - t_start)

    def _save(self):
        check_finite(f"search checkpoint at epoch {self.epoch}, step {self.step}", None,
                     {"supernet": self.model, "distribution": self.dist})
        save_checkpoint(self.run.checkpoint, self.state_dict())
        self.run.account(self.prov)
        write_json(self.run.path / "provenance.json", self.prov)

    def finish(self, seconds: float) -> dict:
        g = self.genotype()
        samples = self.sampled_genotypes(100, seed=self.cfg.seed)
        result = {
            "genotype": g.to_dict(),
            "genotype_str": str(g),
            "agreement": agreement(samples, g),
            "final": self.history[-1] if self.history else None,
            "arch": {t: {"mu_alpha": self.dist.mu_alpha[t].tolist(), "sigma_alpha": self.dist.sigma_alpha(t).tolist(),
                         "mu_beta": self.dist.mu_beta[t].tolist(), "sigma_beta": self.dist.sigma_beta(t).tolist()}
                     for t in CELL_TYPES},
            "primitives": list(self.cfg.primitives),
        }
        if self.run:
            write_json(self.run.path / "genotype.json", result)
            self.prov = finish_provenance(self.run.account(self.prov), self.prov["wall_time_s"])
            write_json(self.run.path / "provenance.json", self.prov)
        return result


def _paired(a: list, b: list) -> list[int]:
    return [i for i, (u, v) in enumerate(zip(a, b)) if u is not None and v is not None]


def fd_gradients(g0: list, g1: list, n: int, h: float) -> tuple[list, list]:
    """The finite difference's two gradients from the per-parameter gradients g0 = grad S(x)
    and g1 = grad S(x + h D) (either may be None for a parameter that does not reach the
    loss): grad ce = g0 / n and grad gn = (g1 - g0) / (h n). Each operation runs once over all
    the parameters that have both (``torch._foreach_*``: a few multi-tensor kernels on a GPU
    instead of one per parameter tensor, hundreds per step), and each element's arithmetic is
    the per-tensor one, bit for bit (tests/test_fastpaths.py)."""
    g_ce, g_gn = [None] * len(g0), [None] * len(g0)
    both = _paired(g0, g1)
    if both:
        a, b = [g0[i] for i in both], [g1[i] for i in both]
        for i, u, v in zip(both, torch._foreach_div(a, n), torch._foreach_div(torch._foreach_sub(b, a), h * n)):
            g_ce[i], g_gn[i] = u, v
    for i, (a, b) in enumerate(zip(g0, g1)):
        if a is None or b is None:
            g_ce[i] = None if a is None else a / n
            g_gn[i] = None if a is None and b is None else (b if a is None else -a) / (h * n)
    return g_ce, g_gn


def add_scaled(a: list, b: list, gamma: float) -> list:
    """a + gamma * b per parameter (None: that term is absent), multi-tensor as
    :func:`fd_gradients`; the same two roundings (the product, then the sum) as the per-tensor
    expression."""
    out = [u if v is None else (v * gamma if u is None else None) for u, v in zip(a, b)]
    both = _paired(a, b)
    if both:
        sums = torch._foreach_add([a[i] for i in both], torch._foreach_mul([b[i] for i in both], gamma))
        for i, t in zip(both, sums):
            out[i] = t
    return out


class frozen_bn_statistics:
    """Batch norm in training mode (batch statistics) that leaves its running statistics
    and batch counter as they were: for the extra forward pass of a finite difference.
    Inside the block each batch norm tracks no running statistics (``track_running_stats``
    off: in training mode it then normalises with the batch's statistics, as before, and
    neither updates nor counts), so nothing is copied or restored: no kernel on a GPU.
    A module in evaluation mode keeps using its running statistics."""

    def __init__(self, model: torch.nn.Module):
        self.bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                    and m.track_running_stats and m.running_mean is not None]

    def __enter__(self):
        for m in self.bns:
            m.track_running_stats = False
        return self

    def __exit__(self, *exc):
        for m in self.bns:
            m.track_running_stats = True
        return False


def search(cfg: SearchConfig, out=None, data_root=None, progress=True) -> dict:
    return RACLSearch(cfg, out, data_root, progress).fit()


def load_search(run_dir: str | Path, device="cpu") -> RACLSearch:
    """Rebuild a search (supernet, distribution, dual) from a run directory's checkpoint."""
    run_dir = Path(run_dir)
    state = load_checkpoint(run_dir / "checkpoint.pt", device, kind="racl-search")
    cfg = from_dict(SearchConfig, state["config"])
    cfg.device = str(device)
    s = RACLSearch(cfg, None, progress=False)
    s.load_state_dict(state)
    return s


# ---------------------------------------------------------------------------- search fast paths
#: the search's fast paths (racl.search, SearchConfig): unlike the switches above they change
#: the arithmetic, so they are off by default and a run may not resume with them changed
SEARCH_FAST_PATHS = {"arch_update": "joint", "grad_norm_grad": "finite_difference", "power_iteration_fused": True,
                     "power_iteration_batched": True}


def compare_fast_search(profile: str = "smoke", seed: int = 0, overrides: dict | None = None,
                        fast: dict | None = None, progress: bool = False, workdir: Optional[str | Path] = None) -> dict:
    """Run the same search (profile, seed, data) twice, the paper's exact path and with the
    fast paths ``fast`` on, and compare what they find: the final genotypes, the per-edge
    agreement of the fast genotype with the exact one, the constraint's trajectory (c and
    theta per epoch) and the wall and CPU time of each run. With ``workdir`` each search is a
    run directory there (``exact``, ``fast``) that a killed comparison resumes; the times are
    then the runs' accumulated ones."""
    fast = dict(SEARCH_FAST_PATHS if fast is None else fast)
    runs = {}
    for name, extra in (("exact", {}), ("fast", fast)):
        cfg = get_profile(profile, {**(overrides or {}), "seed": seed, **extra})
        wall, cpu = time.time(), time.process_time()
        out = Path(workdir) / name if workdir else None
        s = RACLSearch(cfg, out, progress=progress)
        res = s.fit()
        wall, cpu = time.time() - wall, time.process_time() - cpu
        if out is not None and (out / "provenance.json").exists():
            prov = read_json(out / "provenance.json")
            wall, cpu = prov.get("wall_time_s", wall), prov.get("cpu_time_s", cpu)
        runs[name] = {
            "config": to_dict(cfg),
            "genotype": res["genotype"],
            "genotype_str": res["genotype_str"],
            "trajectory": [{k: r.get(k) for k in ("epoch", "c", "theta", "prob_bound", "val_acc", "train_loss")}
                           for r in s.history],
            "sampled_agreement": res["agreement"],
            "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2),
        }
    g_exact, g_fast = (Genotype.from_dict(runs[k]["genotype"]) for k in ("exact", "fast"))
    per_type = {}
    for t in ("normal", "reduce"):
        e_exact, e_fast = set(enumerate_edges(getattr(g_exact, t))), set(enumerate_edges(getattr(g_fast, t)))
        per_type[t] = len(e_exact & e_fast) / len(e_exact)
    return {
        "kind": "search-compare",
        "profile": profile,
        "seed": seed,
        "overrides": dict(overrides or {}),
        "fast_paths": fast,
        "same_genotype": g_exact == g_fast,
        "edge_agreement": agreement([g_fast], g_exact)["edge_agreement"],
        "edge_agreement_by_cell": per_type,
        "wall_ratio_fast_over_exact": runs["fast"]["wall_s"] / runs["exact"]["wall_s"],
        "runs": runs,
        "hardware": hardware(torch.device("cpu")),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "code": code_version(),
        "datetime": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
