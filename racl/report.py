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
    wall, cpu = prov.get("wall_time_s"), prov.get("cpu_time_s")

    def dur(t):
        return f"{t / 60:.1f} min" if t and t >= 60 else (f"{t:.0f} s" if t else "?")

    wall_s = dur(wall) + (f" (cpu {dur(cpu)})" if cpu else "")
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


def attack_details(rec: dict) -> pd.DataFrame:
    """One evaluation record's attacks: accuracy, number of examples and hyperparameters
    (eps and step sizes in 1/255), so a reader sees at what budget each number was taken."""
    rows = []
    for name, a in rec["attacks"].items():
        p = dict(a.get("params", {}))
        for k in ("eps", "alpha"):
            if k in p:
                p[k] = f"{p[k] * 255:.3g}/255"
        rows.append({"attack": name, "acc (%)": pct(a["acc"]), "n": a["n"], "seconds": a.get("seconds"),
                     "in eps-ball": a.get("in_eps_ball", "unbounded"),
                     "parameters": ", ".join(f"{k}={v}" for k, v in p.items())})
    return pd.DataFrame(rows).set_index("attack")


def metrics_frame(run: dict) -> pd.DataFrame:
    return run["metrics"]


# ======================================================================================
# Black-box transfer (Tables 4-6), perturbation sweeps (Fig. 4), stability and ablations
# (Tables 7-8) and the evaluation sanity checks: helpers of the chapters blackbox,
# perturbation, ablations and sanity.
# ======================================================================================
#: Table 4's columns -> the attack keys of a transfer record's "matrices"
TRANSFER_ATTACK_OF_COLUMN = {"fgsm": "fgsm", "mim": "mim20", "pgd20": "pgd20"}
#: the attack of each transferability matrix (Tables 5 and 6)
MATRIX_ATTACK = {"table5": "pgd10", "table6": "rfgsm"}
#: Table 4's source model
TABLE4_SOURCE = "resnet110"
#: the sweeps of an evaluation record (Fig. 4): key -> (panel title, x label, paper grid key)
FIG4_SWEEPS = {"fgsm_eps": ("FGSM", "ε", "eps"), "pgd_eps": ("PGD-20", "ε", "eps"),
               "pgd_steps": ("PGD (ε = 8/255, step 2/255)", "iterations", "iterations")}
#: the checklist of racl.evaluation.sanity_checks, in its docstring's order
SANITY_CHECKS = ("iterative_beats_single_step", "more_iterations_no_better", "larger_eps_no_better",
                 "large_eps_near_zero", "white_box_beats_noise", "white_box_beats_transfer", "gradients_nonzero",
                 "deterministic_forward", "in_eps_ball")
PASSED, FAILED = "passed", "FAILED"


def _paper_cell(v) -> str:
    """A value of the paper's file: a number (percent) with one decimal, a string as typed
    (e.g. '84.2 ± 0.3'), or 'not transcribed' for null."""
    if v is None:
        return NOT_TRANSCRIBED
    return v if isinstance(v, str) else f"{v:.1f}"


def _dataset_of(prov: dict) -> str:
    return (prov or {}).get("dataset", "").split("-")[0]


def _rank(rec: dict) -> tuple:
    return PROFILE_RANK.get((rec.get("provenance") or {}).get("profile"), 0), rec.get("n", 0)


# ---------------------------------------------------------------------- Tables 4-6
def transfer_record(tid: str) -> Optional[dict]:
    """The transfer record (``data/runs/transfer/*.json``) behind Table 4, 5 or 6 at the
    largest budget (paper > mini > smoke, then the larger n): it must be on the table's
    dataset and hold the table's attack(s); Table 4's must have ResNet-110 as a source."""
    t = paper()["tables"][tid]
    attacks = list(TRANSFER_ATTACK_OF_COLUMN.values()) if tid == "table4" else [MATRIX_ATTACK[tid]]
    cands = [r for r in json_records("transfer")
             if _dataset_of(r.get("provenance")) == t["dataset"] and all(a in r.get("matrices", {}) for a in attacks)
             and (tid != "table4" or TABLE4_SOURCE in r.get("sources", []))]
    return max(cands, key=_rank) if cands else None


def _transfer_budget(rec: dict) -> str:
    return budget(rec["provenance"]) + f" · n={rec['n']}"


