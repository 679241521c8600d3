"""Several processes (torchrun, gloo on the CPU) give the single-process run (issue #11).

Each test starts real ``torchrun`` process groups on this machine, as a user would:
``python -m torch.distributed.run --standalone --nproc-per-node 2 -m racl ...``.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from racl.distributed import DistributedError, GlobalBatchNorm2d, rows, Shard
from racl.records import load_checkpoint

REPO = Path(__file__).resolve().parents[1]
# the smoke profile cut to a few steps: 160 training images in global batches of 32
TRAIN = ["train", "--profile", "smoke", "--genotype", "RACL", "--no-progress", "--set", "max_train_images=224",
         "--set", "val_images=64", "--set", "epochs=2", "--set", "device=cpu"]


def _env(**extra):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "RACL_DIST_TIMEOUT": "120", **extra}
    env.pop("RACL_DEBUG", None)
    return env


def racl(*args, nproc=1, timeout=900, check=True, **env):
    """``python -m racl ...`` in one process, or under torchrun with ``nproc`` processes."""
    if nproc == 1:
        cmd = [sys.executable, "-m", "racl", *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "racl", *args]
    p = subprocess.run(cmd, cwd=REPO, env=_env(**env), capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {p.returncode}:\n{p.stdout[-3000:]}\n{p.stderr[-6000:]}")
    return p


def weights(run: Path) -> dict:
    return load_checkpoint(run / "checkpoint.pt", "cpu")["model"]


# ---------------------------------------------------------------------- pieces, in one process
def test_rows_split_the_global_batch_and_refuse_a_world_size_that_does_not_divide_it():
    assert [rows(32, Shard(r, 2)) for r in range(2)] == [slice(0, 16), slice(16, 32)]
    assert rows(128, Shard(3, 4)) == slice(96, 128)
    with pytest.raises(DistributedError, match="world size of 3 does not divide the batch of 32"):
        rows(32, Shard(0, 3))


def test_global_batchnorm_is_batchnorm_in_one_process_and_keeps_its_state_dict_keys():
    torch.manual_seed(0)
    bn, gbn = torch.nn.BatchNorm2d(5), GlobalBatchNorm2d(5)
    gbn.load_state_dict(bn.state_dict())
    x = torch.randn(8, 5, 4, 4)
    assert torch.equal(bn(x), gbn(x))
    assert torch.equal(bn.running_var, gbn.running_var)
    assert list(bn.state_dict()) == list(gbn.state_dict())



def test_sync_batchnorm_converts_every_batchnorm_of_a_searched_network_on_the_cpu():
    """The cells' ops use racl.operations.BatchNorm2d (a subclass, for the search's explicit
    second derivative): the CPU conversion must reach those too, not only nn.BatchNorm2d."""
    from racl.distributed import sync_batchnorm
    from racl.networks import build_model

    model = build_model("RACL", init_channels=8, layers=5)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    out = sync_batchnorm(model, torch.device("cpu"))
    converted = [m for m in out.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(converted) == len(bns) > 10 and all(type(m) is GlobalBatchNorm2d for m in converted)


# ---------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def data_root(shared_data):
    return str(shared_data)


def train_args(data_root):
    """The smoke profile on real CIFAR-10 images, cut to 2 epochs of 5 global batches of 32."""
    return [*TRAIN, "--set", "dataset=cifar10-mini", "--data-root", data_root]


def make_base(d: Path, data_root: str, attack_steps: int) -> Path:
    """A one-process run stopped before the last step of its second epoch (a checkpoint at
    every step), in this process."""
    import dataclasses

    from racl.profiles import TRAIN_PROFILES
    from racl.training import AdversarialTrainer

    cfg = dataclasses.replace(TRAIN_PROFILES["smoke"], arch="RACL", dataset="cifar10-mini", max_train_images=224,
                              val_images=64, epochs=2, device="cpu", checkpoint_every=1, attack_steps=attack_steps)
    t = AdversarialTrainer(cfg, d, data_root, progress=False)
    assert t.fit(stop_after_steps=9) == {"stopped": True, "epoch": 1, "step": 4}
    return d


def last_step(base: Path, data_root: str, tmp_path: Path, *extra) -> tuple[dict, dict, dict]:
    """The weights before the last step, and after it in one process and in two."""
    import shutil

    for name in ("one", "two"):
        shutil.copytree(base, tmp_path / name)
    racl(*train_args(data_root), *extra, "--out", str(tmp_path / "one"))
    racl(*train_args(data_root), *extra, "--out", str(tmp_path / "two"), nproc=2)
    return weights(base), weights(tmp_path / "one"), weights(tmp_path / "two")


def relative_differences(w0, one, two) -> dict:
    """Per tensor: |one - two| over the step's change |one - w0| (running statistics: over |one|)."""
    assert one.keys() == two.keys()
    out = {}
    for k in one:
        if not one[k].is_floating_point():
            assert torch.equal(one[k], two[k]), k
            continue
        ref = one[k].norm() if "running" in k else (one[k] - w0[k]).norm()
        out[k] = ((one[k] - two[k]).norm() / ref.clamp_min(1e-20)).item()
    return out


