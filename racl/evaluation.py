"""Robustness evaluation (paper Sec. 4.2-4.4) with sanity checks built in.

:func:`evaluate` attacks a model with every attack asked for and writes a record: clean
accuracy, per-attack accuracy with the number of examples and every hyperparameter, the
model's parameter count, hardware, time and code version. With ``sanity=True`` (the
default) it also runs the automated form of Carlini et al.'s checklist ("On Evaluating
Adversarial Robustness", 2019) and records each check's outcome; a failed check is shown in
the record and the book, never dropped:

1. ``iterative_beats_single_step``: PGD does at least as well as FGSM;
2. ``more_iterations_no_better``: accuracy does not rise with more PGD iterations;
3. ``larger_eps_no_better``: accuracy does not rise with a larger eps (PGD);
4. ``large_eps_near_zero``: at a large eps (0.25) PGD drives accuracy near zero;
5. ``white_box_beats_noise`` / ``white_box_beats_transfer``: white-box PGD does at least as
   well as uniform noise in the ball and as a transfer attack from a source model;
6. ``gradients_nonzero`` and ``deterministic_forward``;
7. ``in_eps_ball``: every adversarial example of every bounded attack lies in the eps-ball
   and in [0, 1].

"At least as well" allows a tolerance of one percentage point plus one example, since two
attacks on the same n examples differ by sampling noise.

:func:`sweep` gives accuracy against eps or against PGD iterations (the paper's Fig. 4),
and :func:`transfer_matrix` the source x target accuracies of transfer attacks (Tables 4-6).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import speed
from .attacks import Attack, PGD, check_epsilon, linf_pgd, make_attack
from .networks import count_parameters
from .records import provenance, write_json

ALL_ATTACKS = ("fgsm", "rfgsm", "mim20", "pgd20", "pgd100", "cw", "cw_inf", "autoattack")
#: attacks run on the first ``n_slow`` examples only
SLOW_ATTACKS = ("cw", "autoattack", "autoattack_ta")


@dataclass
class EvalConfig:
    profile: str = "paper"
    attacks: tuple = ALL_ATTACKS
    epsilon: float = 8 / 255
    n: int = 10000
    n_slow: Optional[int] = None  # examples for the slow attacks (cw, autoattack); None: n
    batch_size: int = 256
    cw_steps: int = 1000
    autoattack_version: str = "standard"
    sanity: bool = True
    sanity_n: int = 1000  # examples used by the sweeps of the sanity checks
    sweep_eps: tuple = (0.01, 0.02, 0.03, 0.04, 0.05)
    sweep_steps: tuple = (1, 2, 5, 10, 20, 50, 100)
    large_eps: float = 0.25
    near_zero: float = 0.1
    tolerance: float = 0.01
    seed: int = 0
    # attacks always run in fp32 (racl.speed); the memory format only reorders the sums
    channels_last: Any = "auto"

    def validate(self) -> "EvalConfig":
        check_epsilon(self.epsilon)
        check_epsilon(self.large_eps)
        for e in self.sweep_eps:
            check_epsilon(e)
        if self.n < 1 or (self.n_slow is not None and self.n_slow < 1):
            raise ValueError("n and n_slow must be positive")
        speed.resolve_flag(self.channels_last, "cpu")
        return self


EVAL_PROFILES = {
    "paper": EvalConfig(),
    # ~10 minutes per model on 2 CPU cores for a 5-cell mini network
    "mini": EvalConfig(profile="mini", n=256, n_slow=64, cw_steps=100, sanity_n=128),
    "smoke": EvalConfig(profile="smoke", n=64, n_slow=16, batch_size=64, cw_steps=30, sanity_n=64, sweep_steps=(1, 5, 10, 20)),
}


def get_eval_profile(name: str, **overrides) -> EvalConfig:
    if name not in EVAL_PROFILES:
        raise KeyError(f"unknown evaluation profile {name!r}; choose from {', '.join(EVAL_PROFILES)}")
    return dataclasses.replace(EVAL_PROFILES[name], **overrides).validate()


def attack_for(name: str, cfg: EvalConfig, eps: Optional[float] = None) -> Attack:
    eps = cfg.epsilon if eps is None else eps
    if name == "cw":
        return make_attack("cw", eps, steps=cfg.cw_steps)
    if name in ("autoattack", "aa"):
        return make_attack("autoattack", eps, version=cfg.autoattack_version, seed=cfg.seed)
    return make_attack(name, eps)


def _batches(x, y, bs):
    for i in range(0, len(y), bs):
        yield x[i : i + bs], y[i : i + bs]


def run_attack(model: nn.Module, attack: Attack, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> dict:
    """Accuracy of ``model`` under ``attack`` on (x, y), with the eps-ball check."""
    model.eval()
    t0 = time.time()
    correct, max_linf, in_range = 0, 0.0, True
    for xb, yb in _batches(x, y, batch_size):
        xa = attack(model, xb, yb).detach()
        with torch.no_grad():
            correct += (model(xa).argmax(1) == yb).sum().item()
        max_linf = max(max_linf, (xa - xb).abs().max().item())
        in_range &= bool(xa.min() >= 0) and bool(xa.max() <= 1)
    n = len(y)
    out = {"acc": correct / n, "n": n, "params": attack.params(), "seconds": round(time.time() - t0, 2),
           "max_linf": max_linf, "in_range": in_range}
    if attack.bounded:
        out["in_eps_ball"] = bool(max_linf <= attack.eps + 1e-6) and in_range
    return out


@torch.no_grad()
def clean_accuracy(model, x, y, batch_size=256) -> float:
    model.eval()
    return sum((model(xb).argmax(1) == yb).sum().item() for xb, yb in _batches(x, y, batch_size)) / len(y)


def sweep(model, x, y, kind: str, values: Sequence, attack: str = "pgd", eps: float = 8 / 255,
          batch_size: int = 256, seed: int = 0) -> list:
    """Accuracy against eps (``kind="eps"``, for ``attack`` fgsm or pgd) or against PGD
    iterations (``kind="steps"``, step 2/255 at ``eps``): the paper's Fig. 4."""
    out = []
    for v in values:
        if kind == "eps":
            a = make_attack("fgsm", v) if attack == "fgsm" else PGD(v, alpha=max(v / 4, 0.5 / 255), steps=20)
        elif kind == "steps":
            a = PGD(eps, alpha=2 / 255, steps=int(v))
        else:
            raise ValueError(f"sweep kind must be 'eps' or 'steps', got {kind!r}")
        torch.manual_seed(seed)
        out.append({"value": v, "acc": run_attack(model, a, x, y, batch_size)["acc"]})
    return out


