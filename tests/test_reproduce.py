"""Running the plan (issue 11, parts 3-4): the local executor (submitit's LocalExecutor, one
process per job, the plan's dependencies respected) writes the records the sequential path
writes; a job stopped midway by submitit's preemption signal is requeued and resumes from its
checkpoint to the same weights; the Slurm submission of the paper plan asks for the GPUs, time
limits and ``afterok`` dependencies of the cost table (a fake ``sbatch`` on the PATH records
what submitit would give Slurm); ``--executor slurm`` without Slurm is one error line; the
dry run prints each job's cost and the total per table.

Records are compared with their timing and provenance fields left out, checkpoints by their
tensors; both runs write into the same folder (the first is moved away before the second), so
that even the paths inside configs must agree."""

import json
import os
import shutil
import signal
import stat
import threading
import time
from pathlib import Path

import pytest
import torch

from racl import cli
from racl.plan import Job, cost_table, plan, time_limit_min
from racl.reproduce import JobRun, SlurmOptions, _again, run_local, run_sequential, submit_slurm
from racl.profiles import get_profile

#: tiny jobs: two epochs of retraining on 96 images (a checkpoint every 2 steps of 3), two
#: cheap attacks on 16 examples
OVERRIDES = {"train": dict(epochs=2, max_train_images=96, val_images=0, attack_steps=1, layers=3, init_channels=4,
                           checkpoint_every=2),
             "eval": dict(attacks=("fgsm", "pgd20"), n=16, n_slow=16, batch_size=16, sanity=False, sanity_n=8,
                          sweep_eps=(0.03,), sweep_steps=(1, 2))}
#: fields that hold times, and the checkpoint's hash and size (a checkpoint holds its run's
#: metrics, with their seconds: its weights are compared instead)
# the checkpoint's pickle holds each epoch's seconds, and pickle's memo makes even its size
# depend on which of those floats happen to be equal: its hash and bytes vary with timing
TIMING = {"provenance", "seconds", "wall_time_s", "cpu_time_s", "checkpoint_sha256", "checkpoint_bytes"}


def smoke_jobs(runs: Path) -> list[Job]:
    """RACL's retraining, then its evaluation and the Table 5 transfer matrix (RACL against
    itself) side by side. (A search is left out: even one epoch of it takes minutes of CPU on
    a busy 2-core machine; the Slurm test below checks the search -> retraining dependency.)"""
    return plan("smoke", ["table1", "table5"], ["RACL"], (0,), "pgd", runs)


def strip(obj):
    if isinstance(obj, dict):
        return {k: strip(v) for k, v in obj.items() if k not in TIMING}
    if isinstance(obj, list):
        return [strip(v) for v in obj]
    return obj


