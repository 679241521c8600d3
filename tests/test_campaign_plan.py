"""Issue 13: the campaign of Tables 4, 7 and 8 and Fig. 5. The plan holds exactly the paper's
experiments (Table 8's six settings, Table 7's seeds and larger evaluation, Table 4's
ResNet-110 source, Fig. 5's searches); the random search chooses its cell by the documented
criterion, from records only; the reporting computes mean ± standard error and whether
RACL's advantage exceeds the combined standard error; Fig. 5's pattern analysis counts what
Sec. 4.5 claims. Nothing here trains: records are written by hand into temporary folders."""

import json
import math
import re
from pathlib import Path

import pytest

from racl import cli, report
from racl.genotypes import GENOTYPES, Genotype, load_genotype
from racl.plan import KINDS, TARGETS, in_order, job_config, plan, transfer_name
from racl.profiles import (ABLATIONS, RANDOM_SEARCH, STABILITY_EVAL, TABLE8_ROWS, ablation_config, get_eval_profile,
                           get_profile, slug)
from racl.random_search import random_genotype, screen_score, select, select_run

MINI_ARCHS = ["RACL", "DARTS_V2", "PC_DARTS"]


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


# ---------------------------------------------------------------------- Table 8's plan
def test_table8_rows_are_the_papers_six_settings():
    rows = report.paper()["tables"]["table8"]["blocks"][0]["rows"]
    assert list(TABLE8_ROWS) == rows and len(rows) == 6
    assert set(TABLE8_ROWS.values()) - {"random search"} == set(ABLATIONS)  # no ablation beyond the paper's
    settings = report.paper()["tables"]["table8"]["blocks"][0]["settings"]
    for row, label in TABLE8_ROWS.items():
        if label == "random search":
            assert settings[row]["search"] == "random"
            continue
        cfg = ablation_config("paper", ABLATIONS[label])
        s = settings[row]
        assert (cfg.grad_norm_weight > 0) == (s["gradient_norm"] is not False), row
        assert cfg.sample == (s["confidence_learning"] is not False), row
        # eta and rho as printed where the row prints them, the paper's defaults (0.9, 1e-3) elsewhere
        assert cfg.eta == pytest.approx(s["eta"] if s["eta"] is not None else 0.9), row
        assert cfg.rho == pytest.approx(s["rho"] if s["rho"] is not None else 1e-3), row


def test_table8_retrains_and_evaluates_the_committed_reruns_of_its_searches(tmp_path):
    """A finished rerun of a planned Table 8 search (``<search>-<tag>`` holding genotype.json)
    is retrained from its own cell and evaluated, as ``<run>-<tag>``, needing nothing (it is
    not planned, only committed); an unfinished rerun, an ill-formed tag and a rerun of a
    search Table 8 does not plan add nothing."""
    from racl.plan import search_reruns

    search = tmp_path / "search"
    for name in ("mini-cifar10-mini-racl-eta0.7-s0-epyc2", "mini-cifar10-mini-racl-s0-xeon1.v2"):
        (search / name).mkdir(parents=True)
        (search / name / "genotype.json").write_text("{}")
    (search / "mini-cifar10-mini-racl-w-o-confidence-learning-s0-epyc2").mkdir()  # unfinished: no genotype
    for name in ("mini-cifar10-mini-racl-eta0.7-s0-EPYC", "mini-cifar10-mini-racl-eta0.7-s1-epyc2"):
        (search / name).mkdir()
        (search / name / "genotype.json").write_text("{}")
    assert search_reruns(tmp_path, "mini-cifar10-mini-racl-eta0.7-s0") == [
        ("epyc2", search / "mini-cifar10-mini-racl-eta0.7-s0-epyc2" / "genotype.json")]
    assert search_reruns(tmp_path, "mini-cifar10-mini-racl-s0") == [("xeon1.v2", search / "mini-cifar10-mini-racl-s0-xeon1.v2" / "genotype.json")]
    jobs = {j.key: j for j in plan("mini", ["table8"], MINI_ARCHS, None, "mart", tmp_path)}
    extra = sorted(k for k in jobs if k.endswith(("-epyc2", "-xeon1.v2", "-EPYC")))
    assert extra == ["eval/mini-cifar10-mini-searched-racl-eta0.7-mart-s0-epyc2", "eval/mini-cifar10-mini-searched-racl-mart-s0-xeon1.v2",
                     "train/mini-cifar10-mini-searched-racl-eta0.7-mart-s0-epyc2", "train/mini-cifar10-mini-searched-racl-mart-s0-xeon1.v2"]
    tr = jobs["train/mini-cifar10-mini-searched-racl-eta0.7-mart-s0-epyc2"]
    assert tr.needs == () and tr.spec["arch"] == str(search / "mini-cifar10-mini-racl-eta0.7-s0-epyc2" / "genotype.json")
    assert tr.spec["seed"] == 0 and tr.spec["method"] == "mart"
    assert jobs["eval/mini-cifar10-mini-searched-racl-eta0.7-mart-s0-epyc2"].needs == (tr.key,)
    # Fig. 5 plans the searches alone: a rerun of its search is not retrained
    assert not any(j.name.endswith("xeon1.v2") for j in plan("mini", ["fig5"], MINI_ARCHS, None, "mart", tmp_path))


def test_fig5_retrain_retrains_each_search_as_table8s_full_racl_row(tmp_path):
    """fig5-retrain: each of Fig. 5's searches (seeds 0, 1, 2 by default) retrained and
    evaluated under the very names of Table 8's full RACL row at that seed, so that seed 0
    is one job shared with Table 8 and the records of seeds 1 and 2 are that row's other
    searches; each retraining needs its own search and trains its genotype."""
    jobs = {j.key: j for j in plan("mini", ["fig5-retrain"], MINI_ARCHS, None, "mart", tmp_path)}
    assert sorted(jobs) == sorted([f"search/mini-cifar10-mini-racl-s{s}" for s in (0, 1, 2)]
                                  + [f"{k}/mini-cifar10-mini-searched-racl-mart-s{s}" for s in (0, 1, 2) for k in ("train", "eval")])
    for s in (0, 1, 2):
        tr = jobs[f"train/mini-cifar10-mini-searched-racl-mart-s{s}"]
        assert tr.needs == (f"search/mini-cifar10-mini-racl-s{s}",) and tr.spec["seed"] == s
        assert tr.spec["arch"] == str(tmp_path / "search" / f"mini-cifar10-mini-racl-s{s}" / "genotype.json")
        assert jobs[f"eval/mini-cifar10-mini-searched-racl-mart-s{s}"].spec.get("overrides") is None  # Table 8's evaluation
    both = {j.key: j for j in plan("mini", ["table8", "fig5-retrain"], MINI_ARCHS, None, "mart", tmp_path)}
    t8 = {j.key: j for j in plan("mini", ["table8"], MINI_ARCHS, None, "mart", tmp_path)}
    shared = "train/mini-cifar10-mini-searched-racl-mart-s0"
    assert both[shared].spec == t8[shared].spec == jobs[shared].spec
    assert len(both) == len(t8) + 6  # seeds 1 and 2: a search, a retraining and an evaluation each
    assert plan("mini", ["fig5-retrain"], MINI_ARCHS, [1], "mart", tmp_path)[-1].name == "mini-cifar10-mini-searched-racl-mart-s1"


