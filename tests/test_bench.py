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
    assert search["racl_over_pcdarts"] > 1  # RACL's step does strictly more work
    assert 0 < search["lipschitz_share_of_racl_step"] < 1
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
    assert epoch["racl"]["over_pcdarts"] > 1  # the exact RACL iteration does strictly more work
    assert epoch["racl"]["breakdown"]["power_iteration_s"] > 0 and "power_iteration_s" not in epoch["pcdarts"]["breakdown"]