def transfer_matrix(models: dict, x, y, attack: Attack, batch_size: int = 256) -> dict:
    """acc[source][target]: adversarial examples crafted on each source, tested on each target."""
    result = {}
    for s_name, src in models.items():
        src.eval()
        advs = [attack(src, xb, yb).detach() for xb, yb in _batches(x, y, batch_size)]
        xa = torch.cat(advs)
        result[s_name] = {t_name: clean_accuracy(tgt, xa, y, batch_size) for t_name, tgt in models.items()}
    return result


def input_gradient_stats(model, x, y) -> dict:
    model.eval()
    x = x.clone().requires_grad_(True)
    loss = F.cross_entropy(model(x), y, reduction="sum")
    (g,) = torch.autograd.grad(loss, x)
    norms = g.flatten(1).norm(dim=1)
    return {"fraction_nonzero": (norms > 1e-12).float().mean().item(), "median_norm": norms.median().item()}


def sweeps(model, x, y, cfg: EvalConfig) -> dict:
    """The paper's Fig. 4 on (x, y): FGSM and PGD-20 accuracy against eps, PGD accuracy
    against iterations (step 2/255 at ``cfg.epsilon``)."""
    return {"fgsm_eps": sweep(model, x, y, "eps", cfg.sweep_eps, "fgsm", batch_size=cfg.batch_size, seed=cfg.seed),
            "pgd_eps": sweep(model, x, y, "eps", cfg.sweep_eps, "pgd", batch_size=cfg.batch_size, seed=cfg.seed),
            "pgd_steps": sweep(model, x, y, "steps", cfg.sweep_steps, eps=cfg.epsilon, batch_size=cfg.batch_size,
                               seed=cfg.seed),
            "n": len(y)}


