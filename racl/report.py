"""Tables and figures from run records: the paper's number beside ours, never typed in.

Records live under ``data/runs`` (committed; small JSON files):

* ``search/<name>/``: config.json, provenance.json, metrics.jsonl, genotype.json
* ``train/<name>/``: config.json, provenance.json, metrics.jsonl
* ``eval/<name>.json``: evaluation records (:func:`racl.evaluation.evaluate_run`)
* ``transfer/<name>.json``: transfer matrices
* ``bench/<name>.json``: benchmark results

The paper's numbers come from ``data/paper/racl_paper.json`` only. Each of our numbers is
labelled with the budget that produced it (profile, dataset, seed, hardware, wall time,
code version); a cell with no run says so, and so does a paper value that has not been
transcribed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
RUNS = REPO / "data" / "runs"
PAPER = REPO / "data" / "paper" / "racl_paper.json"

NOT_RUN = "not run"
NOT_TRANSCRIBED = "not transcribed"

#: the paper's row names -> our architecture names
ARCH_OF_ROW = {"ResNet-18": "resnet18", "ResNet-50": "resnet50", "WideResNet-28-10": "wrn28_10",
               "DenseNet-121": "densenet121", "ResNet-110": "resnet110", "NASNet": "NASNet", "AmoebaNet": "AmoebaNet",
               "DARTS": "DARTS_V2", "PC-DARTS": "PC_DARTS", "AdvRush": "ADVRUSH", "RACL": "RACL"}
ROW_OF_ARCH = {v: k for k, v in ARCH_OF_ROW.items()}
#: the paper's column names -> keys of an evaluation record's "attacks"
ATTACK_OF_COLUMN = {"fgsm": "fgsm", "mim": "mim20", "pgd20": "pgd20", "pgd100": "pgd100", "cw": "cw",
                    "cw_inf": "cw_inf", "rfgsm": "rfgsm", "autoattack": "autoattack"}
PROFILE_RANK = {"paper": 3, "mini": 2, "smoke": 1}


def paper() -> dict:
    return json.loads(PAPER.read_text())


def paper_table(tid: str) -> pd.DataFrame:
    t = paper()["tables"][tid]
    return pd.DataFrame(t["values"]).T.reindex(index=t["rows"], columns=t["columns"]).astype(float)


def paper_status() -> str:
    return paper()["status"]


# ---------------------------------------------------------------------- loading runs
def _read(p: Path):
    return json.loads(p.read_text()) if p.exists() else None


def load_run(path: Path) -> dict:
    path = Path(path)
    metrics = [json.loads(l) for l in (path / "metrics.jsonl").read_text().splitlines() if l.strip()] if (path / "metrics.jsonl").exists() else []
    return {"name": path.name, "path": path, "config": _read(path / "config.json"), "provenance": _read(path / "provenance.json"),
            "metrics": pd.DataFrame(metrics), "result": _read(path / "genotype.json")}


def search_runs(profile: Optional[str] = None) -> list[dict]:
    runs = [load_run(p) for p in sorted((RUNS / "search").glob("*")) if (p / "config.json").exists()]
    return [r for r in runs if profile is None or r["config"]["profile"] == profile]


def train_runs() -> list[dict]:
    return [load_run(p) for p in sorted((RUNS / "train").glob("*")) if (p / "config.json").exists()]


def eval_records(dataset: Optional[str] = None) -> list[dict]:
    recs = []
    for p in sorted((RUNS / "eval").glob("*.json")):
        r = json.loads(p.read_text())
        r["_file"] = p.name
        if dataset is None or r["model"]["dataset"].split("-")[0] == dataset:
            recs.append(r)
    return recs


def json_records(kind: str) -> list[dict]:
    out = []
    for p in sorted((RUNS / kind).glob("*.json")):
        r = json.loads(p.read_text())
        r["_file"] = p.name
        out.append(r)
    return out


# ---------------------------------------------------------------------- labels
def hardware_label(hw: dict) -> str:
    if hw.get("gpu"):
        return hw["gpu"]
    return f"{hw.get('cpu', '?')} ({hw.get('cpu_threads', '?')} threads)"


def budget(prov: dict) -> str:
    """'mini · cifar10-mini · seed 0 · <hardware> · 33.1 min · 1a2b3c4'"""
    if not prov:
        return "no provenance"
    wall = prov.get("wall_time_s")
    wall_s = f"{wall / 60:.1f} min" if wall and wall >= 60 else (f"{wall:.0f} s" if wall else "?")
    code = prov.get("code", {})
    commit = (code.get("git_commit") or "?")[:7] + ("+dirty" if code.get("git_dirty") else "")
    return " · ".join([prov.get("profile", "?"), prov.get("dataset", "?"), f"seed {prov.get('seed', '?')}",
                       hardware_label(prov.get("hardware", {})), wall_s, commit])


def pct(v) -> str:
    return "—" if v is None or v != v else f"{100 * v:.1f}"


# ---------------------------------------------------------------------- tables
def best_eval(records: list[dict], arch: str) -> Optional[dict]:
    """The evaluation of ``arch`` at the largest budget (paper > mini > smoke)."""
    cands = [r for r in records if r["model"]["arch"] == arch]
    if not cands:
        return None
    return max(cands, key=lambda r: (PROFILE_RANK.get(r["model"].get("train_profile"), 0), r["n"]))


def white_box_table(tid: str) -> pd.DataFrame:
    """Paper vs ours for a white-box table: one row per model, a 'paper' and an 'ours' column
    per metric, and the budget of ours."""
    t = paper()["tables"][tid]
    recs = eval_records(t["dataset"])
    rows = []
    for row in t["rows"]:
        rec = best_eval(recs, ARCH_OF_ROW.get(row, row))
        out = {"model": row}
        for col in t["columns"]:
            pv = t["values"][row][col]
            out[(col, "paper")] = NOT_TRANSCRIBED if pv is None else (f"{pv:.2f}" if col == "params_M" else f"{pv:.1f}")
            if rec is None:
                out[(col, "ours")] = NOT_RUN
            elif col == "params_M":
                out[(col, "ours")] = f"{rec['n_params'] / 1e6:.2f}"
            elif col == "clean":
                out[(col, "ours")] = pct(rec["clean_acc"])
            else:
                a = rec["attacks"].get(ATTACK_OF_COLUMN.get(col, col))
                out[(col, "ours")] = pct(a["acc"]) if a else NOT_RUN
        out[("budget", "ours")] = budget(rec["provenance"]) + f" · n={rec['n']}" if rec else NOT_RUN
        out[("sanity", "ours")] = ("passed" if rec.get("sanity_passed") else "FAILED") if rec and "sanity" in rec else NOT_RUN
        rows.append(out)
    df = pd.DataFrame(rows).set_index("model")
    df.columns = pd.MultiIndex.from_tuples(df.columns)
    return df


def metrics_frame(run: dict) -> pd.DataFrame:
    return run["metrics"]
