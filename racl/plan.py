"""The runs each of the paper's tables needs, how they depend on each other, and what they cost.


:func:`plan` turns targets (Table 1 ... Table 8, Fig. 4, Fig. 5) into :class:`Job` s:
searches (Algorithm 1), adversarial retrainings (Sec. 4.1), the random search's selection
(Sec. 4.6, :mod:`racl.random_search`), evaluations (Sec. 4.2-4.4) and transfer matrices
(Tables 4-6), each named after the row it serves, each naming the jobs it needs
(``Job.needs``: a retraining of a searched cell needs its search, an evaluation its
retraining, a transfer matrix every retraining it attacks or is attacked by, the random
search's selection its screening runs and its retraining the selection). This is the only
place that knows which runs a table needs; :mod:`racl.reproduce` runs them and
:mod:`racl.report` reads their records by the names chosen here (:data:`RUN_NAME`).

Targets (the paper's captions):

* table1: white-box robustness on CIFAR-10, CIFAR-100 and Tiny-ImageNet against the NAS
  cells (AmoebaNet, NASNet, DARTS, PC-DARTS);
* table2: white-box robustness on CIFAR-10 against human-designed architectures and other
  robust NAS algorithms (the latter, RobNet and ABanditNAS, are other papers' methods and
  paper-only; the human-designed networks are run);
* table3: against existing defence techniques under PGD-20 and PGD-100, on CIFAR-10,
  CIFAR-100 and Tiny-ImageNet (only RACL is ours; the defences are paper-only);
* table4: transfer-based black-box attacks (FGSM, MIM, PGD-20) crafted on a ResNet-110;
* table5 / table6: transferability matrices among the NAS cells under PGD-10 / RFGSM;
  Tables 4-6 write one transfer record per retraining seed of their networks (default 0,
  1, 2; :func:`transfer_name`), Table 4's from the one ResNet-110 source, for the spread
  over retrainings beside each record's error over its test images;
* table7: multiple runs of the searched cells: the named cells retrained and evaluated at
  several seeds (default 0, 1, 2), each on at least :data:`racl.profiles.STABILITY_EVAL`
  test images, for the mean and standard error (Sec. 4.5);
* table8: the ablations of Sec. 4.6, exactly the paper's six rows: random search (the best
  of 10 random cells, :mod:`racl.random_search`), RACL without the gradient-norm term,
  without confidence learning, (eta, rho) = (0.9, 10x the profile's rho), (0.7, the
  profile's rho), and the full RACL (0.9, the profile's rho). A committed rerun of one of
  these searches, ``<search>-<tag>`` (:func:`search_reruns`: the same setting and seed
  searched again, e.g. on the full search's machine), is retrained and evaluated too, as
  ``<run>-<tag>``; it is shown beside its row, not as one;
* fig4: accuracy against epsilon and PGD iterations, from the white-box evaluations of its
  models (Table 1's CIFAR-10 cells and Table 2's human-designed networks);
* fig5: the cells of RACL searches at several seeds (default 0, 1, 2; Sec. 4.5);
* fig5-retrain (not in the paper): Fig. 5's searches, each cell retrained and evaluated as
  Table 8's full RACL row is at that seed (the same job names, so seed 0's is Table 8's
  row): the spread over searches, which Table 7 (one cell retrained at several seeds) does
  not measure and which a comparison of two searches, such as Table 8's, carries.

**Cost** (:func:`estimate`, :func:`cost_table`): a job's hours on a device come from a
committed benchmark record of that device (``data/runs/bench``, ``benchmarks/bench.py``)
that timed the same computation, scaled by how many times the job does it:

* search: the benchmark's supernet weight step and RACL architecture step (same profile,
  batch, channels, cells and image size), times the job's steps per epoch and epochs
  (weight steps only in the warm-up epochs; the Lipschitz power iteration every
  ``lipschitz_every`` architecture steps). Where only whole search epochs of that supernet
  were timed (``bench.py --part epoch``), the mode with the config's switches (exact, fast
  paths, Lanczos), every epoch costed as a full one: an upper bound. Every ablation is costed as the full RACL step;
* selection (the random search's choice): reading a few records, costed as zero;
* retraining: the benchmark's adversarial-training step of the same network (cell network
  of the same cells and channels, or a hand-designed one of its ``--human-archs``, such as
  ResNet-18 or Table 4's ResNet-110) at the same batch, PGD steps and objective
  (the benchmark trains with the ``paper`` profile's MART), times steps per epoch and epochs;
* evaluation and transfer: the benchmark's time of each attack on its batch of the same
  network (the cell network, or one of its ``--attack-archs``), per example, times the
  examples it attacks (a transfer matrix: the attacks crafted on each source; classifying
  them on the targets is left out); an attack it did not time
  (AutoAttack, PGD-100, RFGSM, CW at another step count) or the sanity checks' sweeps make
  the job's cost unknown.

The benchmark's ``auto`` variant (what a run gets by default on that device) is used where
it was run, else its ``baseline``.

Where no benchmark record fits, the finished runs of the same device (their provenance's
hardware label and wall time, resumed segments included) give the cost instead
(:func:`measured_hours`): a search of the same config but for the seed and the values it
computes with (eta, rho, learning rates: Table 8's eta/rho rows cost the default search; median wall time);
a retraining of the same computation (objective, attack steps, batch, network shape, image
size and speed switches; a cell network of any genotype), scaled by its steps; an
evaluation from the per-example time of each attack in the records of the same network
shape and attack settings, plus the sanity checks' time of a record with the same checks.
These runs may have shared their machine, which the wall time includes. Where neither
fits, the cost is ``None`` (shown as "unknown"), never a guess.
"""