def sanity_checks(model, x, y, cfg: EvalConfig, attacks: dict, source: Optional[nn.Module] = None,
                  curves: Optional[dict] = None) -> dict:
    """The checklist of the module docstring; ``attacks`` holds :func:`run_attack` results,
    ``curves`` the :func:`sweeps` on the same (x, y) (computed here when not given)."""
    curves = curves if curves is not None else sweeps(model, x, y, cfg)
    tol = cfg.tolerance + 1.0 / len(y)
    checks = {}

    def add(name, passed, **detail):
        checks[name] = {"passed": bool(passed), **detail}

    pgd_name = next((a for a in ("pgd20", "pgd100") if a in attacks), None)
    torch.manual_seed(cfg.seed)
    pgd_acc = attacks[pgd_name]["acc"] if pgd_name else run_attack(model, PGD(cfg.epsilon, steps=20), x, y, cfg.batch_size)["acc"]
    fgsm_acc = attacks["fgsm"]["acc"] if "fgsm" in attacks else run_attack(model, make_attack("fgsm", cfg.epsilon), x, y, cfg.batch_size)["acc"]
    add("iterative_beats_single_step", pgd_acc <= fgsm_acc + tol, pgd=pgd_acc, fgsm=fgsm_acc)

    steps = curves["pgd_steps"]
    rises = [(a["value"], b["value"]) for a, b in zip(steps, steps[1:]) if b["acc"] > a["acc"] + tol]
    add("more_iterations_no_better", not rises, sweep=steps, rises=rises)

    eps_sweep = curves["pgd_eps"]
    rises = [(a["value"], b["value"]) for a, b in zip(eps_sweep, eps_sweep[1:]) if b["acc"] > a["acc"] + tol]
    add("larger_eps_no_better", not rises, sweep=eps_sweep, rises=rises)

    torch.manual_seed(cfg.seed)
    big = run_attack(model, PGD(cfg.large_eps, alpha=cfg.large_eps / 10, steps=50), x, y, cfg.batch_size)["acc"]
    add("large_eps_near_zero", big <= cfg.near_zero, eps=cfg.large_eps, acc=big, threshold=cfg.near_zero)

    noise = run_attack(model, make_attack("noise", cfg.epsilon, seed=cfg.seed), x, y, cfg.batch_size)["acc"]
    add("white_box_beats_noise", pgd_acc <= noise + tol, pgd=pgd_acc, noise=noise)
    if source is not None:
        torch.manual_seed(cfg.seed)
        xa = torch.cat([PGD(cfg.epsilon, steps=20)(source.eval(), xb, yb).detach() for xb, yb in _batches(x, y, cfg.batch_size)])
        transfer = clean_accuracy(model, xa, y, cfg.batch_size)
        add("white_box_beats_transfer", pgd_acc <= transfer + tol, pgd=pgd_acc, transfer=transfer)

    g = input_gradient_stats(model, x[: cfg.batch_size], y[: cfg.batch_size])
    add("gradients_nonzero", g["fraction_nonzero"] >= 0.99, **g)
    model.eval()
    with torch.no_grad():
        a, b = model(x[:64]), model(x[:64])
    add("deterministic_forward", torch.equal(a, b), max_abs_diff=(a - b).abs().max().item())

    bad = [k for k, v in attacks.items() if v.get("in_eps_ball") is False]
    add("in_eps_ball", not bad, failing_attacks=bad, checked=[k for k, v in attacks.items() if "in_eps_ball" in v])
    return checks


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: EvalConfig, source: Optional[nn.Module] = None,
             meta: Optional[dict] = None, progress: bool = False) -> dict:
    """Evaluate ``model`` on (x, y): clean accuracy, every attack of ``cfg``, sanity checks."""
    from tqdm import tqdm

    cfg.validate()
    t0 = time.time()
    model.eval()
    x, y = x[: cfg.n], y[: cfg.n]
    record = {"eval_config": dataclasses.asdict(cfg), "n": len(y), "clean_acc": clean_accuracy(model, x, y, cfg.batch_size),
              "n_params": count_parameters(model), "attacks": {}}
    for name in tqdm(cfg.attacks, desc="attacks", disable=not progress):
        torch.manual_seed(cfg.seed)
        k = len(y) if name not in SLOW_ATTACKS or cfg.n_slow is None else min(cfg.n_slow, len(y))
        record["attacks"][name] = run_attack(model, attack_for(name, cfg), x[:k], y[:k], cfg.batch_size)
    k = min(cfg.sanity_n, len(y))
    record["sweeps"] = sweeps(model, x[:k], y[:k], cfg)
    if cfg.sanity:
        record["sanity"] = sanity_checks(model, x[:k], y[:k], cfg, record["attacks"], source, record["sweeps"])
        record["sanity_passed"] = all(c["passed"] for c in record["sanity"].values())
    record["seconds"] = round(time.time() - t0, 2)
    if meta:
        record["model"] = meta
    return record