def transfer_table(tid: str = "table4") -> pd.DataFrame:
    """Table 4: accuracy (%) of each target under FGSM, MIM and PGD-20 examples crafted
    white-box on ResNet-110; the paper's number beside ours, with ours' budget."""
    t = paper()["tables"][tid]
    rec = transfer_record(tid)
    rows = []
    for row in t["rows"]:
        arch = ARCH_OF_ROW.get(row, row)
        out = {"target": row}
        for col in t["columns"]:
            out[(col, "paper")] = _paper_cell(t["values"][row][col])
            m = (rec or {}).get("matrices", {}).get(TRANSFER_ATTACK_OF_COLUMN.get(col, col), {}).get(TABLE4_SOURCE, {})
            out[(col, "ours")] = pct(m[arch]) if arch in m else NOT_RUN
        out[("budget", "ours")] = _transfer_budget(rec) if rec and arch in rec.get("targets", []) else NOT_RUN
        rows.append(out)
    df = pd.DataFrame(rows).set_index("target")
    df.columns = pd.MultiIndex.from_tuples(df.columns)
    return df


def transfer_matrix_table(tid: str) -> pd.DataFrame:
    """Table 5 (PGD-10) or 6 (RFGSM): accuracy (%) of each target (column) on adversarial
    examples crafted white-box on each source (row). Each source has two rows, the paper's
    and ours, so every cell's paper value sits directly above ours; the diagonal is the
    white-box accuracy."""
    t = paper()["tables"][tid]
    rec = transfer_record(tid)
    mat = (rec or {}).get("matrices", {}).get(MATRIX_ATTACK[tid], {})
    rows = []
    for src in t["rows"]:
        s = ARCH_OF_ROW.get(src, src)
        p = {"source": src, "": "paper", **{tgt: _paper_cell(t["values"][src][tgt]) for tgt in t["columns"]}, "budget": ""}
        o = {"source": src, "": "ours"}
        for tgt in t["columns"]:
            v = mat.get(s, {}).get(ARCH_OF_ROW.get(tgt, tgt))
            o[tgt] = NOT_RUN if v is None else pct(v)
        o["budget"] = _transfer_budget(rec) if s in mat else NOT_RUN
        rows += [p, o]
    return pd.DataFrame(rows).set_index(["source", ""])


# ---------------------------------------------------------------------- Fig. 4
def fig4_records() -> dict:
    """{paper model name: evaluation record} for Fig. 4's models that have a record with
    sweeps (the largest budget per model)."""
    fig = paper()["figures"]["fig4"]
    recs = [r for r in eval_records(fig["dataset"]) if "sweeps" in r]
    out = {}
    for model in fig["models"]:
        r = best_eval(recs, ARCH_OF_ROW.get(model, model))
        if r is not None:
            out[model] = r
    return out


def fig4_table(sweep: str) -> pd.DataFrame:
    """One panel of Fig. 4 as a table: for every model a 'paper' and an 'ours' row, one
    column per ε (``fgsm_eps``, ``pgd_eps``) or per PGD iteration count (``pgd_steps``) of
    the paper's grid, accuracy in %, with ours' n and budget.

    The paper's curves, once transcribed, go into ``figures.fig4.series`` of the paper file
    as ``{model: {sweep: [accuracy in %, one per grid point]}}``."""
    if sweep not in FIG4_SWEEPS:
        raise KeyError(f"sweep must be one of {', '.join(FIG4_SWEEPS)}; got {sweep!r}")
    fig = paper()["figures"]["fig4"]
    grid = fig[FIG4_SWEEPS[sweep][2]]
    recs = fig4_records()
    rows = []
    for model in fig["models"]:
        series = fig.get("series", {}).get(model, {}).get(sweep)
        p = {"model": model, "": "paper", "n": "", "budget": ""}
        o = {"model": model, "": "ours"}
        ours = {float(d["value"]): d["acc"] for d in recs[model]["sweeps"][sweep]} if model in recs else {}
        for i, g in enumerate(grid):
            p[g] = _paper_cell(series[i] if series else None)
            v = next((a for x, a in ours.items() if abs(x - g) < 1e-9), None)
            o[g] = NOT_RUN if v is None else pct(v)
        o["n"] = recs[model]["sweeps"].get("n", NOT_RUN) if model in recs else NOT_RUN
        o["budget"] = budget(recs[model]["provenance"]) if model in recs else NOT_RUN
        rows += [p, o]
    df = pd.DataFrame(rows).set_index(["model", ""])
    return df[list(grid) + ["n", "budget"]]