from __future__ import annotations

import heapq
import json
import math
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .networks import HUMAN_ARCHS, canonical_arch
from .profiles import (ABLATIONS, DATASETS, DEFAULT_SEEDS, RANDOM_SEARCH, RANDOM_SEARCH_LABEL, RERUN_TAG, SEARCH_MODES, TABLE8_ROWS,
                       ablation_config, default_method, get_eval_profile, get_profile, screen_overrides, slug, stability_eval, to_dict)
from .random_search import CRITERION, genotype_seeds, random_genotype
from .records import read_json, transfer_runs
from .report import BF16_CHECK, RUNS, TABLE4_SOURCE, hardware_label, paper, runnable

#: which of each table's models a budget trains by default (all of them at paper); at mini,
#: Table 2's smallest human-designed network too (ResNet-18: about 13 CPU-minutes an epoch,
#: against hours for ResNet-50, WRN-28-10 and DenseNet-121), so that Table 2 has one of its
#: baselines of ours; it is in no other table
DEFAULT_ARCHS = {"gpu": ["RACL", "DARTS_V2", "PC_DARTS"], "mini": ["RACL", "DARTS_V2", "PC_DARTS", "resnet18"],
                 "smoke": ["RACL", "DARTS_V2"]}
#: how jobs are named: ``<profile>-<dataset>-<label slug>-<method>-s<seed>`` for a
#: retraining, its evaluation and a selection, ``<profile>-<dataset>-<ablation slug>-s<seed>``
#: for a search; Table 7's evaluations add :data:`STABILITY_SUFFIX` where they attack more
#: test images than the profile's evaluation (racl.profiles.stability_eval)
RUN_NAME = "{profile}-{dataset}-{label}-{method}-s{seed}"
STABILITY_SUFFIX = "-stability"
#: Table 4's ResNet-110 source trains with the targets' recipe plus He et al.'s warm-up
TABLE4_SOURCE_OVERRIDES = {"lr_warmup_epochs": 1}
#: the seed of Table 4's one ResNet-110 source, whatever seeds its targets run at: every
#: seed's targets are attacked with the same examples
TABLE4_SOURCE_SEED = 0
TARGETS = ("table1", "table2", "table3", "table4", "table5", "table6", "table7", "table8", "fig4", "fig5", "fig5-retrain")
KINDS = ("search", "train", "select", "eval", "transfer")


#: job kinds whose record is one JSON file (the others: a run folder)
FILE_KINDS = ("select", "eval", "transfer")


@dataclass
class Job:
    """One run of the plan: ``kind`` (search | train | select | eval | transfer), its
    ``name`` (the record's name under ``runs/<kind>/``), what it runs (``spec``), the keys
    (``kind/name``) of the jobs it needs finished first, and the runs folder."""

    kind: str
    name: str
    spec: dict = field(default_factory=dict)
    needs: tuple = ()
    runs: Path = RUNS
    #: a retraining whose checkpoint a job of the plan that is still to run loads (set by
    #: :func:`plan`): finished without its checkpoint here (a record committed without
    #: it), it is run again
    needs_checkpoint: bool = False

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.name}"

    @property
    def path(self) -> Path:
        return Path(self.runs) / self.kind / (self.name + (".json" if self.kind in FILE_KINDS else ""))

    def done(self) -> bool:
        """Its record is written and current (an evaluation, selection or transfer file that
        is not :meth:`outdated`; a run folder whose provenance says it finished, with its
        checkpoint where :attr:`needs_checkpoint`)."""
        if self.kind in FILE_KINDS:
            return self.path.exists() and self.outdated() is None
        prov = self.path / "provenance.json"
        if not (prov.exists() and "finished" in read_json(prov)):
            return False
        return not self.needs_checkpoint or (self.path / "checkpoint.pt").exists()

    def outdated(self) -> Optional[str]:
        """Why the written record of this job is to be written again, or None: an evaluation
        recorded before evaluations kept per-example results on one index set (no
        ``same_examples``, issue #14), which no table can put beside the others' worst case;
        a transfer matrix crafted on or classified by other networks than this job's (one of
        the PGD-AT networks, say, where the profile now retrains with MART), or recorded before
        transfer records kept per-example results (no ``correct``), which the report's paired
        comparisons of two targets need."""
        if self.kind == "eval" and self.path.exists() and "same_examples" not in read_json(self.path):
            return "recorded before per-example results (no same_examples)"
        if self.kind == "transfer" and self.path.exists():
            rec = read_json(self.path)
            want = {**self.spec["targets"], **self.spec["sources"]}
            have = transfer_runs(rec)
            other = sorted(f"{a}: {have.get(a)}" for a, r in want.items() if have.get(a) != r)
            if other:
                return "its examples were crafted on or classified by other networks (" + ", ".join(other) + ")"
            if "correct" not in rec:
                return "recorded before per-example results (no correct)"
        return None


def search_reruns(runs: Path, search: str) -> list[tuple[str, Path]]:
    """[(tag, genotype file)] of the finished reruns of the search named ``search`` under
    ``runs/search``: folders ``<search>-<tag>`` (:data:`racl.profiles.RERUN_TAG`: lower-case letters,
    digits and dots, e.g. ``-epyc2``) that hold the search's result, ``genotype.json``.
    A rerun is the same setting and seed searched again, elsewhere or otherwise (the book's
    ablations chapter reruns Table 8's searches on the full RACL search's machine); it is
    committed by hand, never planned, and Table 8 retrains and evaluates its cell beside
    the plan's."""
    folder = Path(runs) / "search"
    pat = re.compile(re.escape(search) + f"-({RERUN_TAG})")
    return sorted((m.group(1), d / "genotype.json") for d in (folder.iterdir() if folder.is_dir() else [])
                  if (m := pat.fullmatch(d.name)) and (d / "genotype.json").is_file())