def records(root: Path) -> dict:
    """Every JSON / JSONL record under ``root`` (timing and provenance left out), and every
    checkpoint's tensors."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.name == "provenance.json":  # when, where and how long: compared by nothing else
            continue
        if p.suffix == ".json":
            out[rel] = strip(json.loads(p.read_text()))
        elif p.suffix == ".jsonl":
            out[rel] = [strip(json.loads(line)) for line in p.read_text().splitlines() if line.strip()]
    return out


def checkpoint_tensors(path: Path) -> dict:
    s = torch.load(path, map_location="cpu", weights_only=False)
    return {k: v for k, v in s["model"].items()}


def same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def campaigns(tmp_path_factory):
    """The smoke campaign run sequentially in this process, then with the local executor
    (two workers) in the same folder; both trees and their wall times."""
    base = tmp_path_factory.mktemp("campaign")
    runs = base / "data" / "runs"
    threads = torch.get_num_threads()
    t0 = time.time()
    run_sequential(smoke_jobs(runs), "smoke", None, "cpu", OVERRIDES, progress=False, log=lambda *a: None)
    t_seq = time.time() - t0
    shutil.move(str(runs), str(base / "sequential"))
    t0 = time.time()
    status = run_local(smoke_jobs(runs), "smoke", base / "logs", None, "cpu", workers=2, overrides=OVERRIDES,
                       poll_s=0.1, log=lambda *a: None, threads=threads)
    t_local = time.time() - t0
    print(f"\nsmoke campaign: sequential {t_seq:.1f} s, local executor (2 workers) {t_local:.1f} s")
    return {"seq": base / "sequential", "local": runs, "logs": base / "logs", "status": status}


def test_local_executor_writes_the_records_of_the_sequential_path(campaigns):
    assert set(campaigns["status"].values()) == {"done"}, campaigns["status"]
    seq, loc = records(campaigns["seq"]), records(campaigns["local"])
    kinds = {k.split("/")[0] for k in seq}
    assert kinds == {"train", "eval", "transfer"}, sorted(seq)
    assert seq.keys() == loc.keys()
    for k in seq:
        assert loc[k] == seq[k], f"{k} differs between the sequential and the local campaign"
    for ckpt in campaigns["seq"].rglob("checkpoint.pt"):
        other = campaigns["local"] / ckpt.relative_to(campaigns["seq"])
        assert same_tensors(checkpoint_tensors(ckpt), checkpoint_tensors(other)), ckpt
    attacked = [p for p in campaigns["seq"].glob("*/*.json") if p.parent.name in ("eval", "transfer")]
    assert {p.parent.name for p in attacked} == {"eval", "transfer"}
    for p in attacked:
        prov = json.loads(p.read_text())["provenance"]  # taken before the attacks, finished after them
        assert prov["started"] <= prov["finished"] and prov["wall_time_s"] > 0 and prov["code"]["package"]
    for p in campaigns["seq"].glob("transfer/*.json"):  # per test image, and the accuracies are their means
        rec = json.loads(p.read_text())
        assert rec["correct"].keys() == rec["matrices"].keys()
        for attack, mat in rec["matrices"].items():
            for s, row in mat.items():
                for t, acc in row.items():
                    bits = rec["correct"][attack][s][t]
                    assert len(bits) == rec["n"] and bits.count("1") / rec["n"] == pytest.approx(acc)
    for j in smoke_jobs(campaigns["local"]):  # one log folder per job, with the job's own output
        logs = list((campaigns["logs"] / j.kind / j.name).glob("*_log.out"))
        assert logs and f"{j.key}: finished" in logs[0].read_text()


def test_an_outdated_evaluation_and_a_missing_checkpoint_are_run_again(campaigns, tmp_path):
    """Issue #14: an evaluation recorded before per-example results is to be run again, and
    so is the retraining it attacks when that run's checkpoint was not kept (committed
    without it); a retraining whose checkpoint no job to run needs stays done without it."""
    runs = tmp_path / "data" / "runs"  # as the first run's: the records name their runs relative to data/runs
    shutil.copytree(campaigns["seq"], runs)
    key = lambda jobs, kind: next(j for j in jobs if j.kind == kind and "table" not in j.name)  # noqa: E731
    ev = key(smoke_jobs(runs), "eval").path
    assert all(j.done() for j in smoke_jobs(runs))
    (key(smoke_jobs(runs), "train").path / "checkpoint.pt").unlink()
    assert all(j.done() for j in smoke_jobs(runs))  # every job that loads it is done
    old = json.loads(ev.read_text())
    del old["same_examples"], old["clean_correct"]
    ev.write_text(json.dumps(old))
    jobs = smoke_jobs(runs)
    train, evaluation = key(jobs, "train"), key(jobs, "eval")
    assert not evaluation.done() and "per-example" in evaluation.outdated()
    assert train.needs_checkpoint and not train.done()
    assert [j.key for j in jobs if not j.done()] == [train.key, evaluation.key]  # the transfer stays done
    assert "its checkpoint, which a job to run loads, is not here" in _again(train)
    # a retraining interrupted before it finished resumes from its checkpoint, or starts over without one
    prov = train.path / "provenance.json"
    finished = json.loads(prov.read_text())
    prov.write_text(json.dumps({k: v for k, v in finished.items() if k != "finished"}))
    assert _again(train) == "; interrupted before its first checkpoint (or failed): starts over"
    (train.path / "checkpoint.pt").write_bytes(b"")
    assert _again(train) == "; interrupted: resumes from its checkpoint"
    (train.path / "checkpoint.pt").unlink()
    prov.write_text(json.dumps(finished))
    run_sequential(jobs, "smoke", None, "cpu", OVERRIDES, progress=False, log=lambda *a: None)
    assert all(j.done() for j in smoke_jobs(runs))
    assert records(runs) == records(campaigns["seq"])  # the same records as the first time


def test_a_job_whose_prerequisite_failed_is_skipped(tmp_path):
    runs = tmp_path / "data" / "runs"
    jobs = [j for j in plan("smoke", ["table1"], ["RACL"], (0,), "pgd", runs)]
    over = {**OVERRIDES, "train": {**OVERRIDES["train"], "max_train_images": 8, "val_images": 8}}  # nothing left to train on
    status = run_local(jobs, "smoke", tmp_path / "logs", None, "cpu", workers=1, overrides=over, poll_s=0.1,
                       log=lambda *a: None)
    assert status["train/smoke-synthetic-racl-pgd-s0"].startswith("failed: ValueError: val_images=8 leaves nothing")
    assert status["eval/smoke-synthetic-racl-pgd-s0"] == "skipped: needs train/smoke-synthetic-racl-pgd-s0"



def test_local_runner_starts_evaluations_first_and_skips_what_was_recorded_meanwhile(tmp_path, monkeypatch):
    """run_local's order, with a stand-in executor whose jobs finish at once: among the jobs
    that could start, evaluations before retrainings (a finished retraining's numbers reach
    the tables first), otherwise the plan's order; a job whose record appears while the
    campaign runs (here: written by the stand-in when the first retraining ends) is not run."""
    import racl.reproduce as rp

    runs = tmp_path / "data" / "runs"
    jobs = [j for j in plan("smoke", ["table1"], ["RACL", "DARTS_V2"], (0,), "pgd", runs)
            if j.kind in ("train", "eval")]
    trains = [j for j in jobs if j.kind == "train"]
    evals = [j for j in jobs if j.kind == "eval"]
    assert len(trains) == len(evals) == 2
    started = []

    class Done:  # a submitted job that has finished
        def __init__(self, job):
            self.job = job

        def done(self):
            return True

        def result(self):
            if self.job.key == trains[0].key:  # meanwhile, someone records the second retraining
                prov = trains[1].path / "provenance.json"
                prov.parent.mkdir(parents=True, exist_ok=True)
                prov.write_text(json.dumps({"finished": "now"}))
                (trains[1].path / "checkpoint.pt").write_bytes(b"")

    class Executor:
        def __init__(self, folder, max_num_timeout):
            pass

        def update_parameters(self, **kw):
            pass

        def submit(self, run):
            started.append(run.job.key)
            return Done(run.job)

    monkeypatch.setattr(rp.submitit, "LocalExecutor", Executor)
    lines = []
    status = run_local(jobs, "smoke", tmp_path / "logs", None, "cpu", workers=1, poll_s=0.01, log=lines.append)
    assert started == [trains[0].key, evals[0].key, evals[1].key], started
    assert status == {j.key: "done" for j in jobs}
    assert f"recorded meanwhile train {trains[1].name}: not run again" in lines

def _task_pid(controller_pid: int) -> int:
    """The job's process: the child of submitit's local controller."""
    for _ in range(600):
        kids = []
        for t in Path(f"/proc/{controller_pid}/task").iterdir():
            kids += (t / "children").read_text().split()
        if kids:
            return int(kids[0])
        time.sleep(0.05)
    raise AssertionError("submitit's controller started no job process")


def test_a_preempted_job_is_requeued_and_resumes(tmp_path):
    """submitit's preemption / timeout signal (USR2) reaches the job after its first
    checkpoint: JobRun.checkpoint resubmits it, submitit requeues it, and it resumes from the
    checkpoint to the weights of a run that was never stopped."""
    runs = tmp_path / "data" / "runs"
    over = {**OVERRIDES, "train": {**OVERRIDES["train"], "epochs": 3, "checkpoint_every": 1}}
    job = [j for j in plan("smoke", ["table1"], ["RACL"], (0,), "pgd", runs) if j.kind == "train"]
    run_sequential(job, "smoke", None, "cpu", over, progress=False, log=lambda *a: None)
    shutil.move(str(runs), str(tmp_path / "reference"))
    ckpt = job[0].path / "checkpoint.pt"
    sent = {}

    def preempt(j, sj):
        def wait_and_signal():
            pid = _task_pid(sj._process.pid)
            for _ in range(6000):
                if ckpt.exists():
                    os.kill(pid, signal.SIGUSR2)
                    sent["at"] = torch.load(ckpt, map_location="cpu", weights_only=False)["step"]
                    return
                time.sleep(0.01)
        threading.Thread(target=wait_and_signal, daemon=True).start()

    status = run_local(job, "smoke", tmp_path / "logs", None, "cpu", workers=1, overrides=over, poll_s=0.1,
                       log=lambda *a: None, on_start=preempt, threads=torch.get_num_threads())
    assert status == {job[0].key: "done"}
    out = "".join(p.read_text() for p in (tmp_path / "logs" / "train").rglob("*_log.out"))
    err = "".join(p.read_text() for p in (tmp_path / "logs" / "train").rglob("*_log.err"))
    logs = out + err
    assert "at" in sent  # the signal went out after a checkpoint of the first run
    assert "this job is preempted" in logs and "Requeued job" in logs, logs[-2000:]
    assert f"{job[0].key}: resuming from {ckpt}" in out, out
    assert "epoch 1/" in err and "\r" not in err, err[-2000:]  # the training's progress, as whole lines
    ref = tmp_path / "reference" / "train" / job[0].name
    assert records(ref) == records(job[0].path)
    assert same_tensors(checkpoint_tensors(ref / "checkpoint.pt"), checkpoint_tensors(ckpt))


# ---------------------------------------------------------------------- Slurm (a fake sbatch)
FAKE_SBATCH = """#!/bin/sh
# records the submission script and answers like sbatch
n=$(cat "$FAKE_SLURM/next" 2>/dev/null || echo 1000)
echo $((n + 1)) > "$FAKE_SLURM/next"
cp "$1" "$FAKE_SLURM/job$n.sh"
echo "Submitted batch job $n"
"""
FAKE_SQUEUE = """#!/bin/sh
cat "$FAKE_SLURM/active" 2>/dev/null
"""
#: a benchmark record of a made-up GPU: paper-profile supernet steps and the 20-cell
#: network's MART PGD-10 step at batch 128
STEP = {"weight_step_s": 0.1, "racl_arch_step_s": 0.3, "lipschitz_power_iteration_s": 0.05, "pgd10": 0.5}


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for name, text in (("sbatch", FAKE_SBATCH), ("squeue", FAKE_SQUEUE), ("srun", "#!/bin/sh\nexit 0\n")):
        (bin_ / name).write_text(text)
        (bin_ / name).chmod((bin_ / name).stat().st_mode | stat.S_IEXEC)
    state = tmp_path / "slurm"
    state.mkdir()
    monkeypatch.setenv("PATH", f"{bin_}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM", str(state))
    return state


@pytest.fixture
def bench_runs(tmp_path):
    runs = tmp_path / "data" / "runs"
    rec = {"device": {"gpu": "Test GPU", "device": "cuda"}, "date": "2026-01-01",
           "argv": ["--part", "search,train", "--profile", "paper", "--batch", "128", "--train-batch", "128"],
           "results": {"search/baseline": {"weight_step_s": STEP["weight_step_s"], "racl_arch_step_s": STEP["racl_arch_step_s"],
                                           "lipschitz_power_iteration_s": STEP["lipschitz_power_iteration_s"],
                                           "config": {"profile": "paper", "batch": 128, "C": 16, "layers": 8, "K": 4,
                                                      "dataset": "cifar10"}},
                       "train/baseline": {"racl_20cell_pgd10_step_s": STEP["pgd10"]}}}
    (runs / "bench").mkdir(parents=True)
    (runs / "bench" / "test-gpu.json").write_text(json.dumps(rec))
    return runs


#: the paper's search (Sec. 4.1: 50 epochs, 15 of them warm-up, half of CIFAR-10's 50,000
#: images for the weights at batch 128) and retraining (100 epochs of 50,000 images at 128)
SEARCH_H = (25000 // 128) * (50 * STEP["weight_step_s"] + 35 * STEP["racl_arch_step_s"]) / 3600
TRAIN_H = 100 * (50000 // 128) * STEP["pgd10"] / 3600


def sbatch_flags(script: str) -> dict:
    return dict(line[len("#SBATCH --"):].split("=", 1) if "=" in line else (line[len("#SBATCH --"):], True)
                for line in script.splitlines() if line.startswith("#SBATCH --"))


def test_slurm_submission_of_the_paper_plan(fake_slurm, bench_runs, tmp_path):
    jobs = plan("paper", ["table8", "table5"], None, (0,), "mart", bench_runs)
    opts = SlurmOptions(partition="gpu", max_hours=24, cost_device="Test GPU", setup=["module load cuda"])
    ids = submit_slurm(jobs, "paper", tmp_path / "logs", opts, log=lambda *a: None)
    assert len(ids) == len(jobs) == len(list(fake_slurm.glob("job*.sh")))
    by_id = {v: k for k, v in ids.items()}
    flags = {by_id[p.stem[3:]]: sbatch_flags(p.read_text()) for p in fake_slurm.glob("job*.sh")}
    scripts = {by_id[p.stem[3:]]: p.read_text() for p in fake_slurm.glob("job*.sh")}
    for j in jobs:
        f = flags[j.key]
        if j.kind == "select":  # the random search's choice reads records: no GPU, one core
            assert "gpus-per-node" not in f and f["cpus-per-task"] == "1" and f["time"] == str(time_limit_min(0.0, 24))
        else:
            assert f["gpus-per-node"] == "1" and f["cpus-per-task"] == "8" and f["mem"] == "32GB"
        assert f["partition"] == "gpu"
        assert f["signal"] == "USR2@120" and f["kill-on-invalid-dep"] == "yes"  # submitit requeues on USR2
        assert f["job-name"] == f"racl-{j.kind}-{j.name}"
        assert f["output"].startswith(str(tmp_path / "logs" / j.kind / j.name) + "/")  # one log folder per job
        assert "module load cuda" in scripts[j.key]
        deps = f.get("dependency")
        assert deps == ("afterok:" + ":".join(ids[n] for n in j.needs) if j.needs else None), (j.key, deps)
    search = next(j for j in jobs if j.kind == "search")
    searched = next(j for j in jobs if j.kind == "train" and j.needs == (search.key,))
    select = next(j for j in jobs if j.kind == "select")
    assert flags[select.key]["dependency"] == "afterok:" + ":".join(ids[f"train/{n}"] for n in select.spec["candidates"])
    retrain = next(j for j in jobs if j.kind == "train" and j.needs == (select.key,))
    assert flags[retrain.key]["dependency"] == f"afterok:{ids[select.key]}"
    transfer = next(j for j in jobs if j.kind == "transfer")
    assert flags[searched.key]["dependency"] == f"afterok:{ids[search.key]}"
    assert len(transfer.needs) == 5 and all(n.startswith("train/") for n in transfer.needs)
    # time limits: 1.5 x the estimate + 15 min from the benchmark record; 24 h where unknown
    assert flags[search.key]["time"] == str(time_limit_min(SEARCH_H, 24)) == "91"
    assert flags[searched.key]["time"] == str(time_limit_min(TRAIN_H, 24)) == "503"
    evaluation = next(j for j in jobs if j.kind == "eval")
    assert flags[evaluation.key]["time"] == str(24 * 60)  # no benchmark of its attacks in this record
    assert flags[transfer.key]["time"] == str(24 * 60)


def test_slurm_data_parallel_jobs_ask_for_n_gpus_and_n_tasks(fake_slurm, bench_runs, tmp_path):
    """--gpus-per-job 4: retrainings, evaluations and transfers take 4 GPUs, 4 tasks (one per
    GPU, joined by torch.distributed through submitit's environment), 4 x the memory and a
    time limit from a quarter of the estimate; searches and the selection stay as they were."""
    jobs = plan("paper", ["table8", "table5"], None, (0,), "mart", bench_runs)
    opts = SlurmOptions(partition="gpu", max_hours=24, cost_device="Test GPU", gpus_per_job=4)
    ids = submit_slurm(jobs, "paper", tmp_path / "logs", opts, log=lambda *a: None)
    by_id = {v: k for k, v in ids.items()}
    flags = {by_id[p.stem[3:]]: sbatch_flags(p.read_text()) for p in fake_slurm.glob("job*.sh")}
    kinds = set()
    for j in jobs:
        f = flags[j.key]
        kinds.add(j.kind)
        if j.kind in ("train", "eval", "transfer"):
            assert (f["gpus-per-node"], f["ntasks-per-node"], f["mem"]) == ("4", "4", "128GB"), j.key
        elif j.kind == "search":
            assert (f["gpus-per-node"], f["ntasks-per-node"], f["mem"]) == ("1", "1", "32GB"), j.key
        else:
            assert "gpus-per-node" not in f and f["ntasks-per-node"] == "1"
    assert kinds == {"search", "train", "eval", "transfer", "select"}
    searched = next(j for j in jobs if j.kind == "train" and j.needs and j.needs[0].startswith("search/"))
    assert flags[searched.key]["time"] == str(time_limit_min(TRAIN_H / 4, 24))


def test_reproduce_and_search_refuse_to_run_under_torchrun(monkeypatch, tmp_path, capsys):
    """torchrun would start every job on every rank: reproduce and the search say so."""
    from racl.distributed import DistributedError
    from racl.search import RACLSearch

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    rc = cli.main(["reproduce", "--profile", "smoke", "--runs", str(tmp_path / "runs")])
    assert rc == 2 and "error: reproduce starts its own jobs: run it in one process" in capsys.readouterr().err
    with pytest.raises(DistributedError, match="the search runs in one process"):
        RACLSearch(get_profile("smoke"), None, progress=False)
    assert not (tmp_path / "runs").exists()


def test_a_campaign_is_resubmitted_without_duplicates(fake_slurm, bench_runs, tmp_path):
    jobs = plan("paper", ["table2"], ["RACL", "resnet18"], (0,), "mart", bench_runs)
    ids = submit_slurm(jobs, "paper", tmp_path / "logs", SlurmOptions(), log=lambda *a: None)
    assert len(list(fake_slurm.glob("job*.sh"))) == len(jobs) == 4  # retraining and evaluation of each
    # RACL's retraining and evaluation still queued; ResNet-18's retraining finished, its
    # evaluation failed (gone from the queue, no record): only that one is submitted again
    racl = [k for k in ids if "racl" in k]
    (fake_slurm / "active").write_text("\n".join(ids[k] for k in racl) + "\n")
    done = next(j for j in jobs if j.kind == "train" and "resnet18" in j.name)
    done.path.mkdir(parents=True)
    (done.path / "provenance.json").write_text(json.dumps({"finished": "2026-01-01T00:00:00+00:00"}))
    (done.path / "checkpoint.pt").write_bytes(b"")  # the evaluation to submit again loads it
    again = submit_slurm(plan("paper", ["table2"], ["RACL", "resnet18"], (0,), "mart", bench_runs), "paper",
                         tmp_path / "logs", SlurmOptions(), log=lambda *a: None)
    assert len(list(fake_slurm.glob("job*.sh"))) == len(jobs) + 1
    assert {k: again[k] for k in racl} == {k: ids[k] for k in racl}
    new = again["eval/paper-cifar10-resnet18-mart-s0"]
    assert new not in ids.values() and "dependency" not in sbatch_flags((fake_slurm / f"job{new}.sh").read_text())
    manifest = json.loads((tmp_path / "logs" / "slurm-jobs.json").read_text())
    assert manifest["eval/paper-cifar10-resnet18-mart-s0"]["job_id"] == new


def test_slurm_requeues_through_the_jobs_checkpoint(tmp_path):
    j = Job("train", "x", {}, (), tmp_path)
    run = JobRun(j, "paper", None, "cuda", {"train": {"epochs": 2}})
    again = run.checkpoint()
    assert again.function is run and again.args == () and again.kwargs == {}


def test_slurm_without_slurm_is_one_error_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, no srun
    rc = cli.main(["reproduce", "--profile", "smoke", "--executor", "slurm", "--runs", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert err[0].startswith("error: --executor slurm needs Slurm, but sbatch and srun are not on the PATH")
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------------- dry run
def test_dry_run_prints_every_job_and_the_total_per_table(bench_runs, capsys):
    rc = cli.main(["reproduce", "--profile", "paper", "--targets", "table7,table1,fig5", "--archs", "RACL", "--method", "mart",
                   "--runs", str(bench_runs), "--dry-run", "--cost-device", "Test GPU"])
    out = capsys.readouterr().out
    assert rc == 0
    rows, totals = cost_table("paper", ["table7", "table1", "fig5"], "Test GPU", ["RACL"], None, "mart", runs=bench_runs)
    # without --seeds, Table 7 and Fig. 5 run at seeds 0, 1, 2 and Table 1 at seed 0: RACL
    # retrained on CIFAR-10 at three seeds (the paper profile's evaluation already attacks more
    # than Table 7's minimum, so Table 1's seed-0 evaluation serves Table 7 too), on CIFAR-100
    # and Tiny-ImageNet at seed 0; an evaluation of each; three searches for Fig. 5
    assert len(rows) == 13 and [r["kind"] for r in rows].count("eval") == 5 and [r["kind"] for r in rows].count("search") == 3
    for r in rows:
        assert f"todo  {r['kind']:8s} {r['job']}" in out
    by_job = {f"{r['kind']}/{r['job']}": r["gpu_hours"] for r in rows}
    assert by_job["search/paper-cifar10-racl-s2"] == pytest.approx(SEARCH_H)
    assert by_job["train/paper-cifar10-racl-mart-s1"] == pytest.approx(TRAIN_H)
    assert by_job["train/paper-tinyimagenet-racl-mart-s0"] is None  # 64x64 images: not the benchmarked network
    t7 = next(t for t in totals if t["table"] == "table7")
    assert t7["gpu_hours"] is None and t7["known_gpu_hours"] == pytest.approx(3 * TRAIN_H)
    assert t7["unknown_jobs"] == 3  # the evaluations: sanity checks and AutoAttack were not benchmarked
    assert f"{3 * TRAIN_H:.3g} known, 3 jobs unknown" in out
    f5 = next(t for t in totals if t["table"] == "fig5")
    assert f5["gpu_hours"] == pytest.approx(3 * SEARCH_H)
    assert "estimated GPU-hours on Test GPU" in out


def test_threads_reach_the_local_executor_and_are_checked(monkeypatch, tmp_path, capsys):
    """``--threads`` sets each local CPU job's threads (``--workers 1 --threads 1`` leaves a
    core free); it is refused below 1 or with another executor, before anything runs."""
    import racl.reproduce as rp

    seen = {}
    monkeypatch.setattr(rp, "run_local", lambda jobs, *a, **kw: seen.update(kw) or {})
    runs = str(tmp_path / "runs")
    assert cli.main(["reproduce", "--profile", "smoke", "--targets", "table5", "--executor", "local", "--workers", "1",
                     "--threads", "1", "--runs", runs]) == 0
    assert seen["threads"] == 1
    for bad, says in ((["--executor", "local", "--threads", "0"], "--threads must be at least 1, got 0"),
                      (["--threads", "1"], "--threads applies to --executor local only (got --executor sequential)")):
        assert cli.main(["reproduce", "--profile", "smoke", "--runs", runs, *bad]) == 2
        assert says in capsys.readouterr().err
    with pytest.raises(ValueError, match="threads must be at least 1"):
        run_local([], "smoke", tmp_path / "logs", None, "cpu", workers=1, threads=0)


def test_dry_run_costs_on_the_threads_each_local_job_runs_with(monkeypatch, tmp_path):
    """Finished runs are filed under 'CPU (N threads)'; a dry run of ``--executor local
    --workers 2 --threads 1`` must cost on the single-thread label, not the machine's."""
    import racl.reproduce as rp

    seen = []
    monkeypatch.setattr(rp, "print_cost", lambda profile, targets, device, *a, **kw: seen.append(device))
    monkeypatch.setattr(rp.os, "cpu_count", lambda: 8)
    base = ["reproduce", "--profile", "smoke", "--targets", "table5", "--runs", str(tmp_path / "runs"), "--dry-run",
            "--device", "cpu"]
    assert cli.main(base + ["--executor", "local", "--workers", "2", "--threads", "1"]) == 0
    assert cli.main(base + ["--executor", "local", "--workers", "2"]) == 0  # default: cores / workers
    assert cli.main(base + ["--cost-device", "Some GPU"]) == 0
    assert [d.rsplit("(", 1)[-1] for d in seen[:2]] == ["1 threads)", "4 threads)"]
    assert seen[2] == "Some GPU"
    assert rp.cpu_slots(None, None) == (4, 2) and rp.cpu_slots(3, None) == (3, 2)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