def plot_sweeps(curves: dict, axes=None, title: str = "", paper_series: Optional[dict] = None):
    """Fig. 4's three panels: accuracy (%) against ε for FGSM and PGD-20 and against PGD
    iterations, one line per model. ``curves`` maps a label to a sweeps dict
    (:func:`racl.evaluation.sweeps` or an evaluation record's ``"sweeps"``);
    ``paper_series`` (the paper file's ``fig4.series``) adds the paper's curves, dashed."""
    import matplotlib.pyplot as plt

    fig4 = paper()["figures"]["fig4"]
    if axes is None:
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    else:
        fig = axes[0].figure
    for ax, (key, (name, xlabel, gridkey)) in zip(axes, FIG4_SWEEPS.items()):
        for i, (label, s) in enumerate(curves.items()):
            pts = s.get(key) or []
            ax.plot([d["value"] for d in pts], [100 * d["acc"] for d in pts], "o-", color=f"C{i % 10}", ms=4,
                    label=f"{label} (ours, n={s.get('n', '?')})")
            ser = (paper_series or {}).get(label, {}).get(key)
            if ser:
                ax.plot(fig4[gridkey], ser, "s--", color=f"C{i % 10}", ms=3, alpha=0.7, label=f"{label} (paper)")
        if key == "pgd_steps":
            ticks = sorted({d["value"] for s in curves.values() for d in s.get(key) or []}) or fig4["iterations"]
            ax.set_xscale("log")
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
            ax.minorticks_off()
        ax.set(title=name, xlabel=xlabel, ylabel="accuracy (%)")
    if curves:
        axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title, y=1.02)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------- Tables 7-8
def _summary(vals: list) -> str:
    """'84.2' for one value, 'mean ± std' (sample std, in %) for several."""
    vals = [v for v in vals if v is not None]
    if not vals:
        return NOT_RUN
    if len(vals) == 1:
        return pct(vals[0])
    m = sum(vals) / len(vals)
    sd = (sum((v - m) ** 2 for v in vals) / (len(vals) - 1)) ** 0.5
    return f"{100 * m:.1f} ± {100 * sd:.1f}"


def _pipeline_wall(rec: dict) -> str:
    """The wall times of the search and the training behind an evaluation record, where
    their run records are committed under RUNS."""
    parts = []
    run = Path(rec.get("model", {}).get("run") or "").name
    arch = rec.get("model", {}).get("arch") or ""
    if arch.endswith("genotype.json"):
        prov = _read(RUNS / "search" / Path(arch).parent.name / "provenance.json")
        if prov and prov.get("wall_time_s"):
            parts.append(f"search {prov['wall_time_s'] / 60:.1f} min")
    prov = _read(RUNS / "train" / run / "provenance.json") if run else None
    if prov and prov.get("wall_time_s"):
        parts.append(f"training {prov['wall_time_s'] / 60:.1f} min")
    return " + ".join(parts)


def _budget_of(recs: list) -> str:
    """The budget of one or several evaluation records (several: the seeds listed, the
    evaluation wall times summed), with the search and training wall times where known."""
    prov = dict(recs[0]["provenance"])
    if len(recs) > 1:
        prov["seed"] = ",".join(str(r["provenance"].get("seed", "?")) for r in recs)
        prov["wall_time_s"] = sum(r["provenance"].get("wall_time_s") or 0 for r in recs) or None
    out = "evaluation: " + budget(prov) + f" · n={recs[0]['n']}"
    pipe = [w for w in (_pipeline_wall(r) for r in recs) if w]
    if pipe:
        out += " · " + ("; ".join(pipe) if len(pipe) > 1 else pipe[0])
    return out


def _row_slug(tid: str, row: str) -> str:
    from .reproduce import _slug

    if tid == "table7":
        return "searched-racl" if row == "RACL" else "random-search"
    return f"searched-{_slug(row)}"