def transfer_name(profile: str, dataset: str, target: str, seed: int) -> str:
    """The transfer record of Table 4, 5 or 6 whose networks were retrained at ``seed``:
    ``<profile>-<dataset>-<table>`` for seed 0 (the name of the records written before
    Tables 4-6 ran several seeds), ``...-<table>-s<seed>`` for the others."""
    return f"{profile}-{dataset}-{target}" + (f"-s{seed}" if seed else "")


def seeds_of(target: str, seeds=None) -> tuple:
    """The seeds ``target`` runs at: ``seeds`` when given, else :data:`racl.profiles.DEFAULT_SEEDS`
    (0, 1, 2 for Tables 4-7 and Fig. 5; 0 for the others)."""
    if seeds is not None:
        seeds = tuple(seeds)
        if not seeds:
            raise ValueError("no seeds given")
        return seeds
    return DEFAULT_SEEDS.get(target, (0,))


def in_order(jobs: list[Job]) -> list[Job]:
    """The jobs in an order that runs each after the jobs it needs (a topological order;
    among the jobs ready at a time, by kind as in :data:`KINDS`, then as planned). A need
    that is not among ``jobs`` is left for the runner to report."""
    keys = {j.key for j in jobs}
    waiting = {j.key: {n for n in j.needs if n in keys} for j in jobs}
    needed_by: dict[str, list[str]] = {}
    for j in jobs:
        for n in waiting[j.key]:
            needed_by.setdefault(n, []).append(j.key)
    rank = {j.key: (KINDS.index(j.kind), i) for i, j in enumerate(jobs)}
    by_key = {j.key: j for j in jobs}
    ready = [rank[k] + (k,) for k, w in waiting.items() if not w]
    heapq.heapify(ready)
    out = []
    while ready:
        key = heapq.heappop(ready)[-1]
        out.append(by_key[key])
        for k in needed_by.get(key, []):
            waiting[k].discard(key)
            if not waiting[k]:
                heapq.heappush(ready, rank[k] + (k,))
    if len(out) != len(jobs):
        raise ValueError("the plan's jobs need each other in a cycle: " + ", ".join(k for k, w in waiting.items() if w))
    return out