def test_two_processes_take_the_step_of_one(data_root, tmp_path):
    """From the same checkpoint (epoch 2, step 5 of 5: a later step's data order,
    augmentation and random starts), the last step taken by one process and by two gloo
    processes, with the random starts as the training examples (``attack_steps=0``). Two
    ranks sum each gradient and BatchNorm statistic over their half-batches and all-reduce:
    the same sums in another order. A weight-gradient element of the smoke network sums up
    to n = 32 images x 32 x 32 positions = 32768 products, so reordering changes it by at
    most about n u = 2e-3 of its magnitude (u = 6e-8, fp32), typically sqrt(n) u = 1e-5.
    The bound checked is n u of each tensor's update (running statistics: of the
    statistic). A rank that trained on other rows, other random starts or its own BatchNorm
    statistics misses it by orders of magnitude.

    Why one step from equal weights: this training amplifies rounding differences (the smoke
    network after 10 steps differs by 14% of its change between one and two processes, and
    by the same 14% between one process on AVX-512 and on the portable kernels), so only one
    step from equal weights tests the arithmetic rather than chaos."""
    base = make_base(tmp_path / "base", data_root, 0)
    w0, one, two = last_step(base, data_root, tmp_path, "--set", "attack_steps=0")
    rel = relative_differences(w0, one, two)
    worst = max(rel, key=rel.get)
    assert rel[worst] <= 32 * 32 * 32 * 6e-8, (worst, rel[worst])
    prov = json.loads((tmp_path / "two" / "provenance.json").read_text())
    assert prov["world_size"] == 2 and prov["world_sizes"] == [2] and prov["sync_batchnorm"] is True
    m1, m2 = ([json.loads(l) for l in (tmp_path / n / "metrics.jsonl").read_text().splitlines()] for n in ("one", "two"))
    assert [r["epoch"] for r in m1] == [r["epoch"] for r in m2] == [0, 1]
    assert m1[0] == m2[0]  # the first epoch is the base run's, read back
    assert abs(m1[1]["train_loss"] - m2[1]["train_loss"]) <= 1e-5 * m1[1]["train_loss"]


def test_two_processes_take_the_pgd_step_of_one(data_root, tmp_path):
    """The same last step with the smoke profile's PGD-2 examples. PGD's sign steps turn a
    rounding difference in an input gradient near zero into a step of 2 alpha in that
    pixel, so a few pixels of the crafted batch may differ between the runs; each such
    pixel changes the gradient by about 1/(pixels of the batch) of its size. The bound, 5%
    of each tensor's update, allows a few hundred such pixels (of 98304) and no more: a rank
    that crafted its examples from other random starts or other rows differs by the order
    of the update itself."""
    base = make_base(tmp_path / "base", data_root, 2)
    rel = relative_differences(*last_step(base, data_root, tmp_path))
    worst = max(rel, key=rel.get)
    assert rel[worst] <= 0.05, (worst, rel[worst])


