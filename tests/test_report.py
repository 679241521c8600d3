"""The report tables of Tables 4-8, Fig. 4 and the sanity checks, on fake records written
into a temporary ``RUNS``: the paper's number beside ours, 'not run' where no record exists,
'not transcribed' where the paper's value is null, and failed checks shown."""

import json

import pandas as pd
import pytest

from racl import report

PROV = {"profile": "mini", "dataset": "cifar10-mini", "seed": 0, "wall_time_s": 600.0,
        "hardware": {"cpu": "Test CPU", "cpu_threads": 2}, "code": {"git_commit": "abcdef0123456", "git_dirty": False}}


def _sweeps(scale=1.0):
    return {"fgsm_eps": [{"value": e, "acc": scale * (0.5 - 5 * e)} for e in (0.01, 0.02, 0.03, 0.04, 0.05)],
            "pgd_eps": [{"value": e, "acc": scale * (0.45 - 6 * e)} for e in (0.01, 0.02, 0.03, 0.04, 0.05)],
            "pgd_steps": [{"value": s, "acc": scale * 0.3} for s in (1, 2, 5, 10, 20, 50, 100)], "n": 128}


def _eval(arch, clean=0.6, seed=0, failing=(), run="", profile="mini"):
    checks = {c: {"passed": c not in failing} for c in report.SANITY_CHECKS if c != "white_box_beats_transfer"}
    return {"n": 256, "clean_acc": clean, "n_params": 1000,
            "attacks": {a: {"acc": clean / 2, "n": 256} for a in ("fgsm", "mim20", "pgd20", "cw")},
            "sweeps": _sweeps(clean), "sanity": checks, "sanity_passed": not failing,
            "model": {"arch": arch, "train_profile": profile, "dataset": "cifar10-mini", "run": run},
            "provenance": {**PROV, "profile": profile, "seed": seed}}


def _write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """Fake records: RACL and DARTS_V2 white-box evaluations, Table 4 and Table 5 transfer
    records, two RACL seeds and one random-search seed (Table 7), one ablation (Table 8);
    the paper file with a handful of values filled in."""
    runs = tmp_path / "runs"
    ev = runs / "eval"
    _write(ev / "mini-cifar10-mini-racl-pgd-s0.json", _eval("RACL", 0.6))
    _write(ev / "mini-cifar10-mini-darts-v2-pgd-s0.json", _eval("DARTS_V2", 0.5, failing=("large_eps_near_zero",)))
    genotype = str(runs / "search" / "mini-cifar10-mini-racl-s0" / "genotype.json")
    for s, clean in ((0, 0.6), (1, 0.4)):
        name = f"mini-cifar10-mini-searched-racl-pgd-s{s}"
        _write(ev / f"{name}.json", _eval(genotype, clean, seed=s, run=str(runs / "train" / name)))
    _write(ev / "mini-cifar10-mini-random-search-pgd-s0.json", _eval("Genotype(normal=...)", 0.3))
    _write(ev / "mini-cifar10-mini-searched-racl-w-o-gradient-norm-pgd-s0.json", _eval("x/genotype.json", 0.55))
    _write(runs / "search" / "mini-cifar10-mini-racl-s0" / "provenance.json", {**PROV, "wall_time_s": 1800.0})
    _write(runs / "train" / "mini-cifar10-mini-searched-racl-pgd-s0" / "provenance.json", {**PROV, "wall_time_s": 900.0})
    tr = runs / "transfer"
    m4 = {a: {"resnet110": {"RACL": 0.42, "DARTS_V2": 0.31, "resnet110": 0.05}} for a in ("fgsm", "mim20", "pgd20")}
    _write(tr / "mini-cifar10-mini-table4.json", {"sources": ["resnet110"], "targets": ["RACL", "DARTS_V2", "resnet110"],
                                                  "n": 256, "matrices": m4, "provenance": PROV})
    m5 = {"pgd10": {"RACL": {"RACL": 0.2, "DARTS_V2": 0.45}, "DARTS_V2": {"RACL": 0.47, "DARTS_V2": 0.18}}}
    _write(tr / "mini-cifar10-mini-table5.json", {"sources": ["RACL", "DARTS_V2"], "targets": ["RACL", "DARTS_V2"],
                                                  "n": 256, "matrices": m5, "provenance": PROV})
    p = report.paper()
    p["tables"]["table4"]["values"]["RACL"]["fgsm"] = 55.5
    p["tables"]["table5"]["values"]["RACL"]["RACL"] = 40.0
    p["tables"]["table7"]["values"]["RACL"]["clean"] = "84.2 ± 0.3"
    p["figures"]["fig4"]["series"] = {"RACL": {"pgd_eps": [50.0, 40.0, 30.0, 20.0, 10.0]}}
    paper_file = tmp_path / "paper.json"
    paper_file.write_text(json.dumps(p))
    monkeypatch.setattr(report, "RUNS", runs)
    monkeypatch.setattr(report, "PAPER", paper_file)
    return runs