def test_table8_plan_has_six_rows_with_the_right_overrides(tmp_path):
    jobs = plan("mini", ["table8"], MINI_ARCHS, None, "pgd", tmp_path)
    by_key = {j.key: j for j in jobs}
    searches = {j.spec.get("label", "RACL"): j for j in jobs if j.kind == "search"}
    assert set(searches) == set(ABLATIONS)
    mini_rho = get_profile("mini").rho
    want = {"RACL w/o gradient norm": dict(grad_norm_weight=0.0, sample=True, eta=0.9, rho=mini_rho),
            "RACL w/o confidence learning": dict(grad_norm_weight=0.1, sample=False, eta=0.9, rho=mini_rho),
            "RACL eta=0.9 rho x10": dict(grad_norm_weight=0.1, sample=True, eta=0.9, rho=10 * mini_rho),
            "RACL eta=0.7": dict(grad_norm_weight=0.1, sample=True, eta=0.7, rho=mini_rho),
            "RACL": dict(grad_norm_weight=0.1, sample=True, eta=0.9, rho=mini_rho)}
    for label, job in searches.items():
        cfg = job_config(job, "mini")
        got = dict(grad_norm_weight=cfg.grad_norm_weight, sample=cfg.sample, eta=cfg.eta, rho=cfg.rho)
        assert got == pytest.approx(want[label]), label
        assert job.spec["seed"] == 0 and job.spec["dataset"] == "cifar10-mini"
    # each searched cell retrained after its search, and evaluated
    evals = [j for j in jobs if j.kind == "eval"]
    assert len(evals) == 6  # one per row
    for s in searches.values():
        tr = [j for j in jobs if j.kind == "train" and j.needs == (s.key,)]
        assert len(tr) == 1 and tr[0].spec["arch"] == str(tmp_path / "search" / s.name / "genotype.json")
        assert any(e.needs == (tr[0].key,) for e in evals)
    # the random search: 10 distinct random cells screened, one selection needing all of them,
    # the chosen cell retrained after the selection and evaluated
    (sel,) = [j for j in jobs if j.kind == "select"]
    screens = [by_key[k] for k in sel.needs]
    assert len(screens) == RANDOM_SEARCH["models"] == 10 and all(j.kind == "train" for j in screens)
    assert len({j.spec["arch"] for j in screens}) == 10
    assert {j.spec["arch"] for j in screens} == {str(random_genotype(g)) for g in range(10)}
    for j in screens:
        cfg = job_config(j, "mini")
        assert cfg.epochs == 2 and cfg.val_images == 512 and cfg.seed == 0  # a third of mini's 6 epochs
    (final,) = [j for j in jobs if j.kind == "train" and j.needs == (sel.key,)]
    assert final.spec["arch"] == str(sel.path) and final.name == "mini-cifar10-mini-random-search-pgd-s0"
    assert job_config(final, "mini").epochs == 6  # the full recipe
    assert any(e.needs == (final.key,) for e in evals)
    assert not any(e.needs == (s.key,) for e in evals for s in screens)  # no test image sees a screening run


# ---------------------------------------------------------------------- Table 7's plan
def test_table7_plans_three_seeds_and_the_larger_evaluation(tmp_path):
    jobs = plan("mini", ["table7"], MINI_ARCHS, None, "pgd", tmp_path)
    trains = [j for j in jobs if j.kind == "train"]
    assert {(j.spec["arch"], j.spec["seed"]) for j in trains} == {(a, s) for a in MINI_ARCHS for s in (0, 1, 2)}
    evals = [j for j in jobs if j.kind == "eval"]
    assert len(evals) == 9 and not [j for j in jobs if j.kind in ("search", "select", "transfer")]
    for e in evals:
        cfg = job_config(e, "mini")
        assert (cfg.n, cfg.n_slow) == (STABILITY_EVAL["n"], STABILITY_EVAL["n_slow"]) == (512, 128)
        assert e.name.endswith("-stability") and e.needs == (f"train/{e.spec['run']}",)
    # Table 1's evaluation of the same retraining keeps the profile's size and its own name
    both = plan("mini", ["table1", "table7"], ["RACL"], (0,), "pgd", tmp_path)
    names = {j.name: job_config(j, "mini").n for j in both if j.kind == "eval" and "cifar10-mini" in j.name}
    assert names == {"mini-cifar10-mini-racl-pgd-s0": get_eval_profile("mini").n, "mini-cifar10-mini-racl-pgd-s0-stability": 512}
    # a profile that already evaluates more keeps its own evaluation (shared with Table 1)
    paper = [j for j in plan("paper", ["table7"], ["RACL"], None, "mart", tmp_path) if j.kind == "eval"]
    assert [j.name for j in paper] == [f"paper-cifar10-racl-mart-s{s}" for s in (0, 1, 2)]
    assert job_config(paper[0], "paper").n == 10000
    # given seeds apply to every target
    assert {j.spec["seed"] for j in plan("mini", ["table7"], ["RACL"], (3, 4, 5, 6), "pgd", tmp_path) if j.kind == "train"} == {3, 4, 5, 6}