def plan(profile: str, targets: list[str], archs: Optional[list[str]] = None, seeds=None, method: Optional[str] = None,
         runs: Optional[Path] = None, datasets: Optional[list[str]] = None) -> list[Job]:
    """Every job ``targets`` need at budget ``profile``, each once, in an order that runs a
    job after the jobs it needs (:func:`in_order`). ``seeds`` (None: each target's default,
    :func:`seeds_of`) applies to every target; Tables 4-6 write a transfer record per seed
    (:func:`transfer_name`), Table 4's from one ResNet-110 source (seed
    :data:`TABLE4_SOURCE_SEED`). ``method``: the
    retraining objective (None: the profile's, MART at mini and paper, PGD-AT at smoke).
    ``datasets`` (the paper's names: cifar10, cifar100, tinyimagenet; None: all) keeps the
    jobs of those datasets: Tables 1-3 run per dataset, everything else on CIFAR-10."""
    method = method or default_method(profile)
    if profile not in DATASETS:
        raise KeyError(f"unknown profile {profile!r}; choose from {', '.join(DATASETS)}")
    if datasets is not None:
        unknown = [d for d in datasets if d not in DATASETS[profile]]
        if unknown or not datasets:
            raise KeyError(f"unknown dataset(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
                           f"choose from {', '.join(DATASETS[profile])}")
    for target in targets:
        if target not in TARGETS:
            raise KeyError(f"unknown target {target!r}: {', '.join(TARGETS)}")
    runs = Path(runs) if runs is not None else RUNS
    jobs: dict[str, Job] = {}

    def add(job: Job) -> Job:
        return jobs.setdefault(job.key, job)

    def search(ds: str, seed: int, overrides: dict, label: Optional[str] = None) -> str:
        sname = f"{profile}-{ds}-{slug(label or 'RACL')}-s{seed}"
        spec = {"dataset": ds, "seed": seed, "overrides": overrides, **({"label": label} if label else {})}
        return add(Job("search", sname, spec, (), runs)).name

    def train(arch: str, dataset: str, seed: int, label: Optional[str] = None, after: tuple = (),
              overrides: Optional[dict] = None, tag: str = "") -> str:
        tname = RUN_NAME.format(profile=profile, dataset=dataset, label=slug(label or arch), method=method, seed=seed)
        tname += f"-{tag}" if tag else ""
        spec = {"arch": arch, "dataset": dataset, "seed": seed, "method": method, **({"overrides": overrides} if overrides else {})}
        add(Job("train", tname, spec, after, runs))
        return tname

    def train_eval(arch: str, dataset: str, seed: int, label: Optional[str] = None, after: tuple = (),
                   stability: bool = False, tag: str = "") -> str:
        tname = train(arch, dataset, seed, label, after, tag=tag)
        over = stability_eval(profile) if stability else {}
        ename = tname + (STABILITY_SUFFIX if over else "")
        add(Job("eval", ename, {"run": tname, "dataset": dataset, **({"overrides": over} if over else {})},
                (f"train/{tname}",), runs))
        return tname

    def transfer(name: str, sources: dict, targets_: dict, attacks: list, ds: str):
        needs = tuple(dict.fromkeys(f"train/{n}" for n in {**targets_, **sources}.values()))
        add(Job("transfer", name, {"sources": sources, "targets": targets_, "attacks": attacks, "dataset": ds}, needs, runs))

    def searched(ds: str, seed: int, label: str) -> str:
        """Table 8's row of ablation ``label`` (racl.profiles.ABLATIONS; "RACL" the full one)
        at ``seed``: its search, then its cell retrained and evaluated; the search's name."""
        sname = search(ds, seed, ABLATIONS[label], None if label == "RACL" else label)
        train_eval(str(runs / "search" / sname / "genotype.json"), ds, seed, label=f"searched-{slug(label)}",
                   after=(f"search/{sname}",))
        return sname

    def random_search(ds: str, seed: int) -> str:
        """Table 8's random search at ``seed`` (racl.random_search): screen, select, retrain."""
        label = slug(RANDOM_SEARCH_LABEL)
        screens = [train(str(random_genotype(g)), ds, seed, label=f"random-cell{g}-screen", overrides=screen_overrides(profile))
                   for g in genotype_seeds(seed, RANDOM_SEARCH["models"])]
        sel = RUN_NAME.format(profile=profile, dataset=ds, label=label, method=method, seed=seed)
        add(Job("select", sel, {"candidates": screens, "dataset": ds, "seed": seed, "rule": CRITERION},
                tuple(f"train/{n}" for n in screens), runs))
        return train_eval(str(runs / "select" / f"{sel}.json"), ds, seed, label=label, after=(f"select/{sel}",))

    for target in targets:
        seeds_t = seeds_of(target, seeds)
        ds10 = DATASETS[profile]["cifar10"]
        if datasets is not None and "cifar10" not in datasets and target not in ("table1", "table2", "table3"):
            continue  # a CIFAR-10-only target
        if target in ("table1", "table2", "table3", "fig4"):
            # the rows this project can run (other papers' methods are paper-only), per
            # dataset; Fig. 4's models are Table 1's CIFAR-10 cells and Table 2's
            # human-designed networks, whose white-box evaluations hold its sweeps
            for dataset, arch in runnable(target):
                ds = DATASETS[profile][dataset]
                if ds is None or (archs is not None and arch not in archs) or (datasets is not None and dataset not in datasets):
                    continue  # no dataset at this budget (e.g. Tiny-ImageNet has no mini subset)
                for s in seeds_t:
                    train_eval(arch, ds, s)
        elif target in ("table4", "table5", "table6"):
            rows = [a for _, a in runnable(target) if archs is None or a in archs]
            for s in seeds_t:
                # one record per retraining seed (transfer_name); the first seed's networks
                # are evaluated white-box too (Table 1's evaluation, the clean accuracies
                # beside Table 4), the others are Table 7's retrainings of those seeds
                names = {a: (train_eval if s == seeds_t[0] else train)(a, ds10, s) for a in rows}
                if target == "table4":
                    # one source for every seed, so that the targets' seeds are compared on
                    # the same examples; it is only attacked from (no white-box evaluation of
                    # its own) and is also a target, so the record holds its white-box
                    # accuracy for reference. He et al.'s ResNet-110 warm-up (racl.training):
                    # without it the source diverges
                    src = train(TABLE4_SOURCE, ds10, TABLE4_SOURCE_SEED, overrides=TABLE4_SOURCE_OVERRIDES)
                    transfer(transfer_name(profile, ds10, target, s), {TABLE4_SOURCE: src},
                             {**names, TABLE4_SOURCE: src}, ["fgsm", "mim20", "pgd20"], ds10)
                else:
                    transfer(transfer_name(profile, ds10, target, s), names, names,
                             ["pgd10" if target == "table5" else "rfgsm"], ds10)
        elif target == "table7":
            # the paper's rows are the named cells, each retrained at several seeds (Sec. 4.5)
            for _, arch in runnable("table7"):
                if archs is None or arch in archs:
                    for s in seeds_t:
                        train_eval(arch, ds10, s, stability=True)
        elif target == "table8":
            for s in seeds_t:
                for row, label in TABLE8_ROWS.items():
                    if label == RANDOM_SEARCH_LABEL:
                        random_search(ds10, s)
                        continue
                    sname = searched(ds10, s, label)
                    for tag, genotype in search_reruns(runs, sname):
                        train_eval(str(genotype), ds10, s, label=f"searched-{slug(label)}", tag=tag)
        elif target == "fig5":
            for s in seeds_t:
                search(ds10, s, {})
        elif target == "fig5-retrain":
            for s in seeds_t:
                searched(ds10, s, "RACL")  # Fig. 5's search is Table 8's full-RACL search
    pending = {d.key for d in jobs.values() if d.kind in ("eval", "transfer") and not d.done()}
    for j in jobs.values():  # a checkpoint that is loaded again
        j.needs_checkpoint = j.kind == "train" and any(j.key in jobs[k].needs for k in pending)
    return in_order(list(jobs.values()))


