"""Robustness evaluation (paper Sec. 4.2-4.4) with sanity checks built in.

:func:`evaluate` attacks a model with every attack asked for and writes a record: clean
accuracy, per-attack accuracy with the number of examples and every hyperparameter, the
model's parameter count, hardware, time and code version.

**Every attack on the same examples.** The record holds, for the clean model and for every
attack, the per-example correctness as a string of 0/1 (``"correct"``), example j of the
string being the test example ``index[j]`` (``record["index"]``, ranges such as ``"0-255"``).
Cheap attacks run on the first ``n`` examples, the slow ones (CW-L2, AutoAttack) on the
first ``n_slow``. ``record["same_examples"]`` (:func:`same_examples`) puts them side by side
on the examples every attack ran on: clean accuracy, each attack's accuracy and the
**per-example worst case** over every l-inf bounded attack (an example counts as robust only
if it is classified correctly clean and under every attack: RobustBench's robust accuracy),
each with its binomial standard error sqrt(p (1 - p) / n). The full-n accuracies of the cheap
attacks stay in ``record["attacks"]``. Random starts are keyed by example index
(:func:`racl.attacks.keyed_noise`), so a shard of the examples gets the same result as the
whole.

**Sanity checks.** With ``sanity=True`` (the default) it also runs an automated form of
Carlini et al.'s checklist ("On Evaluating Adversarial Robustness", 2019) and records each
check's outcome; a failed check is shown in the record and the book, never dropped:

1. ``iterative_beats_single_step``: PGD does at least as well as FGSM;
2. ``more_iterations_no_better``: accuracy does not rise with more PGD iterations;
3. ``larger_eps_no_better``: accuracy does not rise with a larger eps (PGD);
4. ``large_eps_near_zero``: at a large eps (0.25) PGD drives accuracy near zero;
5. ``white_box_beats_noise`` / ``white_box_beats_transfer``: white-box PGD does at least as
   well as uniform noise in the ball and as a transfer attack, from a source model given to
   the evaluation or from a committed transfer record in which the model is a target
   (:func:`transfer_check`, also applied to older records by :func:`with_record_checks`);
6. ``gradients_nonzero`` and ``deterministic_forward``;
7. ``in_eps_ball``: every adversarial example of every bounded attack lies in the eps-ball
   and in [0, 1];
8. ``ce_pgd_vs_cw_inf`` and ``ce_pgd_vs_autoattack``: on the same examples, the strongest
   CE-PGD of the record is not above the margin attack (CW-inf) or AutoAttack by more than
   one standard error of its accuracy: a CE loss that saturates, or masked gradients, make
   CE-PGD overstate robustness while the margin (or DLR) loss still finds the examples;
9. ``unbounded_cw_reaches_zero``: CW-L2 with no l-inf bound and a large c
   (``cw_unbounded_c``) brings accuracy to at most ``cw_unbounded_max_acc``: an unbounded
   attack that cannot flip every prediction is blocked by the model's gradients.

"At least as well" in 1-5 allows a tolerance of one percentage point plus one example, since
two attacks on the same n examples differ by their randomness.

:func:`sweep` gives accuracy against eps or against PGD iterations (the paper's Fig. 4),
and :func:`transfer_matrix` the source x target accuracies of transfer attacks (Tables 4-6;
:func:`transfer_correct` keeps them per example).

**CE-PGD of every length from one run.** PGD's step (2/255) does not depend on its number
of steps and its start is keyed per example, so PGD-k is the k-th iterate of PGD-K from
the same start for every k <= K. :func:`run_pgd` runs the longest once and reads the
others off its iterates: an evaluation's PGD-20, PGD-100 and curve against iterations
(1 ... 100 steps on the first ``sanity_n`` examples) cost 100 steps on ``n`` examples
instead of 120 on ``n`` plus 188 on ``sanity_n``. Each shorter result is exactly what a
run of its own on the same batches gives (``tests/test_attacks.py``); its ``seconds`` is
the time to its iterate, and ``"iterate_of"`` names the run whose time includes it.

Records name their checkpoint by its path inside the repository
(``data/runs/train/<run>``, :func:`run_ref`); :func:`resolve_run` finds it again, also for
older records written with an absolute path in another checkout.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import distributed, speed
from .attacks import Attack, CW, PGD, check_epsilon, make_attack
from .networks import count_parameters
from .records import REPO, finish_provenance, one_line, provenance, read_json, transfer_runs, write_json
from .records import progress as progress_bar

#: attacks run on the first ``n_slow`` examples only
SLOW_ATTACKS = ("cw", "autoattack", "autoattack_ta")
#: the checks of the module docstring computed from a record's attack results
RECORD_CHECKS = ("ce_pgd_vs_cw_inf", "ce_pgd_vs_autoattack", "white_box_beats_transfer")


from .profiles import ALL_ATTACKS, EVAL_PROFILES, EvalConfig, get_eval_profile  # noqa: E402,F401 - plain data, in racl.profiles


def attack_for(name: str, cfg: EvalConfig, eps: Optional[float] = None) -> Attack:
    eps = cfg.epsilon if eps is None else eps
    if name == "cw":
        return make_attack("cw", eps, steps=cfg.cw_steps)
    if name in ("autoattack", "aa"):
        return make_attack("autoattack", eps, version=cfg.autoattack_version, seed=cfg.seed)
    a = make_attack(name, eps)
    if "seed" in {f.name for f in dataclasses.fields(a)}:
        a.seed = cfg.seed
    return a


# ---------------------------------------------------------------------- per-example records
def to_bits(correct: torch.Tensor) -> str:
    """Per-example correctness as a string of 0/1."""
    return "".join("1" if c else "0" for c in correct.flatten().tolist())


def from_bits(bits: str) -> torch.Tensor:
    if set(bits) - {"0", "1"}:
        raise ValueError("per-example correctness must be a string of 0 and 1")
    return torch.tensor([c == "1" for c in bits], dtype=torch.bool)


def index_ranges(index: Sequence[int]) -> str:
    """[0, 1, 2, 5, 7, 8] -> '0-2,5,7-8' (the order is kept)."""
    out, idx = [], [int(i) for i in index]
    i = 0
    while i < len(idx):
        j = i
        while j + 1 < len(idx) and idx[j + 1] == idx[j] + 1:
            j += 1
        out.append(str(idx[i]) if i == j else f"{idx[i]}-{idx[j]}")
        i = j + 1
    return ",".join(out)


def parse_ranges(text: str) -> list[int]:
    """The inverse of :func:`index_ranges`."""
    out = []
    for part in filter(None, text.split(",")):
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b or a) + 1))
    return out


def standard_error(p: float, n: int) -> float:
    """Binomial standard error of an accuracy p measured on n examples."""
    return math.sqrt(max(p * (1 - p), 0.0) / n) if n else float("nan")


def per_example(rec: dict) -> Optional[dict]:
    """A record's per-example correctness on the examples that every attack ran on (the
    first n_slow): {"index": test-set indices, "clean", "attacks": {attack: ...} and
    "worst_case" (correct under every l-inf bounded attack): bool tensors, "over": those
    attacks}. None for a record without per-example results (written before they were stored)."""
    clean = rec.get("clean_correct")
    attacks = {k: v["correct"] for k, v in rec.get("attacks", {}).items() if "correct" in v}
    if clean is None or not attacks:
        return None
    m = min([len(clean)] + [len(b) for b in attacks.values()])
    correct = {k: from_bits(b[:m]) for k, b in attacks.items()}
    c = from_bits(clean[:m])
    bounded = [k for k, v in rec["attacks"].items() if k in correct and "in_eps_ball" in v]
    worst = c.clone()
    for k in bounded:
        worst &= correct[k]
    index = parse_ranges(rec["index"])[:m] if "index" in rec else list(range(m))
    return {"index": index, "clean": c, "attacks": correct, "worst_case": worst, "over": bounded}


def same_examples(rec: dict) -> Optional[dict]:
    """Clean accuracy, every attack and the per-example worst case over the l-inf bounded
    attacks, each with n and its standard error, on the examples that every attack of the
    record ran on (the first n_slow; :func:`per_example`). None for a record without
    per-example results (written before they were stored)."""
    ex = per_example(rec)
    if ex is None:
        return None
    m = len(ex["index"])

    def acc(t):
        p = t.float().mean().item() if m else float("nan")
        return {"acc": p, "se": standard_error(p, m)}

    return {"n": m, "index": index_ranges(ex["index"]), "clean": acc(ex["clean"]),
            "attacks": {k: acc(t) for k, t in ex["attacks"].items()},
            "worst_case": {**acc(ex["worst_case"]), "over": ex["over"]}}


def paired_difference(a: torch.Tensor, b: torch.Tensor) -> dict:
    """The difference of two accuracies measured on the same examples (per-example
    correctness ``a`` and ``b``, bool): {"diff": mean(a) - mean(b), "se": its standard error,
    sd(a_i - b_i) / sqrt(n), "n", and "discordant": (a right and b wrong, the reverse)}.
    Pairing removes the variance the two share (the examples), so it is at most the
    unpaired sqrt(se_a^2 + se_b^2) when the two are positively correlated."""
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired difference needs two per-example vectors of one length, got {tuple(a.shape)} and {tuple(b.shape)}")
    n = a.numel()
    if n == 0:
        raise ValueError("paired difference of no examples")
    d = a.float() - b.float()
    mean = d.mean().item()
    var = max((d * d).mean().item() - mean * mean, 0.0)
    return {"diff": mean, "se": math.sqrt(var / n), "n": n,
            "discordant": (int((a & ~b).sum()), int((~a & b).sum()))}


def flips(rec: dict, attack: str, z: float = 2.0) -> dict:
    """How an attack of ``rec`` moved the predictions, on the examples it ran on: ``broken``
    (correct clean, wrong under the attack), ``fixed`` (the reverse), and ``beyond_chance``,
    a sign test: a perturbation that carries no signal about the model (uniform noise, or
    PGD on a model whose input gradient is zero, which keeps its random start) flips each
    changed example either way with equal odds, so ``broken - fixed`` has mean 0 and standard
    deviation sqrt(broken + fixed); the attack moves the model beyond chance where
    ``broken - fixed > z * sqrt(broken + fixed)`` (z = 2: about 2.3% one-sided)."""
    a = rec["attacks"][attack]
    if "correct" not in a or "clean_correct" not in rec:
        raise ValueError(f"the record has no per-example results for {attack!r} (written before they were stored)")
    m = len(a["correct"])
    c, r = from_bits(rec["clean_correct"][:m]), from_bits(a["correct"])
    broken, fixed = int((c & ~r).sum()), int((~c & r).sum())
    return {"attack": attack, "n": m, "broken": broken, "fixed": fixed,
            "beyond_chance": broken - fixed > z * math.sqrt(broken + fixed)}


# ---------------------------------------------------------------------- attacks
def _batches(x, y, bs, index=None):
    index = torch.arange(len(y)) if index is None else torch.as_tensor(index)
    for i in range(0, len(y), bs):
        yield x[i : i + bs], y[i : i + bs], index[i : i + bs]


def per_batch(fn, x, y, bs, index=None) -> list:
    """``[fn(xb, yb, ib) for each batch]``, in order. With several processes (torchrun,
    :mod:`racl.distributed`) rank r computes batches r, r + N, ... and every rank receives
    all results (``fn`` returns plain Python values): the batches are the single-process
    ones, so the results are the same."""
    batches = list(_batches(x, y, bs, index))
    done = {b: fn(*batches[b]) for b in distributed.mine(len(batches))}
    if distributed.shard().active:
        for part in distributed.gather(done):
            done.update(part)
    return [done[b] for b in range(len(batches))]


def _check(model, xa, xb, yb) -> tuple:
    """(per-example correctness bits, L-inf distance, in [0, 1]) of adversarial ``xa`` for clean ``xb``."""
    with torch.no_grad():
        hit = to_bits((model(xa).argmax(1) == yb).cpu())
    return hit, (xa - xb).abs().max().item(), bool(xa.min() >= 0) and bool(xa.max() <= 1)


def _result(attack: Attack, parts: Sequence[tuple], n: int, seconds: float) -> dict:
    """An attack's record from its batches' :func:`_check` triples, in order."""
    correct = from_bits("".join(p[0] for p in parts))
    max_linf = max([p[1] for p in parts], default=0.0)
    in_range = all(p[2] for p in parts)
    out = {"acc": correct.float().mean().item() if n else float("nan"), "n": n, "params": attack.params(),
           "seconds": seconds, "max_linf": max_linf, "in_range": in_range}
    if attack.bounded:
        out["in_eps_ball"] = bool(max_linf <= attack.eps + 1e-6) and in_range
    out["correct"] = to_bits(correct)
    return out


def run_attack(model: nn.Module, attack: Attack, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256,
               index=None) -> dict:
    """Accuracy of ``model`` under ``attack`` on (x, y), the per-example correctness
    (``"correct"``, 0/1 string) and the eps-ball check. ``index``: the examples' indices
    in their split (keys the random starts; default 0..n-1)."""
    model.eval()
    t0 = time.time()

    def one(xb, yb, ib):
        return _check(model, attack(model, xb, yb, ib).detach(), xb, yb)

    parts = per_batch(one, x, y, batch_size, index)
    return _result(attack, parts, len(y), round(time.time() - t0, 2))


def run_pgd(model: nn.Module, attack: PGD, steps: Sequence[int], x: torch.Tensor, y: torch.Tensor,
            batch_size: int = 256, index=None) -> dict:
    """{k: :func:`run_attack`'s result for ``PGD-k``} for every k of ``steps``, from one run of
    max(steps) steps of ``attack`` per batch (:meth:`racl.attacks.PGD.iterates`: PGD-k is the
    k-th iterate of a longer run from the same keyed start, step size and batch). Each
    result's ``seconds`` is the time to its iterate (what PGD-k alone costs, its final
    forward included); a shorter one also says ``"iterate_of"``: the longest's name, whose
    time includes it."""
    model.eval()
    ks = sorted(set(int(k) for k in steps))

    def one(xb, yb, ib):
        out, t = {}, time.time()
        for k, xa in attack.iterates(model, xb, yb, ib, ks):
            out[k] = (*_check(model, xa, xb, yb), time.time() - t)
        return out

    parts = per_batch(one, x, y, batch_size, index)
    results = {}
    for k in ks:
        r = _result(dataclasses.replace(attack, steps=k), [p[k][:3] for p in parts], len(y),
                    round(sum(p[k][3] for p in parts), 2))
        if k < ks[-1]:
            r["iterate_of"] = f"pgd{ks[-1]}"
        results[k] = r
    return results


@torch.no_grad()
def clean_correct(model, x, y, batch_size=256) -> torch.Tensor:
    model.eval()
    return from_bits("".join(per_batch(lambda xb, yb, _: to_bits((model(xb).argmax(1) == yb).cpu()), x, y, batch_size)))


def clean_accuracy(model, x, y, batch_size=256) -> float:
    return clean_correct(model, x, y, batch_size).float().mean().item()


def sweep(model, x, y, kind: str, values: Sequence, attack: str = "pgd", eps: float = 8 / 255,
          batch_size: int = 256, seed: int = 0, index=None) -> list:
    """Accuracy against eps (``kind="eps"``, for ``attack`` fgsm or pgd) or against PGD
    iterations (``kind="steps"``, step 2/255 at ``eps``): the paper's Fig. 4."""
    if kind == "steps":  # every value from one run (:func:`run_pgd`)
        res = run_pgd(model, PGD(eps, alpha=2 / 255, steps=1, seed=seed), values, x, y, batch_size, index)
        return [{"value": v, "acc": res[int(v)]["acc"]} for v in values]
    if kind != "eps":
        raise ValueError(f"sweep kind must be 'eps' or 'steps', got {kind!r}")
    out = []
    for v in values:
        a = make_attack("fgsm", v) if attack == "fgsm" else PGD(v, alpha=max(v / 4, 0.5 / 255), steps=20, seed=seed)
        out.append({"value": v, "acc": run_attack(model, a, x, y, batch_size, index)["acc"]})
    return out