def ablation_records(tid: str, method: str = "pgd") -> dict:
    """{row of Table 7 or 8: [evaluation records, one per seed]} at the largest budget that
    has any record for the row. Records are found by the names that
    :func:`racl.reproduce.plan` gives the jobs: ``<profile>-<dataset>-searched-racl-pgd-s<seed>``
    (Table 7's RACL and Table 8's full RACL), ``...-random-search-pgd-s<seed>`` and
    ``...-searched-<ablation slug>-pgd-s<seed>``. In Table 8 the full RACL row keeps only
    the seeds the ablations were run at."""
    import re

    from .reproduce import DATASETS

    t = paper()["tables"][tid]
    files = {p.name: p for p in (RUNS / "eval").glob("*.json")}
    out = {}
    for row in t["rows"]:
        slug = _row_slug(tid, row)
        for profile in sorted(PROFILE_RANK, key=PROFILE_RANK.get, reverse=True):
            ds = DATASETS.get(profile, {}).get(t["dataset"])
            if ds is None:
                continue
            pat = re.compile(re.escape(f"{profile}-{ds}-{slug}-{method}-s") + r"(\d+)\.json$")
            hits = sorted((int(m.group(1)), f) for f in files if (m := pat.match(f)))
            if hits:
                recs = []
                for _, f in hits:
                    r = json.loads(files[f].read_text())
                    r["_file"] = f
                    recs.append(r)
                out[row] = recs
                break
    if tid == "table8" and "RACL" in out:
        # Table 8 compares like with like: the full RACL at the seeds of the ablations
        # (reproduce runs them at one seed), not its Table 7 average over every seed
        seeds = {r["provenance"].get("seed") for row, rs in out.items() if row != "RACL" for r in rs}
        keep = [r for r in out["RACL"] if r["provenance"].get("seed") in seeds] if seeds else out["RACL"][:1]
        out["RACL"] = keep or out["RACL"][:1]
    return out


def ablation_table(tid: str, method: str = "pgd") -> pd.DataFrame:
    """Table 7 (RACL against random search, several seeds) or Table 8 (ablations): the
    paper's number beside ours for every column (accuracy in %; over several seeds, ours is
    mean ± sample std), with the seeds and the budget of ours."""
    t = paper()["tables"][tid]
    found = ablation_records(tid, method)
    rows = []
    for row in t["rows"]:
        recs = found.get(row, [])
        out = {"model": row}
        for col in t["columns"]:
            out[(col, "paper")] = _paper_cell(t["values"][row][col])
            if not recs:
                out[(col, "ours")] = NOT_RUN
            elif col == "clean":
                out[(col, "ours")] = _summary([r["clean_acc"] for r in recs])
            else:
                key = ATTACK_OF_COLUMN.get(col, col)
                out[(col, "ours")] = _summary([r["attacks"][key]["acc"] for r in recs if key in r["attacks"]])
        out[("seeds", "ours")] = ",".join(str(r["provenance"].get("seed", "?")) for r in recs) if recs else NOT_RUN
        out[("budget", "ours")] = _budget_of(recs) if recs else NOT_RUN
        rows.append(out)
    df = pd.DataFrame(rows).set_index("model")
    df.columns = pd.MultiIndex.from_tuples(df.columns)
    return df


# ---------------------------------------------------------------------- sanity checks
def _check_cell(rec: dict, check: str) -> str:
    c = (rec.get("sanity") or {}).get(check)
    return NOT_RUN if c is None else (PASSED if c["passed"] else FAILED)


def _label(rec: dict) -> str:
    """The paper's name of a record's model; 'searched (<search run>)' for a searched
    genotype file, 'random genotype' for a genotype string (Table 7's random search)."""
    arch = (rec.get("model") or {}).get("arch", "?")
    if arch in ROW_OF_ARCH:
        return ROW_OF_ARCH[arch]
    if arch.endswith("genotype.json"):
        return f"searched ({Path(arch).parent.name})"
    return "random genotype" if arch.startswith("Genotype(") else arch


def sanity_table(records: Optional[dict] = None) -> pd.DataFrame:
    """Every evaluation record × every check of the automated checklist
    (:func:`racl.evaluation.sanity_checks`): 'passed', 'FAILED' or 'not run' (a check the
    evaluation did not run, e.g. the transfer check without a source model). ``records``
    maps a label to a record; by default every committed evaluation record, by file name.
    A failed check is shown, never dropped."""
    if records is None:
        records = {Path(r["_file"]).stem: r for r in eval_records()}
    rows = []
    for name, rec in records.items():
        row = {"record": name, "model": _label(rec) if rec.get("model") else name}
        row.update({c: _check_cell(rec, c) for c in SANITY_CHECKS})
        extra = sorted(set(rec.get("sanity") or {}) - set(SANITY_CHECKS))
        row.update({c: _check_cell(rec, c) for c in extra})
        row["all passed"] = NOT_RUN if "sanity" not in rec else ("yes" if rec.get("sanity_passed") else "NO")
        row["budget"] = budget(rec.get("provenance")) + f" · n={rec.get('n', '?')}" if rec.get("provenance") else "live (this chapter)"
        rows.append(row)
    if not rows:
        rows.append({"record": "(no evaluation record yet)", "model": NOT_RUN, **{c: NOT_RUN for c in SANITY_CHECKS},
                     "all passed": NOT_RUN, "budget": NOT_RUN})
    return pd.DataFrame(rows).set_index("record")


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, list) and v and isinstance(v[0], dict) and "value" in v[0]:
        return ", ".join(f"{d['value']:g}→{100 * d['acc']:.0f}%" for d in v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)