def test_table4_and_fig5_plans(tmp_path):
    jobs = plan("mini", ["table4", "fig5"], MINI_ARCHS, None, "pgd", tmp_path)
    # one transfer record per retraining seed of the targets (0, 1, 2 by default), all from
    # the one ResNet-110 source of seed 0, so that every seed's targets see the same examples
    trs = {j.name: j for j in jobs if j.kind == "transfer"}
    assert list(trs) == ["mini-cifar10-mini-table4", "mini-cifar10-mini-table4-s1", "mini-cifar10-mini-table4-s2"]
    for seed, tr in zip((0, 1, 2), trs.values()):
        assert tr.spec["sources"] == {"resnet110": "mini-cifar10-mini-resnet110-pgd-s0"}
        assert tr.spec["targets"] == {**{a: f"mini-cifar10-mini-{slug(a)}-pgd-s{seed}" for a in MINI_ARCHS},
                                      "resnet110": "mini-cifar10-mini-resnet110-pgd-s0"}  # the source too: its white-box
        assert tr.spec["attacks"] == ["fgsm", "mim20", "pgd20"]
        assert set(tr.needs) == {f"train/{n}" for n in tr.spec["targets"].values()}
    assert not any(j.kind == "eval" and "resnet110" in j.name for j in jobs)  # the source is only attacked from
    # the first seed's targets are evaluated white-box too (Table 1's evaluation); the
    # others are retrained only (Table 7 evaluates them with its larger evaluation)
    assert sorted(j.name for j in jobs if j.kind == "eval") == sorted(f"mini-cifar10-mini-{slug(a)}-pgd-s0" for a in MINI_ARCHS)
    assert [j.name for j in jobs if j.kind == "train" and "resnet110" in j.name] == ["mini-cifar10-mini-resnet110-pgd-s0"]
    # given seeds: a record per seed, named by it, still from the seed-0 source
    (one,) = [j for j in plan("mini", ["table4"], MINI_ARCHS, (2,), "pgd", tmp_path) if j.kind == "transfer"]
    assert one.name == "mini-cifar10-mini-table4-s2" and one.spec["sources"] == {"resnet110": "mini-cifar10-mini-resnet110-pgd-s0"}
    assert transfer_name("mini", "cifar10-mini", "table5", 0) == "mini-cifar10-mini-table5"
    assert transfer_name("mini", "cifar10-mini", "table5", 1) == "mini-cifar10-mini-table5-s1"
    searches = [j for j in jobs if j.kind == "search"]
    assert [(j.name, j.spec["overrides"]) for j in searches] == [(f"mini-cifar10-mini-racl-s{s}", {}) for s in (0, 1, 2)]
    assert "fig5" in TARGETS


def test_a_transfer_matrix_of_other_networks_is_run_again(tmp_path):
    """A transfer record names the training runs it crafted on and attacked ("runs"); one
    written before records named them stands for the PGD-AT runs of its profile. Where the
    plan's networks are others (MART's), the record is outdated, and the tables do not show
    it as the profile's. So is one of the right networks without per-example results
    ("correct"), which the paired comparisons of two targets need."""
    (job,) = [j for j in plan("mini", ["table5"], MINI_ARCHS, (0,), None, tmp_path) if j.kind == "transfer"]
    assert set(job.spec["sources"].values()) == {f"mini-cifar10-mini-{a}-mart-s0" for a in ("racl", "darts-v2", "pc-darts")}
    legacy = {"sources": list(job.spec["sources"]), "targets": list(job.spec["targets"]), "n": 8,
              "matrices": {"pgd10": {}}, "provenance": {"profile": "mini", "dataset": "cifar10-mini", "seed": 0}}
    job.path.parent.mkdir(parents=True)
    job.path.write_text(json.dumps(legacy))
    why = job.outdated()
    assert not job.done() and why.startswith("its examples were crafted on or classified by other networks")
    assert "RACL: mini-cifar10-mini-racl-pgd-s0" in why
    assert report.transfer_method(legacy) == "pgd"
    runs = {**job.spec["targets"], **job.spec["sources"]}
    job.path.write_text(json.dumps({**legacy, "runs": runs}))
    assert not job.done() and job.outdated() == "recorded before per-example results (no correct)"
    assert report.transfer_method(json.loads(job.path.read_text())) == "mart"
    job.path.write_text(json.dumps({**legacy, "runs": runs, "correct": {"pgd10": {}}}))
    assert job.outdated() is None and job.done()


def test_datasets_restrict_the_plan(tmp_path, capsys):
    """--datasets keeps the jobs of the datasets named (Tables 1-3 run per dataset; every
    other target on CIFAR-10 alone) and refuses a name the profile does not know."""
    both = plan("mini", ["table1", "table7"], MINI_ARCHS, None, "pgd", tmp_path)
    assert {j.spec["dataset"] for j in both if j.kind == "train"} == {"cifar10-mini", "cifar100-mini"}
    ten = plan("mini", ["table1", "table7"], MINI_ARCHS, None, "pgd", tmp_path, datasets=["cifar10"])
    assert [j.key for j in ten] == [j.key for j in both if j.spec.get("dataset") == "cifar10-mini"]
    hundred = plan("mini", ["table1", "table7", "table8", "fig5"], MINI_ARCHS, None, "pgd", tmp_path, datasets=["cifar100"])
    assert hundred and {j.spec["dataset"] for j in hundred} == {"cifar100-mini"}
    assert not any(j.kind in ("search", "select") or "stability" in j.name for j in hundred)
    for bad in (["cifar1"], []):
        with pytest.raises(KeyError, match="choose from cifar10, cifar100, tinyimagenet"):
            plan("mini", ["table1"], MINI_ARCHS, None, "pgd", tmp_path, datasets=bad)
    rc = cli.main(["reproduce", "--profile", "mini", "--targets", "table1", "--method", "pgd", "--datasets", "cifar10",
                   "--runs", str(tmp_path), "--dry-run", "--cost-device", "Test CPU (1 threads)"])
    out = capsys.readouterr().out
    assert rc == 0 and "mini-cifar10-mini-racl-pgd-s0" in out and "cifar100" not in out


def test_the_whole_plan_runs_each_job_after_its_needs(tmp_path):
    jobs = plan("mini", ["table4", "table7", "table8", "fig5"], MINI_ARCHS, None, "pgd", tmp_path)
    assert len({j.key for j in jobs}) == len(jobs)
    seen = set()
    for j in jobs:
        assert set(j.needs) <= seen, j.key
        seen.add(j.key)
    kinds = [j.kind for j in jobs]
    assert kinds.index("select") > max(i for i, k in enumerate(kinds) if k == "train" and "screen" in jobs[i].name)
    with pytest.raises(ValueError, match="cycle"):
        from racl.plan import Job

        in_order([Job("train", "a", {}, ("train/b",)), Job("train", "b", {}, ("train/a",))])
    with pytest.raises(KeyError, match="unknown target"):
        plan("mini", ["table9"])
    assert KINDS.index("select") < KINDS.index("eval")