@pytest.fixture
def empty(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "RUNS", tmp_path / "nothing")


def test_table4_paper_beside_ours(runs):
    df = report.transfer_table("table4")
    assert df.loc["RACL", ("fgsm", "paper")] == "55.5" and df.loc["RACL", ("fgsm", "ours")] == "42.0"
    assert df.loc["DARTS", ("pgd20", "ours")] == "31.0"
    assert df.loc["DARTS", ("mim", "paper")] == report.NOT_TRANSCRIBED
    assert df.loc["ResNet-18", ("fgsm", "ours")] == report.NOT_RUN
    assert df.loc["ResNet-18", ("budget", "ours")] == report.NOT_RUN
    assert df.loc["RACL", ("budget", "ours")].startswith("mini · cifar10-mini · seed 0 · Test CPU (2 threads)")
    assert df.loc["RACL", ("budget", "ours")].endswith("n=256")


def test_transfer_matrix_paper_row_above_ours(runs):
    df = report.transfer_matrix_table("table5")
    assert df.loc[("RACL", "paper"), "RACL"] == "40.0" and df.loc[("RACL", "ours"), "RACL"] == "20.0"
    assert df.loc[("RACL", "ours"), "DARTS"] == "45.0" and df.loc[("DARTS", "ours"), "RACL"] == "47.0"
    assert df.loc[("RACL", "ours"), "ResNet-18"] == report.NOT_RUN
    assert df.loc[("ResNet-18", "ours"), "budget"] == report.NOT_RUN
    assert df.loc[("DARTS", "paper"), "RACL"] == report.NOT_TRANSCRIBED
    assert report.transfer_record("table6") is None
    assert (report.transfer_matrix_table("table6").xs("ours", level=1).drop(columns="budget") == report.NOT_RUN).all().all()


def test_fig4_tables_and_plot(runs):
    df = report.fig4_table("pgd_eps")
    assert df.loc[("RACL", "paper"), 0.01] == "50.0" and df.loc[("RACL", "ours"), 0.01] == pct(0.6 * (0.45 - 0.06))
    assert df.loc[("ResNet-18", "ours"), 0.03] == report.NOT_RUN
    assert df.loc[("DARTS", "paper"), 0.03] == report.NOT_TRANSCRIBED
    steps = report.fig4_table("pgd_steps")
    assert list(steps.columns) == [1, 2, 5, 10, 20, 50, 100, "n", "budget"]
    assert steps.loc[("DARTS", "ours"), 100] == "15.0" and steps.loc[("DARTS", "ours"), "n"] == 128
    with pytest.raises(KeyError):
        report.fig4_table("cw_eps")
    import matplotlib

    matplotlib.use("Agg")
    recs = report.fig4_records()
    assert set(recs) == {"RACL", "DARTS"}
    fig = report.plot_sweeps({k: r["sweeps"] for k, r in recs.items()}, paper_series=report.paper()["figures"]["fig4"]["series"])
    assert len(fig.axes) == 3 and len(fig.axes[1].lines) == 3  # two of ours, the paper's RACL curve
    matplotlib.pyplot.close(fig)


def pct(v):
    return report.pct(v)


def test_table7_seeds_and_budget(runs):
    df = report.ablation_table("table7")
    assert df.loc["RACL", ("clean", "paper")] == "84.2 ± 0.3"
    assert df.loc["RACL", ("clean", "ours")] == "50.0 ± 14.1"  # mean and sample std of 60 and 40
    assert df.loc["RACL", ("seeds", "ours")] == "0,1"
    assert df.loc["Random search", ("pgd20", "ours")] == "15.0"
    assert df.loc["Random search", ("cw", "paper")] == report.NOT_TRANSCRIBED
    b = df.loc["RACL", ("budget", "ours")]
    assert "seed 0,1" in b and "search 30.0 min + training 15.0 min" in b


