"""Attacks of the paper's evaluation (Sec. 4), one small class each with the same call:

    x_adv = attack(model, x, y, index)   # x in [0, 1], model normalises inside

White-box: FGSM, MIM (momentum iterative FGSM), PGD-k with random start, RFGSM (a random
step then a gradient step), CW-L2 as the paper states it (1000 Adam steps, lr 0.01), CW-inf
(PGD on the Carlini-Wagner margin loss, as robust-NAS papers also report), and AutoAttack.

* ``index`` (optional) holds each example's index in its split. The random attacks (PGD,
  CW-inf, RFGSM, noise) draw every example's random start from its own generator keyed by
  (attack seed, example index) (:func:`keyed_noise`), so an example is attacked the same way
  in any batch, order or shard, and two attacks of a record start from the same point on the
  same example. Without ``index`` the key is the position in the batch.
* FGSM, MIM and CW-L2 use torchattacks 3.5.1; PGD and RFGSM are torchattacks' algorithms
  (CE loss, uniform / sign-of-Gaussian start, sign steps, projection) written on
  :func:`linf_pgd` for the keyed start (``tests/test_attacks.py`` compares a step with
  torchattacks'). torchattacks' CW loss is wrong when all logits are negative (its issue
  #184): it takes the max of ``one_hot * logits``, so an implicit 0 beats every negative
  logit. :class:`CW` overrides that loss with a masked max; ``tests/test_attacks.py`` shows
  the difference. CW's early stop looks at the whole batch's loss, so CW-L2 results depend on
  the batch; so do AutoAttack's (pyautoattack seeds once per call).
* AutoAttack numbers come from ``pyautoattack``, the original implementation (APGD-CE,
  APGD-T, FAB-T, Square; 100 iterations, 5,000 Square queries). torchattacks' AutoAttack
  runs 10 iterations per sub-attack; it is kept as ``autoattack_ta``, a cross-check only.

Every bounded attack returns examples inside the l-inf ball of radius eps and inside [0, 1];
:mod:`racl.evaluation` checks it for every batch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F


def check_epsilon(eps: float) -> float:
    if not (0.0 <= float(eps) <= 1.0):
        raise ValueError(f"epsilon must lie in [0, 1] (inputs are in [0, 1]); got {eps}. "
                         f"Write 8/255 as 0.0314, not 8.")
    return float(eps)


def keyed_noise(shape, index: Optional[torch.Tensor], seed: int, stream: int, kind: str = "uniform") -> torch.Tensor:
    """Noise of ``shape`` (batch first) on the CPU: row j comes from a generator seeded by
    (seed, stream, index[j]) (``index`` None: j), uniform in [0, 1) or standard normal."""
    from .data import batch_seed

    keys = range(shape[0]) if index is None else [int(i) for i in index]
    if len(keys) != shape[0]:
        raise ValueError(f"index has {len(keys)} entries for a batch of {shape[0]}")
    draw = torch.rand if kind == "uniform" else torch.randn
    return torch.stack([draw(tuple(shape[1:]), generator=torch.Generator().manual_seed(batch_seed(seed, stream, i)))
                        for i in keys]) if keys else torch.empty(tuple(shape))


def cw_margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """max_{i != y} z_i - z_y per example (positive when misclassified)."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf")).amax(1)
    return other - true


def _pgd_loss(loss: str | Callable) -> Callable:
    if loss == "ce":
        return lambda z, t: F.cross_entropy(z, t, reduction="none")
    if loss == "cw":
        return cw_margin
    return loss


def _pgd_start(x, eps, random_start, generator, start):
    """PGD's starting point: ``start`` projected into the ball, else x plus uniform noise in
    the ball (``random_start``), else x."""
    if start is not None:
        return torch.min(torch.max(start.detach(), x - eps), x + eps).clamp(0, 1)
    if random_start:
        noise = torch.rand(x.shape, generator=generator, dtype=x.dtype, device="cpu").to(x.device)
        return (x + (2 * noise - 1) * eps).clamp(0, 1)
    return x.clone()


def linf_pgd_iterates(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float, steps: int,
                      loss: str | Callable = "ce", random_start: bool = True, generator: Optional[torch.Generator] = None,
                      start: Optional[torch.Tensor] = None) -> Iterator[torch.Tensor]:
    """The iterates of :func:`linf_pgd`: the point after step 1, 2, ..., ``steps``. The step
    size does not depend on the number of steps, so the k-th iterate *is* PGD-k's result
    from the same start: one run of K steps gives PGD-k for every k <= K (the evaluation's
    PGD-20 and PGD-100, and Fig. 4's curve against iterations, come from one run)."""
    loss_fn = _pgd_loss(loss)
    x = x.detach()
    x_adv = _pgd_start(x, eps, random_start, generator, start)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        with torch.enable_grad():
            l = loss_fn(model(x_adv), y).sum()
            (g,) = torch.autograd.grad(l, x_adv)
        x_adv = x_adv.detach() + alpha * g.sign()
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)
        yield x_adv.detach()


