"""Budgets as plain dataclass configs: ``smoke`` (CPU, seconds), ``mini`` (a real CIFAR
subset, a CPU hour or a few GPU minutes) and ``paper`` (the paper's Sec. 4.1 settings).

Every field can be overridden from the command line (``--set key=value``); the full config
is written into each run record.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields
from typing import Any, Optional

from . import speed
from .operations import PRIMITIVES


@dataclass
class SearchConfig:
    """RACL search (Algorithm 1). Defaults are the ``paper`` profile."""

    profile: str = "paper"
    dataset: str = "cifar10"
    seed: int = 0
    # data
    batch_size: int = 128
    train_portion: float = 0.5  # half of the training set for the weights, half for the architecture
    max_train_images: Optional[int] = None  # None: all
    augment: bool = True
    # supernet (8 cells = 6 normal + 2 reduction, 4 intermediate nodes, C = 16)
    init_channels: int = 16
    layers: int = 8
    steps: int = 4
    multiplier: int = 4
    stem_multiplier: int = 3
    partial_channels: int = 4  # PC-DARTS K; 1 = plain DARTS
    primitives: tuple = PRIMITIVES
    # weights: SGD lr 0.1 momentum 0.9 wd 3e-4, cosine to lr_min, gradient clipping 5 (PC-DARTS)
    epochs: int = 50
    lr: float = 0.1
    lr_min: float = 0.0
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    # distribution parameters: Adam lr 6e-4, wd 1e-3, betas (0.5, 0.999) (PC-DARTS)
    arch_lr: float = 6e-4
    arch_weight_decay: float = 1e-3
    arch_betas: tuple = (0.5, 0.999)
    arch_warmup_epochs: int = 15  # PC-DARTS trains the weights alone for the first 15 epochs
    sigma_init: float = 0.1
    mu_init: str = "uniform"  # uniform (ln 1/O, ln 1/n_j) | darts (1e-3 N(0,1))
    sample: bool = True  # False: no confidence learning (alpha = exp(mu), sigma fixed at 0)
    cell_sampling: str = "per_cell"  # per_cell | shared (one draw per cell type, DARTS-like)
    # Lipschitz bound
    op_constants: str = "exact"  # exact | paper (pooling constant 1)
    power_iterations: int = 1
    power_iterations_init: int = 20
    lipschitz_every: int = 1  # recompute the op constants every N architecture steps
    freeze_C: bool = True  # C (the factor outside the searched cells) is fixed when lambda* is set
    fw_mean: str = "moment"  # moment | paper (the printed -sigma_Z/2)
    # confidence constraint and ADMM
    use_constraint: bool = True
    eta: float = 0.9
    rho: float = 1e-3
    lambda_star: Optional[float] = None  # None: calibrated (see racl.constraint)
    lambda_star_ratio: float = 1.0
    bn_recalibration_batches: int = 10  # BN statistics re-estimated over N batches before lambda* is set
    constraint_form: str = "std"  # std | paper_variance
    admm: str = "inequality"  # inequality | equality
    # lower bound term (Eq. 16)
    grad_norm_weight: float = 0.1  # 0 disables
    # bookkeeping
    eval_batches: Optional[int] = None  # None: the whole architecture half
    checkpoint_every: int = 0  # steps; 0: only at the end of each epoch
    max_steps_per_epoch: Optional[int] = None
    device: str = "auto"
    # how it runs (racl.speed): fp32 | bf16 | auto; true | false | auto (on for CUDA)
    precision: str = "fp32"
    channels_last: Any = "auto"
    fused_optimizer: Any = "auto"

    def validate(self) -> "SearchConfig":
        _check_choice("cell_sampling", self.cell_sampling, ("per_cell", "shared"))
        _check_choice("op_constants", self.op_constants, ("exact", "paper"))
        _check_choice("fw_mean", self.fw_mean, ("moment", "paper"))
        _check_choice("constraint_form", self.constraint_form, ("std", "paper_variance"))
        _check_choice("admm", self.admm, ("inequality", "equality"))
        _check_choice("mu_init", self.mu_init, ("darts", "uniform"))
        if not 0 < self.eta < 1:
            raise ValueError(f"eta must lie in (0, 1), got {self.eta}")
        if not 0 < self.train_portion < 1:
            raise ValueError(f"train_portion must lie in (0, 1), got {self.train_portion}")
        if self.rho <= 0:
            raise ValueError(f"rho must be positive, got {self.rho}")
        if self.init_channels % self.partial_channels:
            raise ValueError("init_channels must be divisible by partial_channels")
        if self.lipschitz_every < 1:
            raise ValueError("lipschitz_every must be at least 1")
        if self.layers < 3:
            raise ValueError("layers must be at least 3")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be positive")
        speed.check(self.precision, self.channels_last, self.fused_optimizer)
        return self


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


SEARCH_PROFILES: dict[str, SearchConfig] = {
    "paper": SearchConfig(),
    # 23 minutes wall (45 CPU-minutes) measured on 2 idle CPU cores: 2,560 real CIFAR-10
    # images (1,280 for the weights, 1,280 for the architecture), a 5-cell supernet, 7 epochs
    # of which 2 warm-up. The paper makes
    # ~6,800 architecture steps, mini ~100, so rho and the distribution's learning rate are
    # scaled up by about the ratio of step counts (10x and 50x, capped) to let the dual and
    # the architecture move as far as they do in a paper run.
    "mini": SearchConfig(
        profile="mini", dataset="cifar10-mini", batch_size=64, max_train_images=2560, init_channels=8,
        layers=5, partial_channels=4, epochs=7, arch_warmup_epochs=2, lr=0.05, arch_lr=6e-3, rho=0.05,
        eval_batches=16, lipschitz_every=2, checkpoint_every=10,
    ),
    # seconds on a CPU: a 16x16 synthetic set
    "smoke": SearchConfig(
        profile="smoke", dataset="synthetic", batch_size=32, max_train_images=384, init_channels=4,
        layers=3, steps=4, partial_channels=2, epochs=3, arch_warmup_epochs=1, lr=0.05, arch_lr=3e-3,
        rho=0.05, eval_batches=4, power_iterations_init=10,
    ),
}


def get_profile(name: str, overrides: Optional[dict] = None, kind: str = "search"):
    if kind == "train":
        from . import training  # noqa: F401 - registers the training profiles
    table = {"search": SEARCH_PROFILES, "train": TRAIN_PROFILES}[kind]
    if name not in table:
        raise KeyError(f"unknown {kind} profile {name!r}; choose from {', '.join(table)}")
    cfg = dataclasses.replace(table[name])
    for k, v in (overrides or {}).items():
        set_field(cfg, k, v)
    return cfg.validate()


def set_field(cfg, key: str, value: Any) -> None:
    """Set ``cfg.key`` from a string (as given on the command line) or a value."""
    names = {f.name: f for f in fields(cfg)}
    if key not in names:
        raise KeyError(f"{type(cfg).__name__} has no field {key!r}; fields: {', '.join(names)}")
    current = getattr(cfg, key)
    if isinstance(value, str):
        value = parse_value(value, current)
    setattr(cfg, key, value)


def parse_value(text: str, current: Any) -> Any:
    if text.lower() in ("none", "null"):
        return None
    if isinstance(current, bool):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected a boolean, got {text!r}")
    if isinstance(current, (tuple, list)):
        v = json.loads(text) if text.startswith("[") else [s.strip() for s in text.split(",")]
        return tuple(v)
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def to_dict(cfg) -> dict:
    d = dataclasses.asdict(cfg)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def from_dict(cls, d: dict):
    known = {f.name for f in fields(cls)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"config has fields {cls.__name__} does not know: {', '.join(sorted(unknown))}")
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
    return cls(**kw).validate()


# Retraining profiles are defined in racl.training and registered here.
TRAIN_PROFILES: dict = {}