def transfer_matrix(models: dict, x, y, attack: Attack, batch_size: int = 256, index=None) -> dict:
    """acc[source][target]: adversarial examples crafted on each source, tested on each target."""
    return transfer_accuracy(transfer_correct(models, x, y, attack, batch_size, index))


def transfer_correct(models: dict, x, y, attack: Attack, batch_size: int = 256, index=None) -> dict:
    """correct[source][target]: each target's per-example correctness (a 0/1 string, :func:`to_bits`)
    on the adversarial examples crafted on each source, in the order of ``y``. Kept in a transfer
    record, it lets two targets' accuracies on the same examples be compared with the paired
    standard error (:func:`paired_difference`) rather than the sum of their binomial ones."""
    result = {}
    for s_name, src in models.items():
        src.eval()
        hits = per_batch(lambda xb, yb, ib: _transfer_hits(src, models, attack, xb, yb, ib), x, y, batch_size, index)
        result[s_name] = {t: "".join(h[t] for h in hits) for t in models}
    return result


def transfer_accuracy(correct: dict) -> dict:
    """acc[source][target] of :func:`transfer_correct`'s per-example correctness."""
    return {s: {t: from_bits(b).float().mean().item() for t, b in row.items()} for s, row in correct.items()}


@torch.no_grad()
def _transfer_hits(src, targets: dict, attack: Attack, xb, yb, ib) -> dict:
    """Per-example correctness (0/1 string) of each target on the examples crafted on ``src``."""
    with torch.enable_grad():
        xa = attack(src, xb, yb, ib).detach()
    out = {}
    for t_name, tgt in targets.items():
        tgt.eval()
        out[t_name] = to_bits((tgt(xa).argmax(1) == yb).cpu())
    return out