def linf_pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float, steps: int,
             loss: str | Callable = "ce", random_start: bool = True, generator: Optional[torch.Generator] = None,
             start: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Projected gradient ascent in the l-inf ball around ``x`` (Madry et al.). ``loss`` is
    ``"ce"``, ``"cw"`` (the margin, i.e. CW-inf) or a callable ``(logits, y) -> per-example
    loss``. ``start`` overrides the starting point (default: x, plus uniform noise in the
    ball with ``random_start``)."""
    x_adv = _pgd_start(x.detach(), eps, random_start, generator, start)  # drawn once; what 0 steps return
    # projecting the start again inside changes no bit (min, max and clamp are exact)
    for x_adv in linf_pgd_iterates(model, x, y, eps, alpha, steps, loss, start=x_adv):
        pass
    return x_adv


@dataclass
class Attack:
    """Base: ``eps`` (l-inf radius), ``bounded`` (returns points in the eps-ball)."""

    eps: float = 8 / 255
    name: str = field(default="", init=False)
    bounded: bool = field(default=True, init=False)

    def __post_init__(self):
        check_epsilon(self.eps)

    def params(self) -> dict:
        d = asdict(self)
        d.pop("name", None)
        d.pop("bounded", None)
        return d

    def __call__(self, model, x, y, index=None):  # pragma: no cover - abstract
        raise NotImplementedError


def _ta():
    import torchattacks

    return torchattacks


@dataclass
class FGSM(Attack):
    def __post_init__(self):
        super().__post_init__()
        self.name = "fgsm"

    def __call__(self, model, x, y, index=None):
        return _ta().FGSM(model, eps=self.eps)(x, y)


@dataclass
class RFGSM(Attack):
    """A random step of size alpha then one gradient step of alpha (Tramer et al.'s R+FGSM
    with alpha = eps / 2; torchattacks' RFGSM with a keyed random step)."""

    alpha: float = 4 / 255
    steps: int = 1
    seed: int = 0

    def __post_init__(self):
        super().__post_init__()
        self.name = "rfgsm"

    def __call__(self, model, x, y, index=None):
        step = keyed_noise(x.shape, index, self.seed, 3, "normal").to(x).sign()
        start = (x + self.alpha * step).clamp(0, 1)
        return linf_pgd(model, x, y, self.eps, self.alpha, self.steps, "ce", start=start)


@dataclass
class MIM(Attack):
    alpha: float = 2 / 255
    steps: int = 20
    decay: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        self.name = f"mim{self.steps}"

    def __call__(self, model, x, y, index=None):
        return _ta().MIFGSM(model, eps=self.eps, alpha=self.alpha, steps=self.steps, decay=self.decay)(x, y)


def _uniform_start(x, eps, index, seed, stream):
    noise = keyed_noise(x.shape, index, seed, stream).to(x)
    return (x + (2 * noise - 1) * eps).clamp(0, 1)


@dataclass
class PGD(Attack):
    """CE-PGD (Madry et al.) from a uniform random point of the ball (keyed per example)."""

    alpha: float = 2 / 255
    steps: int = 20
    random_start: bool = True
    seed: int = 0

    def __post_init__(self):
        super().__post_init__()
        self.name = f"pgd{self.steps}"

    def __call__(self, model, x, y, index=None):
        start = _uniform_start(x, self.eps, index, self.seed, 1) if self.random_start else x
        return linf_pgd(model, x, y, self.eps, self.alpha, self.steps, "ce", start=start)

    def iterates(self, model, x, y, index=None, at: Sequence[int] = ()) -> Iterator[tuple[int, torch.Tensor]]:
        """(k, PGD-k's result) for each k of ``at`` (default: this attack's ``steps``), in
        increasing k, from one run of max(at) steps: the same start and step size as
        ``PGD(eps, alpha, steps=k, seed=seed)`` (:func:`linf_pgd_iterates`)."""
        at = sorted(set(int(k) for k in (at or (self.steps,))))
        if at[0] < 1:
            raise ValueError(f"PGD iterates are counted from 1, got {at[0]}")
        start = _uniform_start(x, self.eps, index, self.seed, 1) if self.random_start else x
        it = linf_pgd_iterates(model, x, y, self.eps, self.alpha, at[-1], "ce", start=start)
        for k, x_adv in enumerate(it, 1):
            if k in at:
                yield k, x_adv


@dataclass
class CWInf(Attack):
    """PGD on the CW margin loss (the 'CW-inf' of robust-NAS papers), uniform random start."""

    alpha: float = 2 / 255
    steps: int = 30
    seed: int = 0

    def __post_init__(self):
        super().__post_init__()
        self.name = "cw_inf"

    def __call__(self, model, x, y, index=None):
        start = _uniform_start(x, self.eps, index, self.seed, 2)
        return linf_pgd(model, x, y, self.eps, self.alpha, self.steps, loss="cw", start=start)


def _fixed_cw_class():
    ta = _ta()

    class FixedCW(ta.CW):
        """torchattacks' CW with the loss of issue #184 corrected (masked max)."""

        def f(self, outputs, labels):
            margin = cw_margin(outputs, labels)  # other - real
            if self.targeted:
                return torch.clamp(margin, min=-self.kappa)
            return torch.clamp(-margin, min=-self.kappa)

    return FixedCW


@dataclass
class CW(Attack):
    """Carlini-Wagner L2 (unbounded in l-inf: ``bounded`` is False) with Adam, as the paper
    states it (1000 steps, lr 0.01; c and kappa are torchattacks' defaults, 1 and 0)."""

    c: float = 1.0
    kappa: float = 0.0
    steps: int = 1000
    lr: float = 0.01
    fixed_loss: bool = True

    def __post_init__(self):
        super().__post_init__()
        self.name = "cw"
        self.bounded = False

    def __call__(self, model, x, y, index=None):
        cls = _fixed_cw_class() if self.fixed_loss else _ta().CW
        return cls(model, c=self.c, kappa=self.kappa, steps=self.steps, lr=self.lr)(x, y)


@dataclass
class AutoAttack(Attack):
    """The original AutoAttack (pyautoattack), ``standard`` version by default."""

    version: str = "standard"
    seed: int = 0
    batch_size: int = 250

    def __post_init__(self):
        super().__post_init__()
        self.name = "autoattack"

    def __call__(self, model, x, y, index=None):
        import logging

        from pyautoattack import AutoAttack as AA

        logging.getLogger("auto-attack").setLevel(logging.WARNING)
        dev = next(model.parameters()).device
        aa = AA(model, eps=self.eps, norm="Linf", version=self.version, device=dev, seed=self.seed)
        aa.verbose = False
        n_classes = model(x[:1]).shape[1]
        if n_classes < 10 and self.version == "standard":  # APGD-T / FAB-T use 9 target classes
            aa.apgd_targeted.n_target_classes = n_classes - 1
            aa.fab.n_target_classes = n_classes - 1
        out = aa.run_standard_evaluation(x, y, batch_size=self.batch_size)
        return out[0] if isinstance(out, tuple) else out  # pyautoattack returns (x_adv, y_adv)


@dataclass
class AutoAttackTA(Attack):
    """torchattacks' AutoAttack (10 iterations per sub-attack): a cross-check only."""

    seed: int = 0

    def __post_init__(self):
        super().__post_init__()
        self.name = "autoattack_ta"

    def __call__(self, model, x, y, index=None):
        n_classes = model(x[:1]).shape[1]
        return _ta().AutoAttack(model, norm="Linf", eps=self.eps, version="standard", n_classes=n_classes, seed=self.seed)(x, y)


@dataclass
class RandomNoise(Attack):
    """Uniform noise in the eps-ball: the weakest 'attack', for the sanity checks."""

    seed: int = 0

    def __post_init__(self):
        super().__post_init__()
        self.name = "noise"

    def __call__(self, model, x, y, index=None):
        return _uniform_start(x, self.eps, index, self.seed, 4)


def make_attack(name: str, eps: float = 8 / 255, **kw) -> Attack:
    """An attack from its short name: fgsm, rfgsm, mim, mimN, pgdN, cw, cw_inf, autoattack,
    autoattack_ta, noise."""
    n = name.lower()
    if n == "fgsm":
        return FGSM(eps, **kw)
    if n == "rfgsm":
        return RFGSM(eps, **{"alpha": eps / 2, **kw})
    if n.startswith("mim"):
        steps = int(n[3:]) if n[3:] else kw.pop("steps", 20)
        return MIM(eps, **{"steps": steps, **kw})
    if n.startswith("pgd") and n[3:].isdigit():
        return PGD(eps, **{"steps": int(n[3:]), **kw})
    if n == "cw":
        return CW(eps, **kw)
    if n in ("cw_inf", "cwinf", "cw-inf"):
        return CWInf(eps, **kw)
    if n in ("autoattack", "aa"):
        return AutoAttack(eps, **kw)
    if n == "autoattack_ta":
        return AutoAttackTA(eps, **kw)
    if n == "noise":
        return RandomNoise(eps, **kw)
    raise KeyError(f"unknown attack {name!r}; known: fgsm, rfgsm, mim[N], pgdN, cw, cw_inf, autoattack, autoattack_ta, noise")