@pytest.fixture(scope="module")
def two(tmp_path_factory, data_root):
    """A whole two-process run (2 epochs)."""
    d = tmp_path_factory.mktemp("ddp") / "two"
    racl(*train_args(data_root), "--out", str(d), nproc=2)
    return d


def test_the_checkpoint_of_two_processes_loads_in_one(two):
    from racl.training import load_trained

    model, meta = load_trained(two)
    assert meta["complete"] and type(model.stem[1]) is torch.nn.BatchNorm2d


def test_a_killed_two_process_run_resumes_and_ends_identical(two, data_root, tmp_path):
    """Kill torchrun and both ranks once the first epoch's checkpoint is written, start the
    same command again, and compare with the uninterrupted two-process run: bit for bit."""
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "racl",
           *train_args(data_root), "--out", str(out)]
    p = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         start_new_session=True)
    t0 = time.time()
    while not (out / "checkpoint.pt").exists():
        assert p.poll() is None, f"the run ended before its first checkpoint: {p.stderr.read()[-3000:]}"
        assert time.time() - t0 < 600, "no checkpoint within 600 s"
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 1, "killed after the run had finished"
    r = racl(*train_args(data_root), "--out", str(out), nproc=2)
    assert "resuming" in r.stderr
    a, b = weights(out), weights(two)
    assert all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda t: [{k: v for k, v in json.loads(l).items() if k != "seconds"} for l in t.splitlines()]  # noqa: E731
    assert strip((out / "metrics.jsonl").read_text()) == strip((two / "metrics.jsonl").read_text())


def test_a_world_size_that_does_not_divide_the_batch_is_refused(tmp_path):
    r = racl(*TRAIN, "--set", "max_train_images=200", "--set", "batch_size=33", "--out", str(tmp_path / "r"), nproc=2, check=False)
    assert r.returncode != 0
    assert "error: a world size of 2 does not divide the batch of 33" in r.stderr
    assert not (tmp_path / "r").exists()


def test_a_rank_that_cannot_reach_the_others_stops_with_a_clear_error(tmp_path):
    """Rank 0 of 2 started alone: it waits for rank 1 for RACL_DIST_TIMEOUT seconds, then says so."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.time()
    r = racl(*TRAIN, "--out", str(tmp_path / "r"), check=False, RANK="0", WORLD_SIZE="2", LOCAL_RANK="0",
             MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RACL_DIST_TIMEOUT="3", timeout=120)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "error: rank 0 of 2 could not reach the others at 127.0.0.1" in r.stderr
    assert "within 3 s" in r.stderr
    assert time.time() - t0 < 90


# ---------------------------------------------------------------------- evaluation
def test_a_sharded_evaluation_gives_exactly_the_single_process_record(two, tmp_path):
    """Every attack of the smoke evaluation (AutoAttack and CW-L2 included), the sweeps and
    the sanity checks, on batches of 8: two ranks take alternate batches."""
    ev = ["evaluate", "--checkpoint", str(two), "--profile", "smoke", "--batch-size", "8", "--device", "cpu"]
    racl(*ev, "--out", str(tmp_path / "one.json"))
    racl(*ev, "--out", str(tmp_path / "two.json"), nproc=2)
    one, two = (json.loads((tmp_path / f).read_text()) for f in ("one.json", "two.json"))
    assert two["provenance"]["world_size"] == 2
    assert one["clean_correct"] == two["clean_correct"]
    assert one["attacks"].keys() == two["attacks"].keys() and "autoattack" in one["attacks"]
    for name in one["attacks"]:
        a, b = one["attacks"][name], two["attacks"][name]
        assert (a["correct"], a["acc"], a["n"]) == (b["correct"], b["acc"], b["n"]), name
    assert one["sweeps"] == two["sweeps"]
    assert one["same_examples"] == two["same_examples"]
    strip = lambda c: {k: v for k, v in c.items() if k not in ("max_abs_diff", "median_norm")}  # noqa: E731
    assert {k: strip(v) for k, v in one["sanity"].items()} == {k: strip(v) for k, v in two["sanity"].items()}