def test_table8_ablations_by_job_name(runs):
    df = report.ablation_table("table8")
    assert df.loc["RACL w/o gradient norm", ("clean", "ours")] == "55.0"
    assert df.loc["RACL", ("clean", "ours")] == "60.0"  # the seed-0 full RACL, shared with Table 7
    assert df.loc["RACL eta=0.8", ("clean", "ours")] == report.NOT_RUN
    assert df.loc["RACL eta=0.8", ("budget", "ours")] == report.NOT_RUN
    assert (df.xs("paper", axis=1, level=1).drop(columns=["seeds", "budget"], errors="ignore") == report.NOT_TRANSCRIBED).all().all()


def test_sanity_table_shows_failures(runs):
    df = report.sanity_table()
    assert len(df) == 6
    darts = df.loc["mini-cifar10-mini-darts-v2-pgd-s0"]
    assert df.loc["mini-cifar10-mini-random-search-pgd-s0", "model"] == "random genotype"
    assert darts["model"] == "DARTS" and darts["large_eps_near_zero"] == "FAILED" and darts["all passed"] == "NO"
    racl = df.loc["mini-cifar10-mini-racl-pgd-s0"]
    assert racl["gradients_nonzero"] == "passed" and racl["all passed"] == "yes"
    assert racl["white_box_beats_transfer"] == report.NOT_RUN
    rec = json.loads((runs / "eval" / "mini-cifar10-mini-darts-v2-pgd-s0.json").read_text())
    assert report.sanity_details(rec).loc["large_eps_near_zero", "result"] == "FAILED"


def test_everything_not_run_without_records(empty):
    for df in (report.transfer_table("table4"), report.ablation_table("table7"), report.ablation_table("table8")):
        assert (df.xs("ours", axis=1, level=1) == report.NOT_RUN).all().all()
        assert (df.xs("paper", axis=1, level=1) == report.NOT_TRANSCRIBED).all().all()
    for df in (report.transfer_matrix_table("table5"), report.fig4_table("fgsm_eps")):
        ours = df.xs("ours", level=1).drop(columns=[c for c in ("n", "budget") if c in df.columns])
        assert (ours == report.NOT_RUN).all().all()
        paper = df.xs("paper", level=1).drop(columns=[c for c in ("n", "budget") if c in df.columns])
        assert (paper == report.NOT_TRANSCRIBED).all().all()
    s = report.sanity_table()
    assert len(s) == 1 and (s.drop(columns=["model"]) == report.NOT_RUN).all().all()
    assert isinstance(report.sanity_details({}), pd.DataFrame)


def test_rho_ablations_are_relative_to_the_profile():
    from racl.reproduce import ABLATIONS, ablation_config

    paper_rho, mini_rho = ablation_config("paper", {}).rho, ablation_config("mini", {}).rho
    assert ablation_config("paper", ABLATIONS["RACL rho=1e-4"]).rho == pytest.approx(1e-4)
    assert ablation_config("paper", ABLATIONS["RACL rho=1e-2"]).rho == pytest.approx(1e-2)
    assert ablation_config("mini", ABLATIONS["RACL rho=1e-4"]).rho == pytest.approx(0.1 * mini_rho)
    assert ablation_config("mini", ABLATIONS["RACL rho=1e-2"]).rho == pytest.approx(10 * mini_rho)
    assert paper_rho == pytest.approx(1e-3)
    assert ablation_config("mini", ABLATIONS["RACL w/o confidence learning"]).sample is False


def test_toy_models_train_and_can_be_masked():
    import torch

    from racl.data import synthetic
    from racl.networks import MLP, SmallCNN
    from racl.training import fit_toy

    d = synthetic("train", size=32, n=128)
    x, y = d.x.float() / 255, d.y
    torch.manual_seed(0)
    m = fit_toy(SmallCNN(), x, y, epochs=2, seed=0, fgsm_eps=2 / 255)
    assert not m.training and m(x[:4]).shape == (4, 10)
    masked = SmallCNN(quantize=4)
    xq = x[:4].clone().requires_grad_(True)
    masked(xq).sum().backward()
    assert xq.grad.abs().max() == 0  # the quantisation hides every input gradient
    assert MLP()(x[:2]).shape == (2, 10)
