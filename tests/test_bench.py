"""The benchmark script runs end to end at a tiny size and writes what it prints (it measures
speed; nothing here checks a time)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_benchmark_runs_every_part_against_its_baseline(tmp_path):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(REPO / "benchmarks" / "bench.py"), "--variant", "channels_last", "--cells", "3",
           "--channels", "4", "--batch", "8", "--train-batch", "4", "--attack-batch", "4", "--pgd-steps", "1",
           "--attacks", "fgsm,pgd20", "--data-images", "64", "--repeat", "1", "--warmup", "0", "--device", "cpu",
           "--epoch-sizes", "tiny", "--epoch-steps", "1", "--epoch-warmup", "0", "--json", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "speed-up vs baseline" in res.stdout
    rec = json.loads(out.read_text())
    assert rec["device"]["device"] == "cpu" and rec["matmul_tflops"] > 0
    assert set(rec["results"]) == {f"{p}/{v}" for p in ("search", "train", "attacks")
                                   for v in ("baseline", "channels_last")} | {"data/baseline", "epoch/baseline"}
    assert rec["results"]["data/baseline"]["resident_over_host_speed_up"] > 0
    search = rec["results"]["search/baseline"]
    # timings are what the benchmark reports, not what a test asserts: one untimed step on a
    # loaded CI machine can make either side slower, so only the record's arithmetic is checked
    assert search["racl_over_pcdarts"] == pytest.approx(search["racl_arch_step_s"] / search["pcdarts_arch_step_s"])
    assert search["racl_over_pcdarts"] > 0 and search["lipschitz_share_of_racl_step"] > 0
    assert search["weight_step_gflop"] > 0 and search["racl_arch_step_gflop"] > search["weight_step_gflop"] / 4
    train = rec["results"]["train/channels_last"]
    assert train["resnet18_gflop"] > train["racl_3cell_gflop"] > 0
    assert rec["results"]["search/channels_last"]["config"]["resolved"]["channels_last"] is True
    # one search epoch of PC-DARTS, exact RACL and fast RACL on the same supernet, side by side
    epoch = rec["results"]["epoch/baseline"]["tiny"]
    assert "over PC-DARTS" in res.stdout and "step: backward" in res.stdout
    for mode in ("pcdarts", "racl", "racl_fast"):
        m = epoch[mode]
        assert m["timed_steps"] == 1 and m["epoch_s"] == pytest.approx(m["step_s"] * m["steps_per_epoch"])
        assert m["breakdown"]["forward_s"] > 0 and m["breakdown"]["backward_s"] > 0
    # PC-DARTS timed again after the other modes; the ratios take the faster of its two timings
    pc = epoch["pcdarts"]
    assert len(pc["step_times_after_s"]) == 1 and pc["reference_step_s"] == min(pc["step_s"], pc["step_after_s"])
    assert epoch["racl"]["over_pcdarts"] == pytest.approx(epoch["racl"]["step_s"] / pc["reference_step_s"])
    assert "PC-DARTS step timed first" in res.stdout and "host share of the step" in res.stdout
    assert all(0 < epoch[m]["host_s"] <= epoch[m]["step_s"] * 1.001 for m in ("pcdarts", "racl", "racl_fast"))
    assert epoch["racl"]["breakdown"]["power_iteration_s"] > 0 and "power_iteration_s" not in epoch["pcdarts"]["breakdown"]


def test_epoch_part_under_every_switch_keeps_what_it_measured(tmp_path):
    """--epoch-switches times the search epoch under each variant (the GPU check of issue #12,
    benchmarks/device_check.sh); the record is written after each piece and holds no NaN."""
    out = tmp_path / "epoch.json"
    cmd = [sys.executable, str(REPO / "benchmarks" / "bench.py"), "--part", "epoch", "--epoch-switches",
           "--variant", "fused", "--epoch-sizes", "tiny", "--epoch-modes", "pcdarts,racl_lanczos",
           "--epoch-steps", "1", "--epoch-warmup", "0", "--device", "cpu", "--json", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    rec = json.loads(out.read_text())  # strict JSON: json.loads accepts NaN, so look for it
    assert "NaN" not in out.read_text() and "Infinity" not in out.read_text()
    assert set(rec["results"]) == {"epoch/baseline", "epoch/fused"}
    for v in ("baseline", "fused"):
        lz = rec["results"][f"epoch/{v}"]["tiny"]["racl_lanczos"]
        assert lz["breakdown"]["power_iteration_s"] > 0 and lz["over_pcdarts"] > 0  # a ratio of timings: not asserted


def test_ops_part_counts_the_operators_of_one_iteration(tmp_path):
    """--part ops counts (does not time) the operators one search iteration dispatches, per
    mode: counts are exact, so they are asserted. The explicit depthwise second derivative
    dispatches fewer convolutions than the native one, the explicit batch-norm one fewer
    operators (the same convolutions), both together fewer than either, and the
    finite-difference path fewer operators than the double back-propagation; PC-DARTS, with
    no gradient-norm term, the fewest."""
    def count(batch):
        out = tmp_path / f"ops-{batch}.json"
        cmd = [sys.executable, str(REPO / "benchmarks" / "bench.py"), "--part", "ops", "--epoch-sizes", "tiny",
               "--epoch-modes", "pcdarts,racl,racl_dw,racl_bn,racl_explicit,racl_fast", "--ops-batch", str(batch), "--device", "cpu",
               "--json", str(out)]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        return json.loads(out.read_text())["results"]["ops/baseline"]["tiny"]

    r = count(8)
    assert r["racl_dw"]["convolutions"] < r["racl"]["convolutions"]
    assert r["racl_bn"]["convolutions"] == r["racl"]["convolutions"] and r["racl_bn"]["ops"] < r["racl"]["ops"]
    assert r["racl_explicit"]["ops"] < min(r["racl_dw"]["ops"], r["racl_bn"]["ops"])
    assert r["racl_explicit"]["convolutions"] == r["racl_dw"]["convolutions"]
    assert r["pcdarts"]["ops"] < r["racl_fast"]["ops"] < r["racl"]["ops"]
    assert r["racl"]["ops_over_pcdarts"] == r["racl"]["ops"] / r["pcdarts"]["ops"]
    assert all(0 < m["kernels"] < m["ops"] for k, m in r.items() if k != "config")  # views launch nothing
    assert r["racl_explicit"]["kernels"] < r["racl"]["kernels"]
    assert r["racl"]["kernels_over_pcdarts"] == r["racl"]["kernels"] / r["pcdarts"]["kernels"]


def device_check_env(tmp_path, then: str, **extra) -> dict:
    """The environment of a device_check.sh run whose Python is a stand-in that records its
    arguments in $OUT/calls, then runs the shell lines ``then``; every step selected."""
    fake = tmp_path / "python"
    fake.write_text("#!/usr/bin/env bash\necho \"$@\" >> \"$OUT/calls\"\n" + then)
    fake.chmod(0o755)
    return {"PATH": "/usr/bin:/bin", "OUT": str(tmp_path / "out"), "PYTHON": str(fake),
            "STEPS": "epoch bf16 switches train compile bf16search", **extra}


def run_device_check(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(REPO / "benchmarks" / "device_check.sh"), "--device", "cpu"], env=env,
                          capture_output=True, text=True, timeout=120)


def test_device_check_script_runs_its_six_steps(tmp_path):
    """benchmarks/device_check.sh (one prepared command for a lent GPU) with a stand-in
    Python that records its arguments: every step runs with its limit, names the device and
    writes where the device tool brings files back ($OUT)."""
    out = tmp_path / "out"
    env = device_check_env(tmp_path, "", STEP_SCALE="0.1")
    res = run_device_check(env)
    assert res.returncode == 0, res.stderr
    calls = [c for c in (out / "calls").read_text().splitlines() if not c.startswith("-c")]  # the version print
    assert [c.split()[0] for c in calls] == ["benchmarks/bench.py", "benchmarks/bf16_check.py", "benchmarks/bench.py",
                                               "benchmarks/bench.py", "benchmarks/bench.py", "benchmarks/bf16_check.py"]
    assert all("--device cpu" in c and str(out) in c for c in calls)
    assert "pcdarts,racl_explicit,racl_fast,racl_fast_batched" in calls[0]
    assert "--epoch-switches" not in calls[0]
    assert "--part train " in calls[1] and "search" not in calls[1]  # the retraining: it fits the default call
    assert "--epoch-switches" in calls[2] and "pcdarts,racl_fast_batched " in calls[2] and "lanczos" not in calls[2]
    assert "--dataset cifar10-mini" in calls[3]  # the paper profile's full CIFAR-10 is not on a device machine
    assert "--compile reduce-overhead " in calls[4]
    assert "--part search" in calls[5] and "depthwise_backward=explicit" in calls[5]
    assert "batchnorm_backward=explicit" in calls[5]
    log = (out / "device_check.log").read_text()
    assert [line.split(":")[0] for line in log.splitlines() if line.startswith("== ") and "exit" in line] == [
        "== epoch", "== bf16", "== switches", "== train", "== compile", "== bf16search"]
    assert "exit 0" in log
    # the default call runs epoch, switches and compile; STEPS=compile runs that step alone
    for steps, n in ((None, 3), ("compile", 1)):
        (out / "calls").unlink()
        res = run_device_check({k: v for k, v in {**env, "STEPS": steps}.items() if v is not None})
        calls = [c for c in (out / "calls").read_text().splitlines() if not c.startswith("-c")]
        assert res.returncode == 0 and len(calls) == n and ("--compile" in calls[0]) == (steps == "compile")
        if steps is None:
            assert [c.split()[0] for c in calls] == ["benchmarks/bench.py"] * 3 and "--compile" in calls[2]


def test_device_check_budget_cuts_the_steps_to_what_is_left(tmp_path):
    """BUDGET caps the whole call: a step's limit is cut to what the earlier steps left, and a
    step that would get under 30 s is skipped and says so (the device tool stops a call at 10
    minutes, and a late step must not take the earlier steps' records down with it)."""
    out = tmp_path / "out"
    res = run_device_check(device_check_env(tmp_path, "sleep 3\n", BUDGET="34"))
    assert res.returncode == 0, res.stderr
    log = (out / "device_check.log").read_text()
    limits = [int(line.split("limit ")[1].split("s)")[0]) for line in log.splitlines() if "(limit " in line]
    # the first step gets at most the 34 s budget (not its own 200 s); later steps what is left
    assert limits and limits[0] <= 34 and all(b < a for a, b in zip(limits, limits[1:]))
    assert "skipped" in log and "of the budget left" in log


def test_device_check_puts_carried_package_code_on_the_path(tmp_path):
    """`make device-packages` leaves pyautoattack's code (its wheel is too large to carry) in
    .whl/site; device_check.sh puts that folder on PYTHONPATH for every step."""
    import shutil

    repo = tmp_path / "repo"
    (repo / "benchmarks").mkdir(parents=True)
    for name in ("device_check.sh", "device_env.sh"):
        shutil.copy(REPO / "benchmarks" / name, repo / "benchmarks")
    (repo / ".whl" / "site").mkdir(parents=True)
    env = device_check_env(tmp_path, 'echo "PYTHONPATH=$PYTHONPATH" >> "$OUT/calls"\n', STEPS="epoch")
    res = subprocess.run(["bash", str(repo / "benchmarks" / "device_check.sh"), "--device", "cpu"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    paths = [line for line in (tmp_path / "out" / "calls").read_text().splitlines() if line.startswith("PYTHONPATH=")]
    assert paths and all(f"{repo}/.whl/site" in p.split("=", 1)[1].split(":") for p in paths)