def input_gradient_stats(model, x, y) -> dict:
    model.eval()
    x = x.clone().requires_grad_(True)
    loss = F.cross_entropy(model(x), y, reduction="sum")
    (g,) = torch.autograd.grad(loss, x)
    norms = g.flatten(1).norm(dim=1)
    return {"fraction_nonzero": (norms > 1e-12).float().mean().item(), "median_norm": norms.median().item()}


def sweeps(model, x, y, cfg: EvalConfig, index=None, pgd_steps: Optional[list] = None) -> dict:
    """The paper's Fig. 4 on (x, y): FGSM and PGD-20 accuracy against eps, PGD accuracy
    against iterations (step 2/255 at ``cfg.epsilon``; ``pgd_steps``: that curve, already
    computed on the same examples, as :func:`evaluate` takes it from its PGD run)."""
    kw = dict(batch_size=cfg.batch_size, seed=cfg.seed, index=index)
    return {"fgsm_eps": sweep(model, x, y, "eps", cfg.sweep_eps, "fgsm", **kw),
            "pgd_eps": sweep(model, x, y, "eps", cfg.sweep_eps, "pgd", **kw),
            "pgd_steps": pgd_steps if pgd_steps is not None else sweep(model, x, y, "steps", cfg.sweep_steps, eps=cfg.epsilon, **kw),
            "n": len(y)}