def job_config(job: Job, profile: str, overrides: Optional[dict] = None, device: str = "auto"):
    """The config a job runs with: its profile's, the job's own fields and overrides (a
    screening run's epochs, Table 7's evaluation size), then ``overrides`` ({kind: {field:
    value}}: ``search``, ``train`` or ``eval``; transfer matrices use the ``eval`` config's
    examples, batch and epsilon). A selection has no config (None)."""
    over = (overrides or {})
    if job.kind == "search":
        return ablation_config(profile, job.spec["overrides"], dataset=job.spec["dataset"], seed=job.spec["seed"],
                               device=device, **over.get("search", {}))
    if job.kind == "train":
        fields = {"dataset": job.spec["dataset"], "seed": job.spec["seed"], "arch": job.spec["arch"],
                  "method": job.spec["method"], "device": device, **job.spec.get("overrides", {}), **over.get("train", {})}
        return get_profile(profile, fields, kind="train").for_dataset()
    if job.kind == "select":
        return None  # it reads its candidates' records (racl.random_search)
    return get_eval_profile(profile, **{**job.spec.get("overrides", {}), **over.get("eval", {})})


# ---------------------------------------------------------------------- cost
#: training-set images of the paper's datasets and the mini subsets (the synthetic sets:
#: racl.data.synthetic's default); a config's ``max_train_images`` caps them
TRAIN_IMAGES = {"cifar10": 50000, "cifar100": 50000, "tinyimagenet": 100000, "cifar10-mini": 5482,
                "cifar100-mini": 1117, "synthetic": 640}
IMAGE_SIZE = {"cifar10": 32, "cifar100": 32, "cifar10-mini": 32, "cifar100-mini": 32, "tinyimagenet": 64}
#: benchmarks/bench.py's defaults, for the arguments a record's argv does not give
BENCH_DEFAULTS = {"--cells": 20, "--channels": 36, "--train-batch": 32, "--pgd-steps": 10, "--attack-batch": 32,
                  "--cw-steps": 100, "--batch": 32, "--attack-archs": "cells", "--human-archs": "resnet18"}
#: Slurm resources per job kind: GPUs, CPU cores and host memory (GB); the time limit comes
#: from the job's estimate (:func:`time_limit_min`)
RESOURCES = {"search": {"gpus": 1, "cpus": 8, "mem_gb": 32}, "train": {"gpus": 1, "cpus": 8, "mem_gb": 32},
             "select": {"gpus": 0, "cpus": 1, "mem_gb": 4},
             "eval": {"gpus": 1, "cpus": 8, "mem_gb": 32}, "transfer": {"gpus": 1, "cpus": 8, "mem_gb": 32}}


def image_size(dataset: str) -> Optional[int]:
    if dataset.startswith("synthetic"):
        return int(dataset.split("-", 1)[1]) if "-" in dataset else 16
    return IMAGE_SIZE.get(dataset)


def train_images(dataset: str, cap: Optional[int]) -> Optional[int]:
    n = TRAIN_IMAGES.get("synthetic" if dataset.startswith("synthetic") else dataset)
    if n is None:
        return cap
    return min(n, cap) if cap else n


def bench_for(device: str, runs: Optional[Path] = None) -> list[dict]:
    """The committed benchmark records of ``device`` (a label as :func:`racl.report.hardware_label`
    writes it: the GPU's name, or 'CPU model (N threads)'), newest first."""
    folder = Path(runs if runs is not None else RUNS) / "bench"
    recs = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    recs = [r for r in recs if hardware_label(r.get("device", {})) == device and r.get("kind") != BF16_CHECK]
    return sorted(recs, key=lambda r: r.get("datetime") or r.get("date", ""), reverse=True)


def _arg(rec: dict, flag: str):
    argv = rec.get("argv") or []
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            return int(argv[i + 1]) if argv[i + 1].lstrip("-").isdigit() else argv[i + 1]
        if a.startswith(flag + "="):
            v = a.split("=", 1)[1]
            return int(v) if v.lstrip("-").isdigit() else v
    return BENCH_DEFAULTS.get(flag)


def _result(rec: dict, part: str) -> Optional[dict]:
    res = rec.get("results", {})
    return res.get(f"{part}/auto") or res.get(f"{part}/baseline")


def _is_cell(arch: str) -> bool:
    return canonical_arch(arch) not in HUMAN_ARCHS


def _search_hours(cfg, recs) -> Optional[float]:
    n = train_images(cfg.dataset, cfg.max_train_images)
    for rec in recs:
        r = _result(rec, "search")
        c = (r or {}).get("config", {})
        if not r or (c.get("profile"), c.get("batch"), c.get("C"), c.get("layers"), c.get("K")) != (
                cfg.profile, cfg.batch_size, cfg.init_channels, cfg.layers, cfg.partial_channels):
            continue
        if n is None or image_size(c.get("dataset", "")) != image_size(cfg.dataset):
            continue
        steps = int(n * cfg.train_portion) // cfg.batch_size
        warm = min(cfg.arch_warmup_epochs, cfg.epochs)
        arch = r["racl_arch_step_s"] - r["lipschitz_power_iteration_s"] * (1 - 1 / cfg.lipschitz_every)
        return steps * (cfg.epochs * r["weight_step_s"] + (cfg.epochs - warm) * arch) / 3600
    for rec in recs:  # a whole search epoch timed (bench.py --part epoch): an upper bound
        hours = _search_hours_from_epochs(cfg, rec, n)
        if hours is not None:
            return hours
    return None