# ---------------------------------------------------------------------- random search's choice
def _screen(runs: Path, name: str, arch: str, rows: list, finished: bool = True) -> Path:
    run = runs / "train" / name
    _write(run / "config.json", {"arch": arch})
    run.joinpath("metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    _write(run / "provenance.json", {"profile": "mini", **({"finished": "2026-01-01T00:00:00+00:00"} if finished else {})})
    return run


def _epochs(pgd_last, clean_last, pgd_first=0.9):
    """Two epochs of metrics; the first epoch's PGD accuracy is a decoy (the rule reads the last)."""
    return [{"epoch": 0, "val_clean_acc": 0.1, "val_pgd10_acc": pgd_first, "val_n": 512},
            {"epoch": 1, "val_clean_acc": clean_last, "val_pgd10_acc": pgd_last, "val_n": 512}]


def test_random_search_keeps_the_best_held_out_pgd_accuracy(tmp_path):
    # held-out PGD accuracy at the last epoch: cell 3 is best (0.31); cell 0 has the best
    # clean accuracy and the best first epoch, cell 1 the worst PGD: an inverted or wrong
    # rule picks another cell
    pgd = [0.20, 0.12, 0.25, 0.31, 0.30]
    clean = [0.60, 0.40, 0.45, 0.41, 0.50]
    runs = [_screen(tmp_path, f"cell{k}", str(random_genotype(k)), _epochs(p, c, 0.9 if k == 0 else 0.2))
            for k, (p, c) in enumerate(zip(pgd, clean))]
    rec = select_run(runs, tmp_path / "select" / "rs.json", "mini", "cifar10-mini", 0)
    assert rec["chosen"] == "cell3" and rec["chosen_index"] == 3
    assert [c["val_pgd_acc"] for c in rec["candidates"]] == pgd
    assert load_genotype(str(tmp_path / "select" / "rs.json")) == random_genotype(3)  # what the retraining reads
    assert "held-out PGD" in rec["rule"]
    # ties on PGD accuracy go to the higher held-out clean accuracy, then to the lower index
    assert select([{"val_pgd_acc": 0.3, "val_clean_acc": 0.4}, {"val_pgd_acc": 0.3, "val_clean_acc": 0.5}]) == 1
    assert select([{"val_pgd_acc": 0.3, "val_clean_acc": 0.5}, {"val_pgd_acc": 0.3, "val_clean_acc": 0.5}]) == 0


def test_random_search_refuses_what_it_cannot_judge(tmp_path):
    ok = _screen(tmp_path, "ok", str(random_genotype(0)), _epochs(0.3, 0.5))
    unfinished = _screen(tmp_path, "running", str(random_genotype(1)), _epochs(0.9, 0.9), finished=False)
    with pytest.raises(ValueError, match="has not finished"):
        select_run([ok, unfinished])
    with pytest.raises(ValueError, match="no held-out PGD accuracy"):
        screen_score([{"epoch": 0, "train_loss": 1.0}])
    with pytest.raises(ValueError, match="no candidates"):
        select([])


def test_reproduce_skips_what_is_recorded_and_runs_the_selection(tmp_path, monkeypatch):
    """The sequential runner skips every job whose record is written, runs the selection from
    the screening runs' records, and a second pass finds it done."""
    from racl import reproduce

    jobs = plan("smoke", ["table8"], ["RACL"], (0,), "pgd", tmp_path)
    (sel,) = [j for j in jobs if j.kind == "select"]
    for k, name in enumerate(sel.spec["candidates"]):
        arch = next(j for j in jobs if j.name == name and j.kind == "train").spec["arch"]
        _screen(tmp_path, name, arch, _epochs(0.1 + 0.01 * ((7 * k) % 10), 0.5))
    ran = []
    real = reproduce.run_job

    def fake(job, profile, *a, **kw):
        ran.append(job.key)
        if job.kind == "select":
            return real(job, profile, *a, **kw)
        raise RuntimeError("stop")  # the first job after the selection: nothing else is run here

    monkeypatch.setattr(reproduce, "run_job", fake)
    todo = [j for j in jobs if j.kind in ("train", "select") and (j.key in sel.needs or j.key == sel.key)]
    reproduce.run_sequential(todo, "smoke", log=lambda *a: None)
    assert ran == [sel.key] and sel.done()
    rec = json.loads(sel.path.read_text())
    best = max(range(10), key=lambda k: (0.1 + 0.01 * ((7 * k) % 10), -k))
    assert rec["chosen"] == sel.spec["candidates"][best]
    ran.clear()
    reproduce.run_sequential(todo, "smoke", log=lambda *a: None)
    assert ran == []  # everything recorded: nothing runs again
    with pytest.raises(RuntimeError, match="stop"):
        reproduce.run_sequential(jobs, "smoke", log=lambda *a: None)
    assert ran[0] != sel.key and sel.key not in ran  # the first job not done; the selection is skipped


def test_dry_run_lists_the_campaign(tmp_path, capsys):
    rc = cli.main(["reproduce", "--profile", "mini", "--targets", "table4,table7,table8,fig5", "--runs", str(tmp_path),
                   "--dry-run", "--cost-device", "Test GPU"])
    out = capsys.readouterr().out
    assert rc == 0
    jobs = plan("mini", ["table4", "table7", "table8", "fig5"], MINI_ARCHS, None, None, tmp_path)
    assert {j.spec["method"] for j in jobs if j.kind == "train"} == {"mart"}  # mini's objective: the paper's MART
    for j in jobs:
        assert f"todo  {j.kind:8s} {j.name}" in out
    assert "select   mini-cifar10-mini-random-search-mart-s0" in out and "8 attacks on 512 examples (cw, autoattack on 128)" in out
    for t in ("table4", "table7", "table8", "fig5"):
        assert f"  {t} " in out


# ---------------------------------------------------------------------- Table 7's error bars
def _rec(arch, seed, accs, n=512, n_slow=128):
    """An evaluation record whose clean accuracy and every attack's are ``accs[col]``."""
    return {"n": n, "clean_acc": accs["clean"], "eval_config": {"profile": "mini", "n": n, "n_slow": n_slow},
            "attacks": {report.ATTACK_OF_COLUMN[c]: {"acc": v, "n": n_slow if c in ("cw", "autoattack") else n}
                        for c, v in accs.items() if c != "clean"},
            "model": {"arch": arch, "train_profile": "mini", "dataset": "cifar10-mini", "method": "mart", "run": ""},
            "provenance": {"profile": "mini", "dataset": "cifar10-mini", "seed": seed, "wall_time_s": 60.0,
                           "hardware": {"cpu": "Test CPU", "cpu_threads": 1}, "code": {"git_commit": "0" * 40}}}


@pytest.fixture
def table7_runs(tmp_path, monkeypatch):
    """RACL and PC-DARTS at seeds 0-2 on 512 test images; DARTS at seed 0 only; a smaller
    (Table 1) evaluation of PC-DARTS that Table 7 must leave out."""
    cols = report.paper()["tables"]["table7"]["columns"]
    racl = {0: 0.50, 1: 0.52, 2: 0.54}  # mean 0.52, sample sd 0.02, se 0.02 / sqrt(3)
    pc = {0: 0.47, 1: 0.51, 2: 0.49}  # mean 0.49, sample sd 0.02, se 0.02 / sqrt(3)
    ev = tmp_path / "eval"
    for s in range(3):
        _write(ev / f"racl-s{s}.json", _rec("RACL", s, {c: racl[s] for c in cols}))
        _write(ev / f"pc-s{s}.json", _rec("PC_DARTS", s, {c: pc[s] for c in cols}))
    _write(ev / "pc-small.json", _rec("PC_DARTS", 0, {c: 0.99 for c in cols}, n=256, n_slow=64))
    _write(ev / "darts-s0.json", _rec("DARTS_V2", 0, {c: 0.40 for c in cols}))
    monkeypatch.setattr(report, "RUNS", tmp_path)
    return tmp_path


def test_mean_and_standard_error_over_seeds(table7_runs):
    m, se, k = report.mean_se([0.50, 0.52, 0.54])
    assert k == 3 and m == pytest.approx(0.52) and se == pytest.approx(0.02 / math.sqrt(3))
    assert report.mean_se([0.3]) == (0.3, None, 1) and report.mean_se([None]) == (None, None, 0)
    df = report.ablation_table("table7").frame
    racl = [k for k in df.loc["RACL"].index if k.startswith("ours (")][0]
    assert df.loc[("RACL", racl), "PGD-20"] == "52.0 ± 1.2"  # 2 / sqrt(3) = 1.15
    pc = [k for k in df.loc["PC-DARTS"].index if k.startswith("ours (")][0]
    assert df.loc[("PC-DARTS", pc), "AA"] == "49.0 ± 1.2"  # the 256-image record (99%) is left out
    darts = [k for k in df.loc["DARTS"].index if k.startswith("ours (")][0]
    assert df.loc[("DARTS", darts), "Clean"] == "40.0 (±2.2)"  # one seed: sqrt(.4 * .6 / 512) = 0.0217


def test_advantage_over_the_combined_standard_error(table7_runs):
    # RACL − PC-DARTS = 3 points; combined se = sqrt(2) * 2 / sqrt(3) = 1.63 points: exceeds
    adv = report._advantage([0.50, 0.52, 0.54], [0.47, 0.51, 0.49])
    assert adv["diff"] == pytest.approx(0.03) and adv["se"] == pytest.approx(math.sqrt(2) * 0.02 / math.sqrt(3))
    assert adv["exceeds"] is True
    # a gap no larger than the combined se, either way: within; a baseline ahead by more: behind
    assert report._advantage([0.50, 0.52, 0.54], [0.50, 0.51, 0.52])["exceeds"] is False
    assert report._advantage([0.50, 0.52], [0.6])["exceeds"] is None  # one run on a side: no standard error
    assert report.advantage_verdict(0.03, 0.0163, 100) == "+3.0 > 1.6: exceeds"
    assert report.advantage_verdict(0.01, 0.0163, 100) == "+1.0 ≤ 1.6: within"
    assert report.advantage_verdict(-0.01, 0.0163, 100) == "−1.0 ≥ −1.6: within"
    assert report.advantage_verdict(-0.02, 0.0163, 100) == "−2.0 < −1.6: behind"
    assert report.advantage_verdict(0.0, 0.0163, 100) == "+0.0 ≤ 1.6: within"
    df = report.table7_advantage()
    assert df.loc[("RACL − PC-DARTS", "ours (3 vs 3 seeds)"), "PGD-20"] == "+3.0 > 1.6: exceeds"
    assert df.loc[("RACL − DARTS", "ours (3 vs 1 seeds)"), "PGD-20"] == "+12.0: no SE (one run)"
    assert df.loc[("RACL − NasNet", "ours (3 vs 0 seeds)"), "Clean"] == report.NOT_RUN
    # the paper's own: RACL − PC-DARTS under FGSM, 62.48 ± 0.10 against 60.85 ± 0.26
    assert df.loc[("RACL − PC-DARTS", "paper"), "FGSM"] == f"+1.63 > {math.hypot(0.10, 0.26):.2f}: exceeds"
    assert df.loc[("RACL − PC-DARTS", "paper"), "Clean"] == f"−0.03 ≥ −{math.hypot(0.22, 0.68):.2f}: within"
    assert df.loc[("RACL − AmoebaNet", "paper"), "Clean"] == report.NOT_LEGIBLE


# ---------------------------------------------------------------------- Fig. 5
def _g(normal, reduce):
    return Genotype(tuple(normal), (2, 3, 4, 5), tuple(reduce), (2, 3, 4, 5))


def test_fig5_patterns_on_fixed_cells():
    p = report.cell_patterns(GENOTYPES["RACL"])  # Fig. 3: nodes 1-3 pair a skip with a convolution
    assert p["normal skip + parametric nodes"] == 3 and p["normal resnet-like nodes"] == [1, 2, 3]
    assert p["reduction pooling chosen"] and p["reduction pooling edges"] == 1 and p["reduction max-pool edges"] == 0
    a = _g([("skip_connect", 0), ("sep_conv_3x3", 1), ("skip_connect", 0), ("max_pool_3x3", 1),
            ("dil_conv_5x5", 2), ("skip_connect", 3), ("sep_conv_5x5", 0), ("sep_conv_3x3", 4)],
           [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("avg_pool_3x3", 0),
            ("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1)])
    b = _g([("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1)],
           [("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1)])
    pa, pb = report.cell_patterns(a), report.cell_patterns(b)
    assert pa["normal resnet-like nodes"] == [0, 2]  # node 1: skip + max pooling is not the pattern
    assert pa["normal skip edges"] == 3 and pa["reduction pooling edges"] == 3 and pa["reduction max-pool edges"] == 2
    assert pa["reduction skip edges"] == 1
    assert pb["normal resnet-like nodes"] == [0] and not pb["reduction pooling chosen"]
    common = report.common_edges({"a": a, "b": b})
    assert common["normal"] == [(0, 0, "skip_connect"), (0, 1, "sep_conv_3x3")]  # node 3's first input differs in op
    assert common["reduce"] == [(2, 0, "sep_conv_3x3"), (2, 1, "sep_conv_3x3"), (3, 0, "sep_conv_3x3"), (3, 1, "sep_conv_3x3")]
    df = report.fig5_table({"a": a, "b": b})
    assert df.loc["a", "normal: skip + parametric nodes"] == "2 of 4" and df.loc["b", "reduction: pooling chosen"] == "no"
    assert df.loc["all 2", "normal: skip + parametric nodes"] == "2 of 2 have one"
    assert df.loc["all 2", "reduction: pooling chosen"] == "1 of 2"
    ref = report.fig5_table({"a": a}, reference={"published": b})  # a reference cell is shown, not counted
    assert list(ref.index) == ["a", "all 1", "published"] and ref.loc["all 1", "reduction: pooling chosen"] == "1 of 1"


def test_fig5_draws_the_committed_searches():
    """The committed mini searches (the profile's own settings, seed 0 first) and the smoke
    one (a λ* ratio of 0.5: not a default search, so only with ``default_only=False``)."""
    import matplotlib

    matplotlib.use("Agg")
    mini = report.search_genotypes("mini")
    assert list(mini)[0] == "mini-cifar10-mini-racl-s0" and all(re.fullmatch(r"mini-cifar10-mini-racl-s\d+", n) for n in mini)
    assert report.search_genotypes("smoke") == {}
    smoke = report.search_genotypes("smoke", default_only=False)
    assert list(smoke) == ["smoke-synthetic-seed0-lambda-star-ratio-0.5"]
    both = {**mini, **smoke}
    fig = report.plot_cells(both, "Fig. 5")
    assert len(fig.axes) == 2 * len(both)
    drawn = [t.get_text() for t in fig.axes[0].texts]
    g = mini["mini-cifar10-mini-racl-s0"]
    assert sum(t in ("max 3x3", "avg 3x3", "skip", "sep 3x3", "sep 5x5", "dil 3x3", "dil 5x5") for t in drawn) == len(g.normal)
    assert fig.axes[1].get_title() == "mini-cifar10-mini-racl-s0: reduction cell"
    matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match="no genotypes"):
        report.plot_cells({})
    assert len(report.fig5_table(both)) == len(both) + 1


def test_fig5_summary_says_what_the_seeds_show():
    racl, darts = GENOTYPES["RACL"], GENOTYPES["DARTS_V2"]
    none = _g([("sep_conv_3x3", 0), ("sep_conv_3x3", 1)] * 4, [("sep_conv_3x3", 0), ("sep_conv_3x3", 1)] * 4)
    assert report.fig5_summary({}).startswith("No search of RACL")
    one = report.fig5_summary({"a": racl})
    assert "1 of 1 normal cells" in one and "1 seed cannot show a tendency" in one
    three = report.fig5_summary({"a": racl, "b": darts, "c": racl})
    assert "3 of 3 normal cells" in three and "3 of 3 reduction cells" in three and "Both readings hold" in three
    mixed = report.fig5_summary({"a": racl, "b": none, "c": none})
    assert "1 of 3 normal cells" in mixed and "1 of 3 reduction cells" in mixed and "do not both hold" in mixed


# ---------------------------------------------------------------------- cost from finished runs
def _search_record(runs: Path, name: str, g: Genotype, last: dict, finished: bool = True, wall: float = 600.0) -> None:
    d = runs / "search" / name
    _write(d / "config.json", {"profile": "mini", "seed": int(name.rsplit("-s", 1)[1])})
    _write(d / "provenance.json", {"profile": "mini", "wall_time_s": wall, **({"finished": "2026-12-03"} if finished else {})})
    _write(d / "genotype.json", {"genotype": g.to_dict()})
    (d / "metrics.jsonl").write_text("\n".join(json.dumps({"epoch": e, **last}) for e in range(3)) + "\n")


def test_ablation_searches_count_the_edges_each_setting_shares_with_racl(tmp_path, monkeypatch):
    """Table 8's searches before retraining: an ablation's cell against the full RACL
    search of its seed, edge by edge, and the full searches of different seeds against
    each other as the yardstick; an unfinished search and another profile's are left out."""
    base = [("sep_conv_3x3", 0), ("sep_conv_3x3", 1)] * 4
    racl0 = _g(base, base)
    racl1 = _g([("skip_connect", 0), ("sep_conv_3x3", 1)] + base[2:], [("max_pool_3x3", 0), ("max_pool_3x3", 1)] * 4)
    racl2 = _g([("skip_connect", 0), ("skip_connect", 1)] + base[2:], base)
    no_gn = _g([("dil_conv_3x3", 0), ("dil_conv_3x3", 1)] + base[2:], [("skip_connect", 0)] + base[1:])
    runs = tmp_path
    for s, g in enumerate((racl0, racl1, racl2)):
        _search_record(runs, f"mini-cifar10-mini-racl-s{s}", g, {"val_acc": 0.3, "c": -0.01, "prob_bound": 0.9, "theta": 0.0})
    _search_record(runs, "mini-cifar10-mini-racl-w-o-gradient-norm-s0", no_gn,
                   {"val_acc": 0.312, "c": 0.0171, "prob_bound": 0.889, "theta": 0.00287}, wall=2119.0)
    _search_record(runs, "mini-cifar10-mini-racl-eta0.7-s0", racl0, {"val_acc": 0.2}, finished=False)
    _search_record(runs, "smoke-synthetic-racl-w-o-confidence-learning-s0", racl0, {"val_acc": 0.1})
    monkeypatch.setattr(report, "RUNS", runs)
    df = report.ablation_searches()
    assert list(df.index) == [("RACL w/o gradient norm", 0), ("RACL", 0), ("RACL", 1), ("RACL", 2),
                              ("RACL, one seed against another", "-")]
    row = df.loc[("RACL w/o gradient norm", 0)]
    assert row["search"] == "mini-cifar10-mini-racl-w-o-gradient-norm-s0" and row["epochs"] == 3
    assert (row["held-out acc. (%)"], row["c at the end"], row["P(L ≤ λ*)"], row["θ"]) == ("31.2", "0.0171", "0.889", "0.00287")
    assert row["wall time (min)"] == "35"
    assert row["normal edges shared with RACL"] == "6 of 8" and row["reduction edges shared with RACL"] == "7 of 8"
    assert df.loc[("RACL", 1), "normal edges shared with RACL"] == "itself"
    yard = df.loc[("RACL, one seed against another", "-")]
    assert yard["search"] == "s0/s1, s0/s2, s1/s2"
    # normal: s0/s1 share 7, s0/s2 share 6, s1/s2 share 7 (node 0's first input); reduction: 0, 8, 0
    assert yard["normal edges shared with RACL"] == "6.7 of 8 (pairs: 7, 6, 7)"
    assert yard["reduction edges shared with RACL"] == "2.7 of 8 (pairs: 0, 8, 0)"
    assert list(report.ablation_searches("smoke").index) == [("RACL w/o confidence learning", 0)]
    assert report.ablation_searches("smoke").iloc[0]["normal edges shared with RACL"] == "no RACL search"
    monkeypatch.setattr(report, "RUNS", tmp_path / "nothing")
    assert report.ablation_searches().empty


def test_ablation_divergence_tells_the_setting_from_the_arithmetic(tmp_path, monkeypatch):
    """Each ablated search against the full search of its seed: the first epoch whose losses
    differ, against the first epoch its setting can act in (η and ρ after the weight warm-up,
    the gradient-norm term and confidence learning from the first epoch), and where each ran."""
    g = _g([("sep_conv_3x3", 0), ("sep_conv_3x3", 1)] * 4, [("max_pool_3x3", 0), ("max_pool_3x3", 1)] * 4)
    here, there = {"cpu": "AMD EPYC", "cpu_threads": 2}, {"cpu": "Xeon", "cpu_threads": 1}

    def record(name, losses, hardware, **config):
        d = tmp_path / "search" / name
        _write(d / "config.json", {"profile": "mini", "seed": 0, "arch_warmup_epochs": 2, **config})
        _write(d / "provenance.json", {"profile": "mini", "finished": "2026-12-04", "hardware": hardware,
                                       "code": {"git_commit": "0123456789", "git_dirty": False}})
        _write(d / "genotype.json", {"genotype": g.to_dict()})
        (d / "metrics.jsonl").write_text("".join(json.dumps({"epoch": e, "train_loss": t, "val_loss": v}) + "\n"
                                                 for e, (t, v) in enumerate(losses)))

    full = [(2.17, 2.25), (2.03, 2.04), (1.94, 1.90)]
    record("mini-cifar10-mini-racl-s0", full, here)
    record("mini-cifar10-mini-racl-eta0.7-s0", full[:2] + [(1.95, 1.90)], here, eta=0.7)  # from its first arch epoch
    record("mini-cifar10-mini-racl-eta0.9-rho-x10-s0", [(2.171, 2.25)] + full[1:], there, rho=0.5)  # in the warm-up
    record("mini-cifar10-mini-racl-w-o-gradient-norm-s0", [(2.18, 2.25)] + full[1:], there, grad_norm_weight=0.0)
    record("mini-cifar10-mini-racl-w-o-confidence-learning-s0", full, here, sample=False)
    monkeypatch.setattr(report, "RUNS", tmp_path)
    record("mini-cifar10-mini-racl-eta0.9-rho-x10-s0-here", full[:2] + [(1.9, 1.9)], here, rho=0.5)  # a rerun
    # whose cell differs from the plan's search in one normal edge
    g2 = _g([("sep_conv_5x5", 0), ("sep_conv_3x3", 1)] + [("sep_conv_3x3", 0), ("sep_conv_3x3", 1)] * 3,
            [("max_pool_3x3", 0), ("max_pool_3x3", 1)] * 4)
    _write(tmp_path / "search" / "mini-cifar10-mini-racl-eta0.9-rho-x10-s0-here" / "genotype.json", {"genotype": g2.to_dict()})
    df = report.ablation_divergence()
    eta = df.loc[("RACL eta=0.7", "mini-cifar10-mini-racl-eta0.7-s0")]
    rho = df.loc[("RACL eta=0.9 rho x10", "mini-cifar10-mini-racl-eta0.9-rho-x10-s0")]
    assert (eta["settings changed"], eta["setting acts from epoch"], eta["first epoch that differs"]) == ("eta=0.7", 2, 2)
    assert eta["reading"] == "the same until its setting acts"
    assert (rho["settings changed"], rho["setting acts from epoch"], rho["first epoch that differs"]) == ("rho=0.5", 2, 0)
    assert rho["reading"].startswith("departs before its setting acts") and rho["this search ran on"] == "Xeon (1 threads), 0123456"
    rerun = df.loc[("RACL eta=0.9 rho x10", "mini-cifar10-mini-racl-eta0.9-rho-x10-s0-here")]
    assert rerun["reading"] == "the same until its setting acts" and rerun["seed"] == 0
    assert eta["edges shared with RACL's cell (normal, reduction)"] == "8 of 8, 8 of 8"
    gn = df.loc[("RACL w/o gradient norm", "mini-cifar10-mini-racl-w-o-gradient-norm-s0")]
    assert (gn["setting acts from epoch"], gn["first epoch that differs"]) == (0, 0)
    assert gn["reading"].startswith("departs where its setting starts to act, on another machine")
    assert df.loc[("RACL w/o confidence learning", "mini-cifar10-mini-racl-w-o-confidence-learning-s0"),
                  "reading"] == "the same losses in every epoch"
    said = report.ablation_divergence_summary(df)
    assert said.startswith("1 of 5 ablated searches depart from the full RACL search of their seed before their setting "
                           "can act (mini-cifar10-mini-racl-eta0.9-rho-x10-s0: epoch 0, setting from epoch 2)")
    assert "mini-cifar10-mini-racl-eta0.9-rho-x10-s0-here (first differs in epoch 2, its setting acts from epoch 2; " in said
    assert "1 more (mini-cifar10-mini-racl-w-o-gradient-norm-s0)" in said
    # a rerun is no row of Table 8: its table of searches keeps the plan's names
    assert "mini-cifar10-mini-racl-eta0.9-rho-x10-s0-here" not in set(report.ablation_searches()["search"])
    # what reproduce does with the rerun's cell (racl.plan.search_reruns), and how far it has come
    status = report.table8_rerun_status()
    assert status.to_dict("records") == [{"setting": "RACL eta=0.9 rho x10", "rerun search": "mini-cifar10-mini-racl-eta0.9-rho-x10-s0-here",
                                          report.RERUN_SHARED: "7 of 8, 8 of 8", "retraining": "mini-cifar10-mini-searched-racl-eta0.9-rho-x10-mart-s0-here",
                                          "trained": "not yet", "evaluated": "not yet"}]
    _write(tmp_path / "train" / "mini-cifar10-mini-searched-racl-eta0.9-rho-x10-mart-s0-here" / "provenance.json", {"finished": "x"})
    _write(tmp_path / "eval" / "mini-cifar10-mini-searched-racl-eta0.9-rho-x10-mart-s0-here.json.partial", {})
    assert report.table8_rerun_status().iloc[0][["trained", "evaluated"]].tolist() == ["finished", "started"]
    monkeypatch.setattr(report, "RUNS", tmp_path / "nothing")
    assert report.ablation_divergence_summary().startswith("No ablated search")
    assert report.table8_rerun_status().empty


def test_costs_come_from_finished_runs_of_the_device_where_no_benchmark_fits(tmp_path, capsys):
    """No benchmark record of 'Test CPU (1 threads)': a search costs what the finished search
    of the same config took; a retraining, the per-step time of one of the same computation
    (any genotype) times its steps; an evaluation, each attack's per-example time plus the
    sanity checks' time. Another device's runs, or another attack budget, are no evidence."""
    from racl.plan import estimate_with_source
    from racl.profiles import to_dict

    cpu = {"cpu": "Test CPU", "cpu_threads": 1}
    jobs = {j.key: j for j in plan("mini", ["table1", "fig5", "table8"], ["RACL", "DARTS_V2"], None, None, tmp_path)}
    prov = lambda wall, hw=cpu, **kw: {"finished": "2026-01-01T00:00:00+00:00", "wall_time_s": wall, "hardware": hw, **kw}  # noqa: E731
    s0 = jobs["search/mini-cifar10-mini-racl-s0"]
    search_cfg = to_dict(job_config(s0, "mini"))
    del search_cfg["lipschitz_method"]  # a record from before the field: it ran the default
    _write(tmp_path / "search" / s0.name / "config.json", search_cfg)
    _write(tmp_path / "search" / s0.name / "provenance.json", prov(1800.0))
    t0 = jobs["train/mini-cifar10-mini-racl-mart-s0"]
    _write(tmp_path / "train" / t0.name / "config.json", to_dict(job_config(t0, "mini")))
    _write(tmp_path / "train" / t0.name / "provenance.json", prov(4860.0, n_train_images=5482))  # 6 x 81 steps: 10 s each
    pgd = to_dict(job_config(t0, "mini"))
    pgd["attack_steps"] = 7  # another computation: not used
    _write(tmp_path / "train" / "other" / "config.json", pgd)
    _write(tmp_path / "train" / "other" / "provenance.json", prov(1.0, n_train_images=5482))
    _write(tmp_path / "train" / "elsewhere" / "config.json", to_dict(job_config(t0, "mini")))
    _write(tmp_path / "train" / "elsewhere" / "provenance.json", prov(1.0, {"gpu": "Test GPU"}, n_train_images=5482))
    ec = to_dict(get_eval_profile("mini"))
    attacks = {a: {"seconds": 2.56 if a not in ("cw", "autoattack") else 6.4, "n": 256 if a not in ("cw", "autoattack") else 64}
               for a in ec["attacks"]}  # 0.01 s an example, 0.1 s for the slow ones
    attacks["pgd20"]["iterate_of"] = "pgd100"  # run_pgd: PGD-20 is PGD-100's 20th iterate, its time inside PGD-100's
    wall = sum(a["seconds"] for a in attacks.values() if "iterate_of" not in a) + 100.0  # 100 s of sanity checks
    _write(tmp_path / "eval" / f"{t0.name}.json", {"eval_config": ec, "attacks": attacks, "model": {"run": f"data/runs/train/{t0.name}"},
                                                   "provenance": prov(wall)})
    for key, hours in (("search/mini-cifar10-mini-racl-s1", 0.5), ("search/mini-cifar10-mini-racl-eta0.7-s0", 0.5),
                       ("search/mini-cifar10-mini-racl-eta0.9-rho-x10-s0", 0.5),
                       ("train/mini-cifar10-mini-darts-v2-mart-s0", 1.35),
                       ("train/mini-cifar100-mini-racl-mart-s0", 6 * 13 * 10 / 3600),
                       # 5 cheap attacks with a time of their own (PGD-20 comes with PGD-100), 2 slow ones
                       ("eval/mini-cifar10-mini-darts-v2-mart-s0", (100 + 5 * 2.56 + 2 * 6.4) / 3600)):
        h, source = estimate_with_source(jobs[key], "mini", "Test CPU (1 threads)", jobs=jobs, runs=tmp_path)
        assert source == "runs" and h == pytest.approx(hours), key
    for other in ("w-o-gradient-norm", "w-o-confidence-learning"):  # another computation: no evidence
        assert estimate_with_source(jobs[f"search/mini-cifar10-mini-racl-{other}-s0"], "mini", "Test CPU (1 threads)",
                                    jobs=jobs, runs=tmp_path) == (None, None)
    assert estimate_with_source(jobs["search/mini-cifar10-mini-racl-s1"], "mini", "Test CPU (2 threads)", jobs=jobs,
                                runs=tmp_path) == (None, None)
    # the dry run says where each estimate comes from
    assert cli.main(["reproduce", "--profile", "mini", "--targets", "fig5", "--seeds", "1", "--runs", str(tmp_path),
                     "--dry-run", "--cost-device", "Test CPU (1 threads)"]) == 0
    out = capsys.readouterr().out
    assert "else its finished runs" in out and re.search(r"todo  search   mini-cifar10-mini-racl-s1 +0\.5 runs ", out)


def test_the_gpu_profile_runs_the_papers_networks_on_the_mini_images(tmp_path):
    """``gpu`` (issue #13's larger budget): the paper's supernet, network, recipe and attacks on
    the real mini images; every target plans with it, and it ranks between mini and paper."""
    from racl.profiles import DATASETS, get_profile

    s, t, e = get_profile("gpu"), get_profile("gpu", kind="train"), get_eval_profile("gpu")
    paper_s, paper_t, paper_e = get_profile("paper"), get_profile("paper", kind="train"), get_eval_profile("paper")
    assert s.dataset == t.dataset == "cifar10-mini" and DATASETS["gpu"]["cifar100"] == "cifar100-mini"
    assert (s.layers, s.init_channels, s.partial_channels, s.batch_size) == (8, 16, 4, 128)
    assert s.epochs < paper_s.epochs and s.arch_warmup_epochs < s.epochs and s.arch_lr > paper_s.arch_lr and s.rho > paper_s.rho
    # exact reformulations of the paper's second derivatives, not fast paths that change the search
    assert (s.depthwise_backward, s.batchnorm_backward, s.grad_norm_grad, s.arch_update) == (
        "explicit", "explicit", "exact", "alternating")
    assert (t.layers, t.init_channels, t.method, t.attack_steps, t.step_size, t.batch_size, t.beta) == (
        paper_t.layers, paper_t.init_channels, "mart", 10, paper_t.step_size, 128, 6.0)
    assert t.epochs < paper_t.epochs and t.val_images > 0
    assert (e.attacks, e.cw_steps, e.autoattack_version) == (paper_e.attacks, paper_e.cw_steps, "standard")
    assert e.n >= 1017 and e.n_slow >= STABILITY_EVAL["n_slow"]
    assert report.PROFILE_RANK["mini"] < report.PROFILE_RANK["gpu"] < report.PROFILE_RANK["paper"]
    jobs = plan("gpu", ["table4", "table7", "table8", "fig5"], None, None, "mart", tmp_path)
    trains = {j.spec["arch"] for j in jobs if j.kind == "train" and "screen" not in j.name}
    assert {"RACL", "DARTS_V2", "PC_DARTS", "resnet110"} <= trains
    assert all(j.name.startswith("gpu-cifar10-mini-") for j in jobs)
    evals = [j for j in jobs if j.kind == "eval"]
    assert evals and all(job_config(j, "gpu").n == e.n for j in evals)  # more than Table 7's minimum
    assert len([j for j in jobs if j.kind == "search"]) == len(ABLATIONS) + 2  # Table 8's five, Fig. 5's seeds 1, 2