# ---------------------------------------------------------------------- sanity checks
_PGD = re.compile(r"pgd\d+$")


def pgd_vs(attacks: dict, other: str) -> Optional[dict]:
    """Check 8 of the module docstring: the strongest CE-PGD of ``attacks`` against
    ``other`` on the examples both ran on. With per-example results they are compared
    example by example; without (older records) only when both ran on the same first n
    examples. Passes when acc(CE-PGD) - acc(other) <= SE = sqrt(p (1 - p) / n), p the
    CE-PGD accuracy, or when the gap is a single example (1 / n: on the 16 to 64 examples
    of a small budget, one example is above the SE whenever p is small, and one example
    says nothing). None when either attack is missing."""
    pgds = [k for k in attacks if _PGD.match(k)]
    if other not in attacks or not pgds:
        return None
    names = pgds + [other]
    if all("correct" in attacks[k] for k in names):
        m = min(len(attacks[k]["correct"]) for k in names)
        bits = {k: from_bits(attacks[k]["correct"][:m]) for k in names}
        accs = {k: b.float().mean().item() for k, b in bits.items()}
        how = "per example"
    else:
        m = attacks[other]["n"]
        pgds = [k for k in pgds if attacks[k]["n"] == m]
        if not pgds:
            return None
        accs, bits, how = {k: attacks[k]["acc"] for k in pgds + [other]}, None, "accuracies on the same first n examples"
    best = min(pgds, key=lambda k: accs[k])
    p, q = accs[best], accs[other]
    se = standard_error(p, m)
    out = {"passed": p - q <= max(se, 1 / m) + 1e-12, "ce_pgd": best, "ce_pgd_acc": p, f"{other}_acc": q, "se": se, "n": m,
           "compared": how}
    if bits is not None:
        out["only_other_breaks"] = int((bits[best] & ~bits[other]).sum())
    return out


