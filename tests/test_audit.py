"""The audit of the paper against itself (racl.audit): it runs on the committed paper file,
and its findings and counts are the ones the audit chapter states."""

import json
import math

import pytest

from racl import audit, report


@pytest.fixture(scope="module")
def checks():
    return audit.run_all()


def test_runs_and_counts(checks):
    c = audit.counts(checks)
    assert c["total"] == len(checks) == c["consistent"] + c["inconsistent"]
    # one search record is committed today: 2 constraint checks for it (at least 2 without any)
    n_eq = sum(ch.group == "Eq. 15 and Eqs. 16-17" for ch in checks)
    assert n_eq == 2 * max(1, len(audit.search_record_constraints()))
    assert c["total"] == 122 + n_eq
    assert c["inconsistent"] == 13 + n_eq
    assert all(isinstance(ch.consistent, bool) and ch.tolerance for ch in checks)
    f = audit.frame(checks)
    assert len(f) == len(checks) and set(f["consistent"]) == {"yes", "NO"}


def _find(checks, text):
    hits = [c for c in checks if text in c.check]
    assert hits, text
    return hits


def test_known_findings(checks):
    assert all(c.consistent for c in _find(checks, "Table 5 white-box"))  # diagonal = Table 1 PGD-20
    assert not _find(checks, "Table 1 = Table 8 (η = 0.9, ρ = 0.001): RACL fgsm")[0].consistent  # 62.55 vs 62.07
    acc = _find(checks, "'52.26%' = RACL autoattack")[0]
    assert not acc.consistent and acc.b == 25.55 and "cw" not in acc.note
    nas = _find(checks, "'52.83%' = NASNet pgd100")[0]
    assert not nas.consistent and nas.b == 52.84
    abandit = _find(checks, "'5.81% improvement")[0]
    assert not abandit.consistent and "mim" in abandit.note
    sr = {c.check: c for c in _find(checks, "success rate")}
    assert sr["success rate RACL -> AmoebaNet = 35.52%"].consistent  # 100 - 64.49 = 35.51: one rounding unit
    assert not sr["success rate AmoebaNet -> RACL = 29.59%"].consistent
    assert sum(c.consistent for c in sr.values()) == 5
    assert not any(c.consistent for c in _find(checks, "RACL's examples the strongest transfer"))
    assert all(c.consistent for c in _find(checks, "improvement' over RobNet"))  # Sec. 4.4: 7.25, 6.36, 6.08, 2.75
    assert all(c.consistent for c in _find(checks, "the gap increases"))  # 0.71 and 1.65
    assert all(c.consistent for c in _find(checks, "could be one of the 5 runs"))


def test_proposition1_against_eq11_monte_carlo():
    out = {c.check: c for c in audit.proposition1_monte_carlo(n=200_000)}
    assert not out["Proposition 1's μ_Z (− σ_Z/2) = Eq. 11's μ_Z (− σ_Z²/2)"].consistent
    assert out["Eq. 11's μ_Z against the Monte Carlo mean of ln Z"].consistent
    assert not out["Prop. 1's μ_Z against the Monte Carlo mean of ln Z"].consistent
    # with sigma_Z = 1 the two forms coincide: sigma_Z = sigma_Z^2
    from racl.lognormal import fenton_wilkinson
    import torch

    mu, s2 = torch.tensor([0.0], dtype=torch.float64), torch.tensor([1.0], dtype=torch.float64)
    assert math.isclose(float(fenton_wilkinson(mu, s2, mean_form="paper").mu), float(fenton_wilkinson(mu, s2).mu), abs_tol=1e-9)


def test_eq15_against_eq17():
    z = 1.2815515655446004  # Phi^-1(0.9)
    small = {c.check: c for c in audit.eq15_vs_eq17(0.0, 0.5, 0.9, 1.0)}
    c = next(v for k, v in small.items() if k.startswith("c of"))
    assert c.a == pytest.approx(z * 0.5 - 1, abs=1e-5) and c.b == pytest.approx(z * 0.25 - 1, abs=1e-5) and not c.consistent
    assert c.detail["stricter"] == "Eq. 15 (σ)"
    p = next(v for k, v in small.items() if k.startswith("P("))
    assert p.b == pytest.approx(audit.phi(z * 0.5), abs=1e-5) and p.b < 0.9
    big = audit.eq15_vs_eq17(0.0, 2.0, 0.9, 1.0)
    assert big[0].detail["stricter"] == "Eq. 17 (σ²)" and big[1].b > 0.9
    one = audit.eq15_vs_eq17(0.0, 1.0, 0.9, 1.0)
    assert one[0].consistent and one[1].consistent  # sigma = 1: the two forms agree
    table = audit.constraint_forms_table()
    assert (table.loc[table.index < 1, "extra room of Eq. 17"] > 0).all() and (table.loc[table.index > 1, "extra room of Eq. 17"] < 0).all()


def test_checks_read_the_paper_file(monkeypatch, tmp_path):
    """A changed number in the paper file changes the finding (nothing is hard-coded)."""
    import json

    p = report.paper()
    p["tables"]["table8"]["blocks"][0]["values"]["eta=0.9, rho=0.001"]["fgsm"] = 62.55
    f = tmp_path / "paper.json"
    f.write_text(json.dumps(p))
    monkeypatch.setattr(report, "PAPER", f)
    assert _find(audit.racl_rows(), "Table 1 = Table 8 (η = 0.9, ρ = 0.001): RACL fgsm")[0].consistent


def test_a_search_still_running_is_not_audited(tmp_path):
    """Only finished search records enter the audit: one that is still running (its
    provenance not yet finished) would change the chapter while it runs."""
    row = {"epoch": 2, "net_mu": 57.3, "net_sigma": 0.3, "log_lambda_star": 57.8}
    for name, prov in (("done-s0", {"finished": "2026-12-03T20:00:00+00:00"}), ("running-s0", {})):
        d = tmp_path / name
        d.mkdir()
        (d / "metrics.jsonl").write_text(json.dumps(row) + "\n")
        (d / "config.json").write_text(json.dumps({"profile": "mini", "eta": 0.9, "constraint_form": "std"}))
        (d / "provenance.json").write_text(json.dumps(prov))
    assert [r["run"] for r in audit.search_record_constraints(tmp_path)] == ["done-s0"]