def _search_hours_from_epochs(cfg, rec: dict, n: Optional[int]) -> Optional[float]:
    """A search's hours from a benchmark record that timed whole search epochs (weight and
    architecture step per iteration) of the same supernet, batch and image size, in the mode
    whose switches the config has: every epoch costed as a full one, so the warm-up epochs
    (weight steps alone) make it an upper bound."""
    defaults = type(cfg)()
    keys = {k for fields in SEARCH_MODES.values() for k in fields}
    mode = next((m for m, fields in SEARCH_MODES.items()
                 if all(getattr(cfg, k) == fields.get(k, getattr(defaults, k)) for k in keys)), None)
    if mode is None or n is None:
        return None
    for size in (_result(rec, "epoch") or {}).values():
        c, m = size.get("config", {}), size.get(mode)
        if not m or (c.get("batch"), c.get("C"), c.get("layers"), c.get("K"), c.get("lipschitz_every")) != (
                cfg.batch_size, cfg.init_channels, cfg.layers, cfg.partial_channels, cfg.lipschitz_every):
            continue
        if image_size(c.get("dataset", "")) != image_size(cfg.dataset):
            continue
        return cfg.epochs * (int(n * cfg.train_portion) // cfg.batch_size) * m["step_s"] / 3600
    return None


def _train_hours(cfg, recs) -> Optional[float]:
    n = train_images(cfg.dataset, cfg.max_train_images)
    if n is None or image_size(cfg.dataset) != 32 or cfg.method != "mart":
        return None
    for rec in recs:
        r = _result(rec, "train")
        if not r or _arg(rec, "--train-batch") != cfg.batch_size or _arg(rec, "--pgd-steps") != cfg.attack_steps:
            continue
        if _is_cell(cfg.arch):
            if (_arg(rec, "--cells"), _arg(rec, "--channels")) != (cfg.layers, cfg.init_channels):
                continue
            key = f"racl_{cfg.layers}cell_pgd{cfg.attack_steps}_step_s"
        else:
            key = f"{canonical_arch(cfg.arch)}_pgd{cfg.attack_steps}_step_s"  # bench.py --human-archs
        if key in r:
            steps = (n - cfg.val_images) // cfg.batch_size
            return cfg.epochs * steps * r[key] / 3600
    return None


def _attack_seconds(attack: str, n: int, rec: dict, r: dict, cw_steps: int, prefix: str = "") -> Optional[float]:
    if attack == "cw" and cw_steps != _arg(rec, "--cw-steps"):
        return None
    t = r.get(f"{prefix}{attack}_s")
    return None if t is None else t * n / _arg(rec, "--attack-batch")


def _net_prefix(tc, rec: dict) -> Optional[str]:
    """The prefix of the attack times of ``tc``'s network in the attacks benchmark ``rec``
    ('' for the cell network of its --cells/--channels, '<arch>_' for a hand-designed one
    among its --attack-archs), or None where it timed another network."""
    if tc is None or image_size(tc.dataset) != 32:
        return None
    nets = str(_arg(rec, "--attack-archs")).split(",")
    if _is_cell(tc.arch):
        same = (_arg(rec, "--cells"), _arg(rec, "--channels")) == (tc.layers, tc.init_channels)
        return "" if same and "cells" in nets else None
    arch = canonical_arch(tc.arch)
    return f"{arch}_" if arch in {canonical_arch(a) for a in nets} else None


def _attack_hours(job: Job, cfg, train_cfgs: dict, recs) -> Optional[float]:
    """Evaluation / transfer: the benchmark's attack times of the same network, per example
    (a transfer matrix: the attacks crafted on each source; its targets only classify them)."""
    if job.kind == "eval" and cfg.sanity:
        return None
    if job.kind == "eval":
        nets = list(train_cfgs.values())
    else:
        nets = [train_cfgs.get(f"train/{name}") for name in job.spec["sources"].values()]
    if not nets:
        return None
    for rec in recs:
        r = _result(rec, "attacks")
        prefixes = [_net_prefix(tc, rec) for tc in nets] if r else [None]
        if None in prefixes:
            continue
        if job.kind == "eval":
            n_slow = cfg.n_slow or cfg.n
            parts = [_attack_seconds(a, n_slow if a in ("cw", "autoattack", "autoattack_ta") else cfg.n, rec, r,
                                     cfg.cw_steps, prefixes[0]) for a in cfg.attacks]
        else:
            parts = [_attack_seconds(a, cfg.n, rec, r, cfg.cw_steps, p) for a in job.spec["attacks"] for p in prefixes]
        if all(p is not None for p in parts):
            return sum(parts) / 3600
    return None


def estimate(job: Job, profile: str, device: str, overrides: Optional[dict] = None, jobs: Optional[dict] = None,
             runs: Optional[Path] = None) -> Optional[float]:
    """Hours of ``job`` on ``device`` (one GPU, or that CPU) from the committed benchmark
    records of that device, else from its finished runs (module docstring), or None where
    neither timed its computation. ``jobs`` ({key: Job}) gives an evaluation or transfer
    the retrainings it attacks; the records are read from ``runs`` (default: the job's runs
    folder)."""
    return estimate_with_source(job, profile, device, overrides, jobs, runs)[0]


def estimate_with_source(job: Job, profile: str, device: str, overrides: Optional[dict] = None,
                         jobs: Optional[dict] = None, runs: Optional[Path] = None) -> tuple[Optional[float], Optional[str]]:
    """(hours, where they come from: ``"bench"``, ``"runs"`` or None) of :func:`estimate`."""
    if job.kind == "select":
        return 0.0, "bench"  # reads the screening runs' metrics
    folder = runs if runs is not None else job.runs
    recs = bench_for(device, folder)
    cfg = job_config(job, profile, overrides)
    train_cfgs = {}
    if job.kind in ("eval", "transfer"):
        jobs = jobs or {}
        trains = {k: jobs.get(k) for k in job.needs}
        train_cfgs = {k: (job_config(t, profile, overrides) if t is not None else None) for k, t in trains.items()}
    hours = None
    if recs:
        if job.kind == "search":
            hours = _search_hours(cfg, recs)
        elif job.kind == "train":
            hours = _train_hours(cfg, recs)
        else:
            hours = _attack_hours(job, cfg, train_cfgs, recs)
    if hours is not None:
        return hours, "bench"
    hours = measured_hours(job, cfg, train_cfgs, device, folder)
    return (hours, "runs") if hours is not None else (None, None)


# ---------------------------------------------------------------------- cost from finished runs
#: fields that say who ran a config or how often it saves, not how much it computes
_NOT_WORK = ("seed", "device", "checkpoint_every", "profile")
#: a search's fields that set values it computes with, not how much it computes: Table 8's
#: eta/rho ablations cost what the default search costs (w/o gradient norm and w/o
#: confidence learning change the computation and do not)
_SEARCH_VALUES = ("eta", "rho", "lambda_star", "lambda_star_ratio", "lr", "lr_min", "momentum", "weight_decay",
                  "grad_clip", "arch_lr", "arch_weight_decay", "arch_betas", "sigma_init")
#: a retraining's fields that set the cost of one step (with the network's shape and image size)
_STEP_FIELDS = ("method", "attack_steps", "batch_size", "auxiliary", "precision", "channels_last", "fused_optimizer", "compile")
#: an evaluation's fields that set the cost of one attack on one example
_ATTACK_FIELDS = ("epsilon", "cw_steps", "autoattack_version", "channels_last")
#: ... and of its sanity checks
_SANITY_FIELDS = ("sanity", "sanity_n", "sweep_eps", "sweep_steps", "large_eps", "cw_unbounded_c", "cw_unbounded_steps", "epsilon")


def _finished_runs(folder: Path, kind: str, device: Optional[str] = None) -> list[dict]:
    """{config, prov, path} of the finished run folders of ``kind`` on ``device`` (None: any)."""
    out = []
    for p in sorted((Path(folder) / kind).glob("*")):
        try:
            prov, cfg = read_json(p / "provenance.json"), read_json(p / "config.json")
        except Exception:  # noqa: BLE001 - a folder without a readable record is no evidence
            continue
        if prov.get("finished") and prov.get("wall_time_s") and device in (None, hardware_label(prov.get("hardware", {}))):
            out.append({"config": cfg, "prov": prov, "path": p})
    return out


def run_devices(runs: Optional[Path] = None) -> list[str]:
    """The hardware labels of the finished search and retraining runs under ``runs``, the
    device with the most runs first: the devices :func:`measured_hours` can cost jobs on."""
    count = Counter(hardware_label(r["prov"].get("hardware", {}))
                    for kind in ("search", "train") for r in _finished_runs(runs if runs is not None else RUNS, kind))
    return [d for d, _ in sorted(count.items(), key=lambda kv: (-kv[1], kv[0]))]


def _network(cfg: dict) -> tuple:
    """What a retraining's network costs: cells and channels of any genotype, or the human arch."""
    arch, size = cfg["arch"], image_size(cfg["dataset"])
    if _is_cell(arch):
        return ("cells", cfg["layers"], cfg["init_channels"], size)
    return (canonical_arch(arch), size)


def _train_steps(cfg: dict, n_images: Optional[int]) -> Optional[int]:
    if not n_images:
        return None
    return cfg["epochs"] * ((n_images - cfg.get("val_images", 0)) // cfg["batch_size"])


def measured_hours(job: Job, cfg, train_cfgs: dict, device: str, runs: Path) -> Optional[float]:
    """Hours of ``job`` from the finished runs of ``device`` under ``runs`` (module
    docstring), or None where none did the same computation."""
    if job.kind in ("search", "train"):
        # a field a record lacks was added after it ran: it ran that field's default
        default = to_dict(type(cfg)())
        filled = lambda rc: {**default, **rc}  # noqa: E731
    if job.kind == "search":
        want = {k: v for k, v in to_dict(cfg).items() if k not in _NOT_WORK + _SEARCH_VALUES}
        same = [r["prov"]["wall_time_s"] for r in _finished_runs(runs, "search", device)
                if {k: filled(r["config"]).get(k) for k in want} == want]
        return None if not same else statistics.median(same) / 3600
    if job.kind == "train":
        c = to_dict(cfg)
        steps = _train_steps(c, train_images(cfg.dataset, cfg.max_train_images))
        per_step = []
        for r in _finished_runs(runs, "train", device):
            rc = filled(r["config"])
            if _network(rc) != _network(c) or any(rc.get(k) != c[k] for k in _STEP_FIELDS):
                continue
            done = _train_steps(rc, r["prov"].get("n_train_images"))
            if done:
                per_step.append(r["prov"]["wall_time_s"] / done)
        return None if steps is None or not per_step else steps * statistics.median(per_step) / 3600
    if job.kind != "eval" or any(tc is None for tc in train_cfgs.values()):
        return None  # transfer matrices: from the benchmark only
    nets = {_network(to_dict(tc)) for tc in train_cfgs.values()}
    if len(nets) != 1:
        return None
    c = to_dict(cfg)
    per_example: dict = {}
    sanity_s = []
    for p in sorted((Path(runs) / "eval").glob("*.json")):
        try:
            rec = json.loads(p.read_text())
            prov, ec = rec["provenance"], rec["eval_config"]
            net = _network(read_json(Path(runs) / "train" / Path(rec["model"]["run"]).name / "config.json"))
        except Exception:  # noqa: BLE001 - a record without its run's config is no evidence
            continue
        if hardware_label(prov.get("hardware", {})) != device or not prov.get("wall_time_s") or net not in nets:
            continue
        if any(ec.get(k) != c.get(k) for k in _ATTACK_FIELDS):
            continue
        attacks = rec.get("attacks", {})
        for a, res in attacks.items():
            if res.get("seconds") is not None and res.get("n"):
                per_example.setdefault(a, []).append(res["seconds"] / res["n"])
        if c.get("sanity") and all(ec.get(k) == c.get(k) for k in _SANITY_FIELDS):
            # a shorter CE-PGD's time is part of the longest's (its "iterate_of", racl.evaluation.run_pgd)
            sanity_s.append(prov["wall_time_s"] - sum(res.get("seconds") or 0 for res in attacks.values() if "iterate_of" not in res))
    if c.get("sanity") and not sanity_s:
        return None
    n_slow = c.get("n_slow") or c["n"]
    total = statistics.median(sanity_s) if c.get("sanity") else 0.0
    pgd = [int(a[3:]) for a in c["attacks"] if re.fullmatch(r"pgd\d+", a)]
    for a in c["attacks"]:
        if re.fullmatch(r"pgd\d+", a) and int(a[3:]) < max(pgd):
            continue  # an iterate of the longest CE-PGD of the same evaluation: no time of its own
        if a not in per_example:
            return None
        total += statistics.median(per_example[a]) * (n_slow if a in ("cw", "autoattack", "autoattack_ta") else c["n"])
    return total / 3600


def work(job: Job, profile: str, overrides: Optional[dict] = None) -> str:
    """What a job computes, in the units its cost scales with (exact, from its config)."""
    if job.kind == "select":
        return f"the best of {len(job.spec['candidates'])} screened random cells: {job.spec['rule']}"
    cfg = job_config(job, profile, overrides)
    if job.kind == "search":
        n = train_images(cfg.dataset, cfg.max_train_images)
        steps = f"{int(n * cfg.train_portion) // cfg.batch_size}" if n else "?"
        return f"{cfg.epochs} epochs x {steps} steps of batch {cfg.batch_size} ({cfg.layers} cells, C={cfg.init_channels})"
    if job.kind == "train":
        n = train_images(cfg.dataset, cfg.max_train_images)
        steps = f"{(n - cfg.val_images) // cfg.batch_size}" if n else "?"
        net = f"{cfg.layers} cells, C={cfg.init_channels}" if _is_cell(cfg.arch) else cfg.arch
        return f"{cfg.epochs} epochs x {steps} steps of batch {cfg.batch_size}, {cfg.method} with {cfg.attack_steps} attack steps ({net})"
    if job.kind == "eval":
        slow = [a for a in cfg.attacks if a in ("cw", "autoattack", "autoattack_ta")]
        n_slow = f" ({', '.join(slow)} on {cfg.n_slow})" if slow and cfg.n_slow and cfg.n_slow != cfg.n else ""
        return f"{len(cfg.attacks)} attacks on {cfg.n} examples{n_slow}" + (" + sanity checks" if cfg.sanity else "")
    return f"{len(job.spec['sources'])} sources x {len(job.spec['targets'])} targets, {', '.join(job.spec['attacks'])} on {cfg.n}"


def time_limit_min(hours: Optional[float], max_hours: float) -> int:
    """A Slurm time limit: 1.5 times the estimate plus 15 minutes, at most ``max_hours``
    (a job that needs longer is requeued from its checkpoint); ``max_hours`` when unknown."""
    if hours is None:
        return int(max_hours * 60)
    return int(min(max_hours * 60, math.ceil(1.5 * hours * 60 + 15)))


def cost_table(profile: str, targets: list[str], device: str, archs: Optional[list[str]] = None, seeds=None,
               method: Optional[str] = None, overrides: Optional[dict] = None, runs: Optional[Path] = None,
               datasets: Optional[list[str]] = None) -> tuple[list[dict], list[dict]]:
    """Every job of the plan with its work and estimated GPU-hours on ``device`` (None:
    unknown; ``source``: ``bench`` or ``runs``, :func:`estimate_with_source`), and for each target the total of its jobs (a job that serves several targets
    counts in each; the campaign's total, last, counts it once). Totals are None when any
    job of theirs is unknown, with the known part and the number of unknown jobs beside."""
    jobs = plan(profile, targets, archs, seeds, method, runs, datasets)
    by_key = {j.key: j for j in jobs}
    found = {j.key: estimate_with_source(j, profile, device, overrides, by_key, runs) for j in jobs}
    hours = {k: h for k, (h, _) in found.items()}
    gpus = {j.key: RESOURCES[j.kind]["gpus"] for j in jobs}
    rows = []
    for j in jobs:
        h = hours[j.key]
        rows.append({"kind": j.kind, "job": j.name, "needs": len(j.needs), "gpus": gpus[j.key], "work": work(j, profile, overrides),
                     "gpu_hours": None if h is None else h * gpus[j.key], "source": found[j.key][1]})

    def total(label: str, keys: list[str]) -> dict:
        known = [hours[k] * gpus[k] for k in keys if hours[k] is not None]
        unknown = sum(hours[k] is None for k in keys)
        return {"table": label, "jobs": len(keys), "gpu_hours": None if unknown else sum(known),
                "known_gpu_hours": sum(known), "unknown_jobs": unknown}

    totals = [total(t, [j.key for j in plan(profile, [t], archs, seeds, method, runs, datasets)]) for t in targets]
    totals.append(total("all (each job once)", [j.key for j in jobs]))
    return rows, totals


def format_hours(h: Optional[float]) -> str:
    """Hours as printed; None (or NaN, as a pandas column holds None beside numbers): unknown."""
    if h is None or h != h:
        return "unknown"
    return f"{h:.3g}" if h >= 0.01 else f"{h:.2g}"