def transfer_check(rec: dict, transfer_records: Sequence[dict], tolerance: Optional[float] = None) -> Optional[dict]:
    """``white_box_beats_transfer`` from committed transfer records: the record's strongest
    CE-PGD against the lowest accuracy of its model under examples transferred from any other
    source of a transfer record (same dataset, same first n test examples) in which its
    training run is a target (:func:`racl.records.transfer_runs`). None when no
    transfer record holds the model."""
    model = rec.get("model") or {}
    run = Path(str(model.get("run") or "")).name
    pgds = {k: v for k, v in rec.get("attacks", {}).items() if _PGD.match(k)}
    if not run or not pgds:
        return None
    tol = (rec.get("eval_config", {}).get("tolerance", 0.01) if tolerance is None else tolerance)
    found = []
    for t in transfer_records:
        if (t.get("provenance") or {}).get("dataset") != model.get("dataset"):
            continue
        runs = transfer_runs(t)
        target = next((a for a in t.get("targets", []) if Path(str(runs.get(a, ""))).name == run), None)
        if target is None:
            continue
        n = t.get("n")
        if not n:
            continue
        accs = {}
        for k, v in pgds.items():
            if "correct" in v and n <= len(v["correct"]):
                accs[k] = from_bits(v["correct"][:n]).float().mean().item()
            elif v["n"] == n:
                accs[k] = v["acc"]
        if not accs:
            continue
        for attack, mat in t.get("matrices", {}).items():
            for source, row in mat.items():
                if source != target and target in row:
                    found.append((row[target], attack, source, t.get("_file"), min(accs.values()), n))
    if not found:
        return None
    transfer, attack, source, file, pgd, n = min(found)
    return {"passed": pgd <= transfer + tol + 1.0 / n, "pgd": pgd, "transfer": transfer, "transfer_attack": attack,
            "transfer_source": source, "transfer_record": file, "n": n}


def transfer_records(runs_dir: Optional[Path] = None) -> list[dict]:
    """The committed transfer records (``data/runs/transfer/*.json``), each with its file name."""
    out = []
    for p in sorted(((runs_dir or REPO / "data" / "runs") / "transfer").glob("*.json")):
        r = read_json(p)
        r["_file"] = p.name
        out.append(r)
    return out


def with_record_checks(rec: dict, transfers: Optional[Sequence[dict]] = None) -> dict:
    """A copy of ``rec`` with the checks that its results (and the committed transfer
    records) decide added where missing: ``ce_pgd_vs_cw_inf``, ``ce_pgd_vs_autoattack``,
    ``white_box_beats_transfer`` (:data:`RECORD_CHECKS`); ``sanity_passed`` follows. A record
    evaluated without sanity checks is returned unchanged."""
    if "sanity" not in rec:
        return rec
    rec = dict(rec)
    sanity = dict(rec["sanity"])
    for name, other in (("ce_pgd_vs_cw_inf", "cw_inf"), ("ce_pgd_vs_autoattack", "autoattack")):
        if name not in sanity and (c := pgd_vs(rec.get("attacks", {}), other)) is not None:
            sanity[name] = {**c, "added_from_record": True}
    if "white_box_beats_transfer" not in sanity:
        c = transfer_check(rec, transfer_records() if transfers is None else transfers)
        if c is not None:
            sanity["white_box_beats_transfer"] = {**c, "added_from_record": True}
    rec["sanity"] = sanity
    rec["sanity_passed"] = all(c["passed"] for c in sanity.values())
    return rec


def sanity_checks(model, x, y, cfg: EvalConfig, attacks: dict, source: Optional[nn.Module] = None,
                  curves: Optional[dict] = None, index=None) -> dict:
    """The checklist of the module docstring; ``attacks`` holds :func:`run_attack` results
    (on the first examples of x), ``curves`` the :func:`sweeps` on the same (x, y)
    (computed here when not given). PGD-20, FGSM and CW-inf are run on (x, y) when
    ``attacks`` lacks them."""
    index = torch.arange(len(y)) if index is None else torch.as_tensor(index)
    curves = curves if curves is not None else sweeps(model, x, y, cfg, index)
    tol = cfg.tolerance + 1.0 / len(y)
    checks = {}
    res = dict(attacks)

    def add(name, passed, **detail):
        checks[name] = {"passed": bool(passed), **detail}

    def get(name):
        if name not in res:
            res[name] = run_attack(model, attack_for(name, cfg), x, y, cfg.batch_size, index)
        return res[name]

    pgd_name = next((a for a in ("pgd20", "pgd100") if a in res), "pgd20")
    pgd_acc, fgsm_acc = get(pgd_name)["acc"], get("fgsm")["acc"]
    add("iterative_beats_single_step", pgd_acc <= fgsm_acc + tol, pgd=pgd_acc, fgsm=fgsm_acc)

    steps = curves["pgd_steps"]
    rises = [(a["value"], b["value"]) for a, b in zip(steps, steps[1:]) if b["acc"] > a["acc"] + tol]
    add("more_iterations_no_better", not rises, sweep=steps, rises=rises)

    eps_sweep = curves["pgd_eps"]
    rises = [(a["value"], b["value"]) for a, b in zip(eps_sweep, eps_sweep[1:]) if b["acc"] > a["acc"] + tol]
    add("larger_eps_no_better", not rises, sweep=eps_sweep, rises=rises)

    big = run_attack(model, PGD(cfg.large_eps, alpha=cfg.large_eps / 10, steps=50, seed=cfg.seed), x, y, cfg.batch_size,
                     index)["acc"]
    add("large_eps_near_zero", big <= cfg.near_zero, eps=cfg.large_eps, acc=big, threshold=cfg.near_zero)

    noise = run_attack(model, make_attack("noise", cfg.epsilon, seed=cfg.seed), x, y, cfg.batch_size, index)["acc"]
    add("white_box_beats_noise", pgd_acc <= noise + tol, pgd=pgd_acc, noise=noise)
    if source is not None:
        a = PGD(cfg.epsilon, steps=20, seed=cfg.seed)
        hits = per_batch(lambda xb, yb, ib: _transfer_hits(source.eval(), {"m": model}, a, xb, yb, ib)["m"], x, y,
                         cfg.batch_size, index)
        transfer = from_bits("".join(hits)).float().mean().item()
        add("white_box_beats_transfer", pgd_acc <= transfer + tol, pgd=pgd_acc, transfer=transfer)

    g = input_gradient_stats(model, x[: cfg.batch_size], y[: cfg.batch_size])
    add("gradients_nonzero", g["fraction_nonzero"] >= 0.99, **g)
    model.eval()
    with torch.no_grad():
        a, b = model(x[:64]), model(x[:64])
    add("deterministic_forward", torch.equal(a, b), max_abs_diff=(a - b).abs().max().item())

    bad = [k for k, v in res.items() if v.get("in_eps_ball") is False]
    add("in_eps_ball", not bad, failing_attacks=bad, checked=[k for k, v in res.items() if "in_eps_ball" in v])

    get("cw_inf")
    for name, other in (("ce_pgd_vs_cw_inf", "cw_inf"), ("ce_pgd_vs_autoattack", "autoattack")):
        c = pgd_vs(res, other)
        if c is not None:
            add(name, **c)

    k = len(y) if cfg.n_slow is None else min(cfg.n_slow, len(y))
    cw = CW(cfg.epsilon, c=cfg.cw_unbounded_c, steps=cfg.cw_unbounded_steps or max(cfg.cw_steps, 100))
    acc = run_attack(model, cw, x[:k], y[:k], cfg.batch_size, index[:k])["acc"]
    add("unbounded_cw_reaches_zero", acc <= cfg.cw_unbounded_max_acc, acc=acc, n=k, c=cw.c, steps=cw.steps,
        threshold=cfg.cw_unbounded_max_acc)
    return checks