STOPPED_SCRIPT = """
import sys, torch
from pathlib import Path
from racl.plan import plan
from racl.reproduce import run_local
runs, logs = Path(sys.argv[1]), Path(sys.argv[2])
over = {"train": dict(epochs=1000, max_train_images=96, val_images=0, attack_steps=1, layers=3, init_channels=4)}
job = [j for j in plan("smoke", ["table1"], ["RACL"], (0,), "pgd", runs) if j.kind == "train"]
run_local(job, "smoke", logs, None, "cpu", workers=1, overrides=over, poll_s=0.1, threads=1,
          log=lambda m: print(m, flush=True), on_start=lambda j, sj: print("controller", sj._process.pid, flush=True))
"""


@pytest.mark.parametrize("sigint", ["default", "ignored"])
def test_kill_of_a_local_campaign_stops_its_jobs(tmp_path, sigint):
    """``kill <pid>`` (SIGTERM) of a local campaign cancels its running jobs, as Ctrl-C does:
    submitit's job process ignores SIGTERM (Slurm's preemption sends it to every process), so
    without :func:`racl.reproduce.stop_on_signals` the jobs ran on after the campaign died.
    Also for a campaign started in the background by a script, which inherits SIGINT ignored
    (``cancel`` sends SIGINT: its jobs would ignore it too)."""
    import subprocess
    import sys
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint == "ignored" else None
    proc = subprocess.Popen([sys.executable, "-c", STOPPED_SCRIPT, str(tmp_path / "runs"), str(tmp_path / "logs")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=Path(__file__).resolve().parents[1], preexec_fn=ignore)
    out = []
    try:
        for line in proc.stdout:
            out.append(line)
            if line.startswith("controller "):
                controller = int(line.split()[1])
                break
        else:
            raise AssertionError("no job started:\n" + "".join(out))
        task = _task_pid(controller)
        time.sleep(1.0)  # the job is running (importing, loading data or training)
        assert _alive(task)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        for _ in range(600):
            if not _alive(task) and not _alive(controller):
                break
            time.sleep(0.1)
        outlived = [p for p in (task, controller) if _alive(p)]
        for p in outlived:
            os.kill(p, signal.SIGKILL)
        out.append(proc.stdout.read())  # at its end once no job process holds the pipe
    finally:
        if proc.poll() is None:
            proc.kill()
    log = "".join(out)
    assert not outlived, "the job outlived its campaign:\n" + log
    assert proc.returncode == 128 + signal.SIGTERM, log
    assert "stopped: cancelled train/smoke-synthetic-racl-pgd-s0; run the same command again to resume" in log, log


def test_table4_costs_come_from_a_benchmark_of_resnet110(tmp_path):
    """bench.py --human-archs resnet110 --attack-archs cells,resnet110 times Table 4's source:
    its retraining costs its step times its steps, the transfer matrix the three attacks
    crafted on it per example (the targets' classification left out); a record that timed
    only the cell network leaves both unknown."""
    runs = tmp_path / "data" / "runs"
    (runs / "bench").mkdir(parents=True)
    step, atk = {"fgsm": 0.2, "mim20": 3.0, "pgd20": 2.8}, 0.9
    rec = {"device": {"gpu": "Test GPU", "device": "cuda"}, "date": "2026-01-02",
           "argv": ["--part", "train,attacks", "--train-batch", "128", "--attack-batch", "64",
                    "--human-archs", "resnet18,resnet-110", "--attack-archs", "cells,resnet110"],
           "results": {"train/baseline": {"racl_20cell_pgd10_step_s": 0.5, "resnet110_pgd10_step_s": atk},
                       "attacks/baseline": {**{f"{a}_s": 1.0 for a in step},
                                            **{f"resnet110_{a}_s": t for a, t in step.items()}}}}
    (runs / "bench" / "test-gpu.json").write_text(json.dumps(rec))
    rows, _ = cost_table("paper", ["table4"], "Test GPU", ["RACL"], None, "mart", runs=runs)
    by_job = {f"{r['kind']}/{r['job']}": r["gpu_hours"] for r in rows}
    assert by_job["train/paper-cifar10-resnet110-mart-s0"] == pytest.approx(100 * (50000 // 128) * atk / 3600)
    assert by_job["transfer/paper-cifar10-table4"] == pytest.approx(sum(step.values()) * 10000 / 64 / 3600)
    # the cell network's attack times do not stand in for ResNet-110's
    rec["argv"] = rec["argv"][:-2]
    rec["results"]["attacks/baseline"] = {f"{a}_s": 1.0 for a in step}
    (runs / "bench" / "test-gpu.json").write_text(json.dumps(rec))
    rows, _ = cost_table("paper", ["table4"], "Test GPU", ["RACL"], None, "mart", runs=runs)
    assert {f"{r['kind']}/{r['job']}": r["gpu_hours"] for r in rows}["transfer/paper-cifar10-table4"] is None


def test_search_costs_come_from_a_benchmark_of_whole_search_epochs(tmp_path):
    """A record that timed whole search epochs (bench.py --part epoch) of the paper's supernet
    costs a paper search: the mode with the config's switches, its step time times every
    epoch's iterations (an upper bound: the warm-up epochs are weight steps alone); a
    supernet of other sizes, or switches it did not time, leave the search unknown."""
    runs = tmp_path / "data" / "runs"
    (runs / "bench").mkdir(parents=True)
    conf = {"profile": "paper", "batch": 128, "C": 16, "layers": 8, "K": 4, "dataset": "cifar10-mini",
            "lipschitz_every": 1}
    rec = {"device": {"gpu": "Test GPU", "device": "cuda"}, "date": "2026-01-02", "argv": ["--part", "epoch"],
           "results": {"epoch/baseline": {"paper": {"pcdarts": {"step_s": 0.5}, "racl": {"step_s": 10.0},
                                                    "racl_fast": {"step_s": 2.0}, "config": conf}}}}
    (runs / "bench" / "test-gpu.json").write_text(json.dumps(rec))
    rows, _ = cost_table("paper", ["fig5"], "Test GPU", ["RACL"], None, "mart", runs=runs)
    searches = [r["gpu_hours"] for r in rows if r["kind"] == "search"]
    assert searches and all(h == pytest.approx(50 * (25000 // 128) * 10.0 / 3600) for h in searches)
    from racl.plan import _search_hours, bench_for
    from racl.profiles import get_profile

    recs = bench_for("Test GPU", runs)
    fast = get_profile("paper", {"arch_update": "joint", "grad_norm_grad": "finite_difference",
                                 "power_iteration_fused": True})
    assert _search_hours(fast, recs) == pytest.approx(50 * (25000 // 128) * 2.0 / 3600)
    assert _search_hours(get_profile("paper", {"lipschitz_method": "lanczos"}), recs) is None  # not timed
    assert _search_hours(get_profile("paper", {"init_channels": 36}), recs) is None  # another supernet