def evaluate_run(run: str | Path, cfg: EvalConfig, out: Optional[str | Path] = None, dataset: Optional[str] = None,
                 data_root=None, source_run: Optional[str | Path] = None, device="auto", progress=True) -> dict:
    """Evaluate a training run's model on its dataset's test split and write the record."""
    from .data import load_dataset
    from .records import resolve_device
    from .training import load_trained

    c0 = time.process_time()
    dev = resolve_device(device)
    cl = speed.resolve_flag(cfg.channels_last, dev)
    model, meta = load_trained(run, dev)
    speed.memory_format(model, cl)
    tcfg = meta["config"]
    ds = load_dataset(dataset or tcfg["dataset"], "test", data_root)
    x = speed.as_input(ds.x[: cfg.n].float().div(255).to(dev), cl)
    y = ds.y[: cfg.n].to(dev)
    if tcfg["dataset"] in ("tinyimagenet", "tiny-imagenet") and cfg.epsilon == 8 / 255:
        cfg = dataclasses.replace(cfg, epsilon=4 / 255)
    source = speed.memory_format(load_trained(source_run, dev)[0], cl) if source_run else None
    rec = evaluate(model, x, y, cfg, source, meta={"run": str(run), "arch": tcfg["arch"], "train_profile": tcfg["profile"],
                                                    "method": tcfg["method"], "epochs_trained": meta["epoch"],
                                                    "complete": meta["complete"], "dataset": ds.name,
                                                    "transfer_source": str(source_run) if source_run else None},
                   progress=progress)
    rec["provenance"] = provenance(cfg.profile, ds.name, cfg.seed, dev, data_source=ds.source)
    rec["provenance"]["wall_time_s"] = rec["seconds"]
    rec["provenance"]["cpu_time_s"] = round(time.process_time() - c0, 2)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        write_json(Path(out), rec)
    return rec


def add_evaluate_parser(sub):
    p = sub.add_parser("evaluate", help="attack a trained model and write an evaluation record")
    p.add_argument("--checkpoint", required=True, help="a training run directory or its checkpoint.pt")
    p.add_argument("--attacks", default="all", help=f"all, or a comma list of: {', '.join(ALL_ATTACKS)}, autoattack_ta, noise")
    p.add_argument("--profile", default="smoke", help="smoke | mini | paper (attack budgets and n)")
    p.add_argument("--n", type=int, help="number of test examples")
    p.add_argument("--eps", type=float, help="l-inf radius in [0, 1] (default 8/255; 4/255 on Tiny-ImageNet)")
    p.add_argument("--dataset")
    p.add_argument("--data-root")
    p.add_argument("--transfer-source", help="a training run whose PGD examples are transferred in the sanity checks")
    p.add_argument("--no-sanity", action="store_true")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", required=True, help="the evaluation record (JSON)")

    def run(args):
        over = {}
        if args.attacks != "all":
            over["attacks"] = tuple(a.strip() for a in args.attacks.split(",") if a.strip())
            for a in over["attacks"]:
                make_attack(a)  # unknown names fail before any work
        if args.n:
            over["n"] = args.n
        if args.eps is not None:
            over["epsilon"] = args.eps
        if args.no_sanity:
            over["sanity"] = False
        cfg = get_eval_profile(args.profile, **over)
        rec = evaluate_run(args.checkpoint, cfg, args.out, args.dataset, args.data_root, args.transfer_source, args.device)
        summary = {k: round(v["acc"], 4) for k, v in rec["attacks"].items()}
        print(json.dumps({"clean": round(rec["clean_acc"], 4), **summary, "sanity_passed": rec.get("sanity_passed")}))
        failed = [k for k, v in rec.get("sanity", {}).items() if not v["passed"]]
        if failed:
            print(f"sanity checks FAILED: {', '.join(failed)} (see {args.out})")
        return 0

    p.set_defaults(func=run)