def resumable_part(partial: Optional[dict], record: dict) -> dict:
    """What of ``partial`` (an interrupted evaluation's record, see :func:`evaluate`) can be
    reused for ``record``: its attacks and sweeps, when it evaluated the same model (the
    checkpoint's SHA-256 and the clean per-example results) with the same config on the
    same examples; else nothing. Each attack and sweep seeds its own draws (random starts
    keyed by example index, ``torch.manual_seed(cfg.seed)`` before each attack), so a
    reused result is the one the uninterrupted evaluation computes."""
    if not partial:
        return {}
    def as_json(v):  # tuples in the config, lists in the file
        return json.loads(json.dumps(v))

    same = all(as_json(partial.get(k)) == as_json(record.get(k)) for k in ("eval_config", "n", "index", "clean_correct"))
    same = same and (partial.get("model") or {}).get("checkpoint_sha256") == (record.get("model") or {}).get("checkpoint_sha256")
    if not same:
        return {}
    return {"attacks": dict(partial.get("attacks", {})), "sweeps": partial.get("sweeps"),
            "pgd_steps": partial.get("pgd_steps"), "seconds": float(partial.get("seconds", 0.0))}


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: EvalConfig, source: Optional[nn.Module] = None,
             meta: Optional[dict] = None, progress: bool = False, index=None, partial: Optional[dict] = None,
             save_partial: Optional[Callable[[dict], None]] = None) -> dict:
    """Evaluate ``model`` on the first ``cfg.n`` examples of (x, y): clean accuracy, every
    attack of ``cfg`` (the slow ones on the first ``cfg.n_slow``), per-example results on
    the shared examples (:func:`same_examples`), sanity checks. ``index``: the examples'
    indices in their split (default 0..n-1).

    Resuming: ``save_partial`` is called with the record so far after each attack and after
    the sweeps; given back as ``partial``, the attacks and sweeps it holds are reused where
    :func:`resumable_part` allows (the sanity checks always run again). ``seconds`` counts
    the time of every part, across interruptions."""
    cfg.validate()
    t0 = time.time()
    model.eval()
    x, y = x[: cfg.n], y[: cfg.n]
    index = (torch.arange(len(y)) if index is None else torch.as_tensor(index)[: cfg.n]).cpu()
    if len(index) != len(y):
        raise ValueError(f"index has {len(index)} entries for {len(y)} examples")
    clean = clean_correct(model, x, y, cfg.batch_size)
    record = {"eval_config": dataclasses.asdict(cfg), "n": len(y), "clean_acc": clean.float().mean().item(),
              "n_params": count_parameters(model), "attacks": {}, "index": index_ranges(index.tolist()),
              "clean_correct": to_bits(clean)}
    if meta:
        record["model"] = meta
    reuse = resumable_part(partial, record)
    before = reuse.get("seconds", 0.0)  # time spent by the interrupted runs

    def checkpoint():
        if save_partial is not None:
            save_partial({**record, "seconds": round(before + time.time() - t0, 2)})

    k_slow = len(y) if cfg.n_slow is None else min(cfg.n_slow, len(y))
    k = min(cfg.sanity_n, len(y))
    # CE-PGD of every length (PGD-20, PGD-100, and the sweep against iterations on the first
    # k examples) from one run of the longest (run_pgd): PGD-k is the k-th iterate of it
    # (the curve goes into the partial record as "pgd_steps", so that a resumed evaluation
    # reuses it rather than computing it on other batches)
    pgd_todo = [a for a in cfg.attacks if _PGD.match(a) and a not in reuse.get("attacks", {})]
    sweep_steps = reuse.get("sweeps") is None and pgd_todo and max(cfg.sweep_steps) <= max(int(a[3:]) for a in pgd_todo)
    shared_pgd: dict = {}
    if reuse.get("pgd_steps") is not None:
        record["pgd_steps"] = reuse["pgd_steps"]
    for name in progress_bar(len(cfg.attacks), "attacks", progress, iterable=cfg.attacks):
        if name in reuse.get("attacks", {}):
            record["attacks"][name] = reuse["attacks"][name]
            continue
        if name in pgd_todo:
            if not shared_pgd:
                steps = [int(a[3:]) for a in pgd_todo] + (list(cfg.sweep_steps) if sweep_steps else [])
                shared_pgd = run_pgd(model, attack_for(name, cfg), steps, x, y, cfg.batch_size, index)
                if sweep_steps:
                    record["pgd_steps"] = [{"value": v, "acc": from_bits(shared_pgd[int(v)]["correct"])[:k].float().mean().item()}
                                           for v in cfg.sweep_steps]
            record["attacks"][name] = shared_pgd[int(name[3:])]
        else:
            n = k_slow if name in SLOW_ATTACKS else len(y)
            torch.manual_seed(cfg.seed)  # AutoAttack's own draws
            record["attacks"][name] = run_attack(model, attack_for(name, cfg), x[:n], y[:n], cfg.batch_size, index[:n])
        checkpoint()
    record["same_examples"] = same_examples(record)
    if reuse.get("sweeps") is not None:
        record["sweeps"] = reuse["sweeps"]
    else:
        record["sweeps"] = sweeps(model, x[:k], y[:k], cfg, index[:k], pgd_steps=record.get("pgd_steps"))
        checkpoint()
    record.pop("pgd_steps", None)  # now in record["sweeps"]
    if cfg.sanity:
        record["sanity"] = sanity_checks(model, x[:k], y[:k], cfg, record["attacks"], source, record["sweeps"], index[:k])
        record["sanity_passed"] = all(c["passed"] for c in record["sanity"].values())
    record["seconds"] = round(before + time.time() - t0, 2)
    if reuse:
        record["resumed_parts"] = sorted(reuse["attacks"]) + (["sweeps"] if reuse.get("sweeps") is not None else [])
    if meta:
        record["model"] = record.pop("model")  # last, as before
    return record