def sanity_details(rec: dict) -> pd.DataFrame:
    """One record's checks with the evidence each one looked at (accuracies as fractions,
    sweeps as value→accuracy)."""
    rows = [{"check": name, "result": PASSED if c["passed"] else FAILED,
             "evidence": "; ".join(f"{k}={_fmt(v)}" for k, v in c.items() if k != "passed")}
            for name, c in (rec.get("sanity") or {}).items()]
    return pd.DataFrame(rows, columns=["check", "result", "evidence"]).set_index("check")


def ablation_configs(profiles=("mini", "paper")) -> pd.DataFrame:
    """What each of Table 8's runs changes: the search fields that the ablations touch, as
    the search of each ``profile`` would run them (the profile's defaults plus the
    ablation's overrides, :data:`racl.reproduce.ABLATIONS`)."""
    from .reproduce import ABLATIONS, ablation_config

    fields = ("grad_norm_weight", "sample", "eta", "rho")
    rows = []
    for label, over in ABLATIONS.items():
        row = {("", "overrides"): ", ".join(f"{k}={v}" for k, v in over.items()) or "(none: the profile's defaults)"}
        for profile in profiles:
            cfg = ablation_config(profile, over)
            for f in fields:
                row[(profile, f)] = getattr(cfg, f)
        rows.append(pd.Series(row, name=label))
    df = pd.DataFrame(rows)
    df.columns = pd.MultiIndex.from_tuples(df.columns)
    return df


# ---------------------------------------------------------------------- speed (benchmarks/bench.py)
def bench_records() -> list[dict]:
    """The committed benchmark results, newest first."""
    return sorted(json_records("bench"), key=lambda r: (r.get("datetime") or r.get("date", ""), r["_file"]), reverse=True)


def bench_label(rec: dict) -> str:
    code = rec.get("code", {}) or {}
    commit = (code.get("git_commit") or "?")[:7]
    return f"{hardware_label(rec.get('device', {}))} · torch {rec.get('torch', '?')} · {rec.get('date', '?')} · {commit}"


def bench_table(rec: dict) -> pd.DataFrame:
    """Seconds per measured piece for each variant of one benchmark run, and each variant's
    speed-up over the baseline of the same run (baseline time / variant time)."""
    res = rec["results"]
    variants = list(dict.fromkeys(k.split("/", 1)[1] for k in res))
    rows = []
    for part in dict.fromkeys(k.split("/", 1)[0] for k in res):
        base = res.get(f"{part}/baseline", {})
        for key, val in base.items():
            if not (isinstance(val, (int, float)) and key.endswith("_s") and not key.endswith("per_s")):
                continue
            row = {"part": part, "measure": key[:-2], "baseline (s)": f"{val:.4g}"}
            for v in variants:
                if v == "baseline":
                    continue
                other = res.get(f"{part}/{v}", {}).get(key)
                row[f"{v} speed-up"] = f"×{val / other:.2f}" if other else "—"
            rows.append(row)
    return pd.DataFrame(rows).set_index(["part", "measure"])


def bench_summary(rec: dict) -> pd.DataFrame:
    """The headline figures of one benchmark run, per variant: the projected search time
    of the benchmarked profile, RACL's architecture step over PC-DARTS', the Lipschitz
    share, and adversarial-training throughput."""
    res = rec["results"]
    rows = {}
    for key, r in res.items():
        part, v = key.split("/", 1)
        row = rows.setdefault(v, {})
        if part == "search":
            cfg = r.get("config", {})
            row[f"search ({cfg.get('profile', '?')} profile) estimate (h)"] = f"{r['search_estimate_h']:.3g}"
            row["RACL arch step / PC-DARTS arch step"] = f"{r['racl_over_pcdarts']:.2f}"
            row["Lipschitz share of the RACL step"] = f"{100 * r['lipschitz_share_of_racl_step']:.0f}%"
        elif part == "train":
            for k, val in r.items():
                if k.endswith("_images_per_s"):
                    row[f"adv. training {k[:-len('_images_per_s')]} (images/s)"] = f"{val:.3g}"
                if k == "racl_100_epochs_estimate_h":
                    row["100 epochs of the cell network, estimate (h)"] = f"{val:.3g}"
    return pd.DataFrame(rows).T.rename_axis("variant")
