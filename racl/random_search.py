"""Table 8's random search (Sec. 4.6): "we randomly sampled 10 models and selected the best
one for comparison".

The paper does not say how "best" was judged. Here it is judged without any test image:

1. :func:`random_genotype` draws ``RANDOM_SEARCH["models"]`` cells (10) uniformly from the
   DARTS space, each from its own seed (``models * seed + k`` for the row's seed and
   ``k = 0..9``, so the cells of different seeds differ too);
2. each cell is *screened*: retrained with the profile's adversarial-training recipe for a
   third of its epochs, all at the row's seed (same data order, same held-out slice), with
   a held-out slice of the **training** set (:func:`racl.profiles.screen_overrides`);
3. :func:`select` keeps the cell with the highest held-out PGD accuracy
   (``val_pgd<k>_acc``) at the last screening epoch; ties go to the higher held-out clean
   accuracy, then to the lower cell index. The last epoch, not the best epoch, because the
   last epoch is what the recipe produces;
4. the chosen cell is retrained from scratch with the full recipe at the row's seed and
   evaluated like every other row of Table 8.

Step 4 retrains rather than evaluating the screened network, so the random-search row
gets one ordinary retraining like the searched rows do, and no benefit from picking the
luckiest of 10 trainings. The selection record (``runs/select/<name>.json``) holds the
chosen genotype under ``"genotype"`` (so :func:`racl.genotypes.load_genotype` reads it like
a search's ``genotype.json``), every candidate's criterion and the rule.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Optional

from .genotypes import Genotype, load_genotype
from .operations import PRIMITIVES
from .records import provenance, read_json, write_json

#: how the cells are compared, in order: the held-out PGD accuracy at the last epoch, then
#: the held-out clean accuracy (ties), then the lower candidate index
CRITERION = "highest held-out PGD accuracy (val_pgd<k>_acc) at the last screening epoch; ties: held-out clean accuracy"


def random_genotype(seed: int, steps: int = 4) -> Genotype:
    """A cell drawn uniformly from the DARTS space (two distinct inputs per node, non-zero ops)."""
    rng = random.Random(seed)
    ops = [p for p in PRIMITIVES if p != "none"]

    def cell():
        edges = []
        for i in range(steps):
            for j in sorted(rng.sample(range(i + 2), 2)):
                edges.append((rng.choice(ops), j))
        return tuple(edges)

    concat = tuple(range(2, steps + 2))
    return Genotype(cell(), concat, cell(), concat, name=f"random{seed}")


def genotype_seeds(row_seed: int, models: int) -> list[int]:
    """The seeds of the ``models`` random cells of the random-search row at ``row_seed``."""
    return [models * row_seed + k for k in range(models)]


def screen_score(metrics: list[dict]) -> dict:
    """A screening run's criterion from its per-epoch metrics: the last epoch's held-out
    PGD and clean accuracy. An error line where the run has no held-out metrics."""
    if not metrics:
        raise ValueError("screening run has no epochs in its metrics")
    last = metrics[-1]
    pgd = [k for k in last if k.startswith("val_pgd") and k.endswith("_acc")]
    if len(pgd) != 1 or "val_clean_acc" not in last:
        raise ValueError(f"screening run's last epoch has no held-out PGD accuracy (keys: {', '.join(last)}): "
                         "train it with val_images > 0")
    return {"criterion": pgd[0], "val_pgd_acc": last[pgd[0]], "val_clean_acc": last["val_clean_acc"],
            "val_n": last.get("val_n"), "epochs": last["epoch"] + 1}


def select(candidates: list[dict]) -> int:
    """The index of the best candidate ({"val_pgd_acc", "val_clean_acc"}) by :data:`CRITERION`."""
    if not candidates:
        raise ValueError("no candidates to select from")
    return max(range(len(candidates)), key=lambda i: (candidates[i]["val_pgd_acc"], candidates[i]["val_clean_acc"], -i))


def _metrics(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"screening run {run} has no metrics.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def select_run(runs: list[Path], out: Optional[Path] = None, profile: str = "?", dataset: str = "?",
               seed: int = 0) -> dict:
    """Read the finished screening runs ``runs`` (training run folders), choose by
    :func:`select` and write the selection record to ``out``. Every screening run must
    have finished: a choice among unfinished ones would depend on when it was made."""
    rows = []
    for run in map(Path, runs):
        prov = read_json(run / "provenance.json") if (run / "provenance.json").exists() else {}
        if "finished" not in prov:
            raise ValueError(f"screening run {run} has not finished: run it before the selection")
        cfg = read_json(run / "config.json")
        rows.append({"run": run.name, "arch": cfg["arch"], **screen_score(_metrics(run))})
    if len({r["criterion"] for r in rows}) != 1:
        raise ValueError(f"screening runs were validated with different attacks: {sorted({r['criterion'] for r in rows})}")
    best = select(rows)
    genotype = load_genotype(rows[best]["arch"])
    rec = {"genotype": genotype.to_dict(), "genotype_str": str(genotype), "chosen": rows[best]["run"], "chosen_index": best,
           "rule": CRITERION, "candidates": rows,
           "provenance": provenance(profile, dataset, seed)}
    if out is not None:
        write_json(Path(out), rec)
    return rec