def partial_path(out: str | Path) -> Path:
    """Where an evaluation keeps its record so far: ``<out>.partial`` (not ``*.json``, so
    no reader of records takes it for one); removed once the record is written."""
    out = Path(out)
    return out.with_name(out.name + ".partial")


# ---------------------------------------------------------------------- records of runs
def run_ref(path: str | Path) -> str:
    """How a record names a training run: its path relative to the repository
    (``data/runs/train/<run>``) when it lies inside it or inside another checkout's
    ``data/runs``, else the absolute path."""
    p = Path(path).resolve()
    try:
        return p.relative_to(REPO).as_posix()
    except ValueError:
        pass
    parts = p.parts
    for i in range(len(parts) - 1):
        if parts[i] == "data" and parts[i + 1] == "runs":
            return Path(*parts[i:]).as_posix()
    return str(p)


def resolve_run(ref: str | Path) -> Path:
    """The training run a record names (:func:`run_ref`): relative to the repository, or an
    absolute path; an absolute path of another checkout (``.../data/runs/...``) that does not
    exist here is looked up under this repository's ``data/runs``."""
    p = Path(ref)
    if not p.is_absolute():
        return REPO / p
    if p.exists():
        return p
    rel = run_ref(p)
    return REPO / rel if not Path(rel).is_absolute() else p


def check_out_path(out: str | Path, overwrite: bool = False) -> Path:
    """Refuse, before any work, an output path that is a directory, lies under a file, or
    exists (unless ``overwrite``)."""
    p = Path(out)
    if p.is_dir():
        raise ValueError(f"--out {p} is a directory; give the path of the record's .json file")
    for parent in p.parents:
        if parent.exists() and not parent.is_dir():
            raise ValueError(f"--out {p}: {parent} is a file, not a directory")
    if p.exists() and not overwrite:
        raise ValueError(f"--out {p} exists; pass --overwrite to replace it")
    return p


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def evaluate_run(run: str | Path, cfg: EvalConfig, out: Optional[str | Path] = None, dataset: Optional[str] = None,
                 data_root=None, source_run: Optional[str | Path] = None, device="auto", progress=True,
                 overwrite: bool = False) -> dict:
    """Evaluate a training run's model on the test split of its dataset (or of ``dataset``,
    which must have the model's image size and class count) and write the record."""
    from .data import load_dataset
    from .records import resolve_device
    from .training import load_trained

    if out:
        check_out_path(out, overwrite)
    c0 = time.process_time()
    shard, dev = distributed.init(resolve_device(device))  # several processes under torchrun: sharded batches
    progress = progress and shard.main
    cl = speed.resolve_flag(cfg.channels_last, dev)
    model, meta = load_trained(run, dev)
    speed.memory_format(model, cl)
    tcfg = meta["config"]
    ds = load_dataset(dataset or tcfg["dataset"], "test", data_root)
    if (ds.num_classes, ds.image_size) != (meta["num_classes"], meta["image_size"]):
        raise ValueError(f"{run} was trained on {tcfg['dataset']} ({meta['num_classes']} classes, "
                         f"{meta['image_size']}x{meta['image_size']} images); {dataset or ds.name} has {ds.num_classes} classes "
                         f"and {ds.image_size}x{ds.image_size} images: evaluate it on a dataset like its own")
    x = speed.as_input(ds.x[: cfg.n].float().div(255).to(dev), cl)
    y = ds.y[: cfg.n].to(dev)
    if tcfg["dataset"] in ("tinyimagenet", "tiny-imagenet") and cfg.epsilon == 8 / 255:
        cfg = dataclasses.replace(cfg, epsilon=4 / 255)
    source = speed.memory_format(load_trained(source_run, dev)[0], cl) if source_run else None
    ckpt = Path(meta["checkpoint"])
    part_file = partial_path(out) if out else None
    partial = None
    if part_file is not None and part_file.exists():
        try:
            partial = read_json(part_file)
        except (OSError, ValueError) as e:  # a damaged partial record costs its attacks, nothing else
            print(f"warning: ignoring {part_file} ({one_line(e)}); evaluating from the start", file=sys.stderr)

    # provenance taken now, before the attacks: the code that runs and when it started (an
    # evaluation of hours outlives commits made beside it); a resumed evaluation keeps its
    # first segment's, kept in the partial record, as a resumed training keeps its run's
    segment = provenance(cfg.profile, ds.name, cfg.seed, dev, data_source=ds.source)

    def first_provenance(r):
        old = (partial or {}).get("provenance")
        return old if old and resumable_part(partial, r) else segment

    def save_partial(r):
        if shard.main:
            write_json(part_file, {**r, "provenance": first_provenance(r)})

    rec = evaluate(model, x, y, cfg, source, partial=partial, save_partial=save_partial if part_file else None, meta={"run": run_ref(run), "arch": tcfg["arch"], "train_profile": tcfg["profile"],
                                                    "method": tcfg["method"], "epochs_trained": meta["epoch"],
                                                    "complete": meta["complete"], "dataset": ds.name,
                                                    "train_dataset": tcfg["dataset"],
                                                    "checkpoint_sha256": _sha256(ckpt),
                                                    "checkpoint_bytes": ckpt.stat().st_size,
                                                    "transfer_source": run_ref(source_run) if source_run else None},
                   progress=progress)
    if cfg.sanity and source is None:
        rec = with_record_checks(rec)
    rec["provenance"] = finish_provenance(first_provenance(rec), rec["seconds"])
    if rec["provenance"]["code"] != segment["code"]:
        rec["provenance"]["resumed_code"] = segment["code"]  # the code of the last segment, where it differs
    rec["provenance"]["cpu_time_s"] = round(time.process_time() - c0, 2)
    if shard.active:
        rec["provenance"]["world_size"] = shard.world_size
    if out and shard.main:
        write_json(Path(out), rec)
        part_file.unlink(missing_ok=True)
    distributed.barrier()
    return rec


def add_evaluate_parser(sub):
    p = sub.add_parser("evaluate", help="attack a trained model and write an evaluation record")
    p.add_argument("--checkpoint", required=True, help="a training run directory or its checkpoint.pt")
    p.add_argument("--attacks", default="all", help=f"all, or a comma list of: {', '.join(ALL_ATTACKS)}, autoattack_ta, noise")
    p.add_argument("--profile", default="smoke", help="smoke | mini | gpu | paper (attack budgets and n)")
    p.add_argument("--n", type=int, help="number of test examples")
    p.add_argument("--batch-size", type=int, help="examples per attack batch (the unit a sharded evaluation splits; "
                                                  "CW-L2 and AutoAttack results depend on it)")
    p.add_argument("--eps", type=float, help="l-inf radius in [0, 1] (default 8/255; 4/255 on Tiny-ImageNet)")
    p.add_argument("--dataset", help="test set (default: the model's training dataset; must match its image size and classes)")
    p.add_argument("--data-root", help="folder holding the dataset")
    p.add_argument("--transfer-source", help="a training run whose PGD examples are transferred in the sanity checks")
    p.add_argument("--no-sanity", action="store_true", help="skip the sanity checks")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--out", required=True, help="the evaluation record (JSON); an existing file needs --overwrite")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")

    def run(args):
        check_out_path(args.out, args.overwrite)
        over = {}
        if args.attacks != "all":
            over["attacks"] = tuple(a.strip() for a in args.attacks.split(",") if a.strip())
            for a in over["attacks"]:
                make_attack(a)  # unknown names fail before any work
        if args.n:
            over["n"] = args.n
        if args.batch_size is not None:
            if args.batch_size < 1:
                raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
            over["batch_size"] = args.batch_size
        if args.eps is not None:
            over["epsilon"] = args.eps
        if args.no_sanity:
            over["sanity"] = False
        cfg = get_eval_profile(args.profile, **over)
        try:
            rec = evaluate_run(args.checkpoint, cfg, args.out, args.dataset, args.data_root, args.transfer_source,
                               args.device, progress=not args.no_progress, overwrite=args.overwrite)
        finally:
            distributed.finish()
        if not distributed.shard().main:
            return 0
        summary = {k: round(v["acc"], 4) for k, v in rec["attacks"].items()}
        same = rec.get("same_examples") or {}
        print(json.dumps({"clean": round(rec["clean_acc"], 4), **summary,
                          "worst_case": round(same["worst_case"]["acc"], 4) if same else None,
                          "worst_case_n": same.get("n"), "sanity_passed": rec.get("sanity_passed")}))
        failed = [k for k, v in rec.get("sanity", {}).items() if not v["passed"]]
        if failed:
            print(f"sanity checks FAILED: {', '.join(failed)} (see {args.out})")
        return 0

    p.set_defaults(func=run)
