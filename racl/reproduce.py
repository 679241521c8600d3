"""Run the jobs the paper's tables need: in this process, side by side on this machine, or on
a Slurm cluster.

    python -m racl reproduce --profile mini --targets table1,table5                     # in order, here
    python -m racl reproduce --profile mini --targets table1,table5 --executor local --workers 2
    python -m racl reproduce --profile paper --targets table1,table4 --executor slurm --slurm-partition gpu
    python -m racl reproduce --profile paper --targets table1,table4 --dry-run          # the jobs and their cost

:func:`racl.plan.plan` lists the jobs (searches, retrainings, the random search's selection,
evaluations, transfer matrices) and which job needs which; this module runs them. Every job writes its record
under ``data/runs`` (``--runs``), where the book reads it; a job whose record is there is
skipped, and a search or retraining that was stopped resumes from its run directory's last
checkpoint and reaches the same result, so running the same command again resumes a
campaign wherever it stopped. Three executors:

* ``sequential`` (the default): one job after the other in this process (:func:`run_job`);
* ``local``: every job in its own process through submitit's ``LocalExecutor``, as many at
  a time as there are GPUs (one job per GPU, ``CUDA_VISIBLE_DEVICES`` set by submitit) or,
  on the CPU, ``--workers N`` (each with ``cores / N`` threads, or ``--threads``); a job starts once the jobs
  it needs have finished, a job whose prerequisite failed is skipped, logs go to one folder
  per job under ``--log-dir``;
* ``slurm``: every job not yet done is submitted through submitit's ``SlurmExecutor`` with
  ``--dependency=afterok`` on the jobs it needs, GPUs, CPU cores and memory per job kind
  (:data:`racl.plan.RESOURCES`) and a time limit from the job's estimated cost
  (:func:`racl.plan.time_limit_min`). On a timeout or a preemption submitit calls
  :meth:`JobRun.checkpoint`, which resubmits the same job; it resumes from its checkpoint.
  The Slurm ids go to ``<log-dir>/slurm-jobs.json``; submitting again skips the jobs whose
  record is written and the jobs still queued or running there.

``--kinds train`` (the sequential executor) runs only the jobs of those kinds, and
``--time-budget SECONDS`` only those whose estimated time fits what is left of it
(:func:`run_sequential`): how a GPU lent for a few minutes turns out whole retrainings
(``benchmarks/device_campaign.sh``).

``--dry-run`` prints the plan with each job's estimated GPU-hours on a device from the
committed benchmark records (:func:`racl.plan.cost_table`; "unknown" where no record of
that device timed the job's computation) and the total per table, and runs nothing.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import submitit
import torch

from . import distributed
from .attacks import make_attack
from .data import load_dataset
from .evaluation import evaluate_run, transfer_accuracy, transfer_correct
from .plan import (DEFAULT_ARCHS, FILE_KINDS, KINDS, RESOURCES, TARGETS, Job, cost_table, estimate, format_hours, job_config,
                   plan, run_devices, time_limit_min)
from .profiles import ABLATIONS, DATASETS, DEFAULT_SEEDS, ablation_config, slug
from .random_search import random_genotype, select_run
from .records import finish_provenance, hardware, provenance, read_json, resolve_device, write_json
from .report import RUNS, hardware_label
from .search import RACLSearch
from .training import AdversarialTrainer, load_trained

# names other modules and the book imported from here before racl.plan and racl.profiles held them
__all__ = ["ABLATIONS", "DATASETS", "DEFAULT_ARCHS", "Job", "JobRun", "ablation_config", "plan", "random_genotype",
           "run_job", "run_local", "run_sequential", "submit_slurm"]
_slug = slug

EXECUTORS = ("sequential", "local", "slurm")
#: job kinds that run data-parallel over several GPUs (racl.distributed)
DATA_PARALLEL_KINDS = ("train", "eval", "transfer")
#: how long a local job may run before submitit's timeout signal (it is then requeued from
#: its checkpoint, like a Slurm timeout): a week
LOCAL_TIMEOUT_MIN = 7 * 24 * 60


class SlurmUnavailable(OSError):
    """``--executor slurm`` on a machine without Slurm's commands (an ``OSError``, like a
    missing program: the command line prints its one line)."""


# ---------------------------------------------------------------------- one job
def run_job(job: Job, profile: str, data_root=None, device="auto", progress=True, overrides: Optional[dict] = None) -> None:
    """Run one job in this process (its config: :func:`racl.plan.job_config`). Under several
    processes (a data-parallel Slurm job) retrainings, evaluations and transfer matrices are
    shared out among them; searches and selections run in one process only."""
    if job.kind in ("search", "select") and distributed.shard().active:
        raise distributed.DistributedError(f"{job.key}: a {job.kind} runs in one process; give it one task")
    cfg = job_config(job, profile, overrides, device)
    if job.kind == "search":
        RACLSearch(cfg, job.path, data_root, progress).fit()
    elif job.kind == "train":
        AdversarialTrainer(cfg, job.path, data_root, progress).fit()
    elif job.kind == "eval":
        evaluate_run(Path(job.runs) / "train" / job.spec["run"], cfg, job.path, None, data_root, device=device,
                     progress=progress, overwrite=job.outdated() is not None)
    elif job.kind == "transfer":
        run_transfer(job, profile, data_root, device, overrides)
    elif job.kind == "select":
        select_run([Path(job.runs) / "train" / n for n in job.spec["candidates"]], job.path, profile, job.spec["dataset"],
                   job.spec["seed"])
    else:
        raise ValueError(f"unknown job kind {job.kind!r}")


def run_transfer(job: Job, profile: str, data_root=None, device="auto", overrides: Optional[dict] = None) -> dict:
    """A transfer matrix (Tables 4-6): each source's adversarial examples against each target,
    as accuracies (``matrices``) and per test image (``correct``: 0/1 strings in the order of
    the first n test images, for the paired comparisons of :mod:`racl.report`).
    Under torchrun (or a data-parallel Slurm job) the batches are shared out among the ranks
    (:func:`racl.evaluation.per_batch`) and rank 0 writes the record."""
    t0, c0 = time.time(), time.process_time()
    shard, dev = distributed.init(resolve_device(device))
    cfg = job_config(job, profile, overrides, device)
    ds = load_dataset(job.spec["dataset"], "test", data_root)
    x, y = ds.x[: cfg.n].float().div(255).to(dev), ds.y[: cfg.n].to(dev)
    prov = provenance(profile, ds.name, cfg.seed, dev, data_source=ds.source)  # before the attacks: the code that runs
    models = {a: load_trained(Path(job.runs) / "train" / n, dev)[0] for a, n in {**job.spec["targets"], **job.spec["sources"]}.items()}
    out = {"sources": list(job.spec["sources"]), "targets": list(job.spec["targets"]), "n": len(y), "matrices": {},
           "correct": {}, "runs": {**job.spec["targets"], **job.spec["sources"]}}
    for attack in job.spec["attacks"]:
        torch.manual_seed(cfg.seed)
        bits = transfer_correct(models, x, y, make_attack(attack, cfg.epsilon), cfg.batch_size)
        out["correct"][attack] = {s: {t: bits[s][t] for t in job.spec["targets"]} for s in job.spec["sources"]}
        out["matrices"][attack] = transfer_accuracy(out["correct"][attack])
    out["provenance"] = {**finish_provenance(prov, time.time() - t0), "cpu_time_s": round(time.process_time() - c0, 2)}
    if shard.active:
        out["provenance"]["world_size"] = shard.world_size
    if shard.main:
        write_json(job.path, out)
    distributed.barrier()
    return out


class JobRun(submitit.helpers.Checkpointable):
    """A job as submitit runs it (in a process of its own, locally or on a Slurm node).
    ``checkpoint`` is submitit's requeue protocol: on a timeout or a preemption it is called
    in the running job and returns the same job to submit again, which resumes from the
    run directory's last checkpoint (an evaluation from its last finished attack, see
    :func:`racl.evaluation.evaluate`; a transfer matrix, which writes its record only at the
    end, starts again)."""

    def __init__(self, job: Job, profile: str, data_root=None, device: str = "auto", overrides: Optional[dict] = None,
                 threads: Optional[int] = None):
        self.job, self.profile, self.data_root, self.device = job, profile, data_root, device
        self.overrides, self.threads = overrides or {}, threads

    def __call__(self) -> str:
        if self.threads:
            torch.set_num_threads(self.threads)
        if submitit.JobEnvironment().num_tasks > 1:
            # a data-parallel job (--gpus-per-job N): one task per GPU, joined by torch.distributed
            # (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), as torchrun would set them
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        if self.job.done():
            print(f"{self.job.key}: already done", flush=True)
        else:
            ckpt = self.job.path / "checkpoint.pt" if self.job.kind in ("search", "train") else None
            print(f"{self.job.key}: " + (f"resuming from {ckpt}" if ckpt and ckpt.exists() else "starting"), flush=True)
            run_job(self.job, self.profile, self.data_root, self.device, True, self.overrides)  # bars: records.progress
            print(f"{self.job.key}: finished", flush=True)
        return self.job.key

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        return submitit.helpers.DelayedSubmission(self)


# ---------------------------------------------------------------------- executors
def _check_needs(jobs: list[Job]) -> None:
    keys = {j.key for j in jobs}
    for j in jobs:
        missing = [n for n in j.needs if n not in keys]
        if missing:
            raise ValueError(f"job {j.key} needs {', '.join(missing)}, which is not in the plan")


def run_sequential(jobs: list[Job], profile: str, data_root=None, device="auto", overrides: Optional[dict] = None,
                   progress: bool = True, log=print, kinds: Optional[list[str]] = None,
                   time_budget_s: Optional[float] = None, cost_device: Optional[str] = None,
                   may_stop: Optional[list[str]] = None) -> dict:
    """Every job not done, one after the other, in this process (in the plan's order, which
    puts every job after the jobs it needs). Returns {job key: "done" | "ran" | why it did
    not run}.

    ``kinds`` (e.g. ``["train"]``) runs only the jobs of those kinds. ``time_budget_s`` runs
    only what fits that many seconds: a job whose estimated time (:func:`racl.plan.estimate`
    on ``cost_device``, default this machine's device) exceeds what is left of the budget is
    not started, nor is any job once the budget is spent; a job whose time no record gives
    runs (it keeps what it did when stopped: a retraining its last checkpoint, an evaluation
    its finished attacks), and so does one of the kinds ``may_stop`` whatever its estimate
    (e.g. ``["search", "eval"]`` where their checkpoints and partial records are kept from one
    call to the next). A job whose prerequisite did not run is not started either. This is
    how a lent GPU of a few minutes turns out whole records (``benchmarks/device_campaign.sh``)."""
    _check_needs(jobs)
    kinds = list(kinds) if kinds else None
    may_stop = list(may_stop or [])
    for k in (kinds or []) + may_stop:
        if k not in KINDS:
            raise ValueError(f"unknown job kind {k!r}: use {', '.join(KINDS)}")
    if time_budget_s is not None and time_budget_s <= 0:
        raise ValueError(f"the time budget must be positive, got {time_budget_s} s")
    by_key = {j.key: j for j in jobs}
    start = time.monotonic()
    status: dict[str, str] = {}
    label = None
    for j in jobs:
        if j.done():
            status[j.key] = "done"
            continue
        if kinds is not None and j.kind not in kinds:
            status[j.key] = f"not run: kind {j.kind} (--kinds {','.join(kinds)})"
            continue
        waiting = [n for n in j.needs if n in by_key and status.get(n) not in ("done", "ran")]
        if waiting:
            status[j.key] = f"not run: needs {', '.join(waiting)}"
            continue
        if time_budget_s is not None:
            left = time_budget_s - (time.monotonic() - start)
            if left <= 0:
                status[j.key] = "not run: the time budget is spent"
                continue
            if label is None:
                label = cost_device or hardware_label(hardware(resolve_device(device)))
            hours = None if j.kind in may_stop else estimate(j, profile, label, overrides, by_key)
            if hours is not None and hours * 3600 > left:
                status[j.key] = f"not run: estimated {hours * 60:.1f} min on {label}, {left / 60:.1f} min of the budget left"
                continue
        log(f"running {j.kind} {j.name}")
        run_job(j, profile, data_root, device, progress, overrides)
        status[j.key] = "ran"
    for k, v in status.items():
        if v.startswith("not run"):
            log(f"{k}: {v}")
    return status


def _job_error(e: BaseException) -> str:
    """One line for a failed submitit job: the last line of the job's traceback."""
    text = str(e)
    parts = text.split("----------------------")
    body = parts[1] if len(parts) >= 3 else text
    lines = [ln.strip() for ln in body.splitlines() if ln.strip()]
    return lines[-1] if lines else type(e).__name__


def cpu_slots(workers: Optional[int] = None, threads: Optional[int] = None) -> tuple:
    """(jobs at a time, threads per job) of the local executor on the CPU: ``workers``
    (default: one per two cores) and ``threads`` (default: cores / workers)."""
    cores = os.cpu_count() or 1
    workers = workers or max(1, cores // 2)
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    return workers, threads or max(1, cores // workers)


class Stopped(SystemExit):
    """The campaign's process got SIGTERM or SIGHUP (``kill``, a closed terminal)."""


@contextmanager
def stop_on_signals():
    """Turn SIGTERM and SIGHUP into :class:`Stopped` while the block runs (main thread
    only), so that ``kill <pid>`` of a local campaign cancels its jobs like Ctrl-C does.
    Without it the campaign's process dies at once and its jobs run on: submitit's job
    process ignores SIGTERM (Slurm sends it to every process of a preempted job, and the
    requeue rides on USR2), so only SIGINT, which ``cancel`` sends, stops a local job.

    A campaign started in the background by a script (``nohup ... &`` without job control)
    inherits SIGINT ignored, and so would every job it starts: ``cancel`` would then stop
    nothing. Within the block SIGINT gets Python's default handler again, which the jobs
    started in it inherit as the default action."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise Stopped(128 + signum)

    old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGHUP)}
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        old[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def run_local(jobs: list[Job], profile: str, folder: Path, data_root=None, device="auto", workers: Optional[int] = None,
              overrides: Optional[dict] = None, poll_s: float = 0.5, log=print, on_start=None,
              threads: Optional[int] = None) -> dict:
    """Every job not done through submitit's ``LocalExecutor``, each in its own process
    with its log folder ``folder/<kind>/<name>``: one job per GPU when ``device`` is a GPU
    (``auto`` on a machine with one), else ``workers`` at a time on the CPU (default: one
    per two cores) with ``cores / workers`` threads each. A job starts when every job it
    needs has finished, evaluations and transfers before retrainings and searches among
    those that could start (so that a finished retraining's numbers reach the tables
    first; otherwise in the plan's order); a job whose record appeared meanwhile (a manual
    run, another runner) is not run again; a job whose prerequisite failed is skipped. Returns
    {job key: "done" | "failed: <error>" | "skipped: ..."}; ``on_start(job, submitit_job)``
    is called as each job starts; ``threads`` overrides the CPU threads of each job."""
    _check_needs(jobs)
    folder = Path(folder)
    dev = resolve_device(device)
    if dev.type == "cuda":
        ngpu = torch.cuda.device_count()
        slots = [dev.index] if dev.index is not None else list(range(ngpu))
        slots = slots[: workers] if workers else slots
        threads = None
    else:
        workers, threads = cpu_slots(workers, threads)
        slots = list(range(workers))
    status = {j.key: "done" for j in jobs if j.done()}
    pending = [j for j in jobs if j.key not in status]
    free, running = list(slots), {}
    try:
        with stop_on_signals():
            while pending or running:
                for j in sorted(pending, key=lambda j: j.kind not in ("eval", "transfer")):  # stable: plan order within
                    bad = [n for n in j.needs if status.get(n, "").startswith(("failed", "skipped"))]
                    if bad:
                        status[j.key] = f"skipped: needs {', '.join(bad)}"
                        pending.remove(j)
                        log(f"skipped {j.kind} {j.name}: {status[j.key]}")
                    elif free and all(status.get(n) == "done" for n in j.needs):
                        if j.done():
                            status[j.key] = "done"
                            pending.remove(j)
                            log(f"recorded meanwhile {j.kind} {j.name}: not run again")
                            continue
                        slot = free.pop(0)
                        ex = submitit.LocalExecutor(folder=folder / j.kind / j.name, max_num_timeout=100)
                        params = {"timeout_min": LOCAL_TIMEOUT_MIN}
                        if dev.type == "cuda":
                            params.update(gpus_per_node=1, visible_gpus=[slot])
                        ex.update_parameters(**params)
                        sj = ex.submit(JobRun(j, profile, data_root, "cuda:0" if dev.type == "cuda" else "cpu", overrides, threads))
                        running[j.key] = (sj, slot, j)
                        pending.remove(j)
                        log(f"started {j.kind} {j.name}" + (f" on GPU {slot}" if dev.type == "cuda" else "") +
                            f" (log: {folder / j.kind / j.name})")
                        if on_start:
                            on_start(j, sj)
                for key, (sj, slot, j) in list(running.items()):
                    if sj.done():
                        del running[key]
                        free.append(slot)
                        try:
                            sj.result()
                            status[key] = "done"
                            log(f"finished {j.kind} {j.name}")
                        except Exception as e:  # noqa: BLE001 - the job's own error, reported per job
                            status[key] = f"failed: {_job_error(e)}"
                            log(f"FAILED {j.kind} {j.name}: {status[key]} (log: {folder / j.kind / j.name})")
                if running:
                    time.sleep(poll_s)
                elif pending and not free:
                    raise RuntimeError("no free slot and nothing running")  # cannot happen: every slot is freed on finish
                elif pending and not any(all(status.get(n) == "done" for n in j.needs) for j in pending):
                    if not any(any(status.get(n, "").startswith(("failed", "skipped")) for n in j.needs) for j in pending):
                        raise RuntimeError(f"jobs waiting on jobs that never run: {', '.join(j.key for j in pending)}")
    except BaseException as e:
        for sj, _, _ in running.values():
            sj.cancel(check=False)
        if isinstance(e, Stopped) and running:
            log(f"stopped: cancelled {', '.join(running)}; run the same command again to resume")
        raise
    return status


def check_slurm() -> None:
    """Slurm's ``sbatch`` and ``srun`` are on the PATH, or a :class:`SlurmUnavailable` saying so."""
    missing = [c for c in ("sbatch", "srun") if shutil.which(c) is None]
    if missing:
        raise SlurmUnavailable(f"--executor slurm needs Slurm, but {' and '.join(missing)} "
                               f"{'is' if len(missing) == 1 else 'are'} not on the PATH of this machine: run it on a "
                               f"Slurm login node, or use --executor local or sequential")


def _active_slurm_ids() -> set[str]:
    """The ids of this user's jobs that Slurm still holds (queued or running)."""
    if shutil.which("squeue") is None:
        return set()
    out = subprocess.run(["squeue", "-h", "-o", "%i", "-u", getpass.getuser()], capture_output=True, text=True)
    return {line.strip() for line in out.stdout.splitlines() if line.strip()} if out.returncode == 0 else set()


@dataclass
class SlurmOptions:
    """Where and how the jobs are submitted: partition and account (cluster defaults when
    None), the longest time limit a job asks for (hours; longer jobs are requeued from
    their checkpoint), shell lines run before each job (``module load ...``), and the
    device whose committed benchmark records give the estimates (None: unknown, so every
    job asks for ``max_hours``)."""

    partition: Optional[str] = None
    account: Optional[str] = None
    max_hours: float = 24.0
    setup: list = field(default_factory=list)
    cost_device: Optional[str] = None
    max_requeues: int = 50
    #: GPUs (one task each, torch.distributed) per retraining, evaluation and transfer job
    gpus_per_job: int = 1


def slurm_parameters(job: Job, profile: str, deps: list[str], opts: SlurmOptions, overrides: Optional[dict] = None,
                     jobs: Optional[dict] = None) -> dict:
    """The ``SlurmExecutor`` parameters of one job: name, GPUs, cores, memory, time limit,
    ``afterok`` dependencies, the signal submitit requeues on."""
    res = RESOURCES[job.kind]
    hours = estimate(job, profile, opts.cost_device, overrides, jobs) if opts.cost_device else None
    # data-parallel kinds take gpus_per_job GPUs, one task each; the estimate is divided by them
    # (perfect scaling: the time limit is an optimistic one and a job that runs over is requeued)
    n = opts.gpus_per_job if job.kind in DATA_PARALLEL_KINDS and res["gpus"] else 1
    if hours is not None:
        hours /= n
    p = {"job_name": f"racl-{job.kind}-{job.name}", "time": time_limit_min(hours, opts.max_hours),
         "ntasks_per_node": n, "cpus_per_task": res["cpus"], "mem": f"{res['mem_gb'] * n}GB",
         "signal_delay_s": 120, "additional_parameters": {"kill-on-invalid-dep": "yes"}}
    if res["gpus"]:
        p["gpus_per_node"] = res["gpus"] * n
    if deps:
        p["dependency"] = "afterok:" + ":".join(deps)
    if opts.partition:
        p["partition"] = opts.partition
    if opts.account:
        p["account"] = opts.account
    if opts.setup:
        p["setup"] = list(opts.setup)
    return p


def submit_slurm(jobs: list[Job], profile: str, folder: Path, opts: Optional[SlurmOptions] = None, data_root=None,
                 device: str = "auto", overrides: Optional[dict] = None, log=print) -> dict:
    """Submit every job not done to Slurm, each after the jobs it needs (``afterok``), with
    its log folder ``folder/<kind>/<name>``. Jobs submitted before (``folder/slurm-jobs.json``)
    that Slurm still holds are not submitted again; later jobs depend on them. Returns
    {job key: Slurm job id}."""
    check_slurm()
    _check_needs(jobs)
    opts = opts or SlurmOptions()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / "slurm-jobs.json"
    earlier = json.loads(manifest.read_text()) if manifest.exists() else {}
    active = _active_slurm_ids()
    by_key = {j.key: j for j in jobs}
    ids: dict[str, str] = {}
    for j in jobs:
        if j.done():
            continue
        old = earlier.get(j.key, {}).get("job_id")
        if old is not None and old in active:
            ids[j.key] = old
            log(f"queued   {j.kind:8s} {j.name}  (Slurm job {old}, submitted before)")
            continue
        deps = [ids[n] for n in j.needs if n in ids]
        ex = submitit.SlurmExecutor(folder=folder / j.kind / j.name, max_num_timeout=opts.max_requeues)
        ex.update_parameters(**slurm_parameters(j, profile, deps, opts, overrides, by_key))
        sj = ex.submit(JobRun(j, profile, data_root, device, overrides))
        ids[j.key] = str(sj.job_id)
        earlier[j.key] = {"job_id": ids[j.key], "log": str(folder / j.kind / j.name)}
        manifest.write_text(json.dumps(earlier, indent=2))
        log(f"submitted {j.kind:8s} {j.name}  (Slurm job {sj.job_id}" + (f", after {', '.join(deps)}" if deps else "") + ")")
    return ids


# ---------------------------------------------------------------------- dry run
def print_cost(profile: str, targets: list[str], device: str, archs=None, seeds=None, method=None,
               overrides: Optional[dict] = None, runs: Optional[Path] = None, out=None, datasets=None) -> None:
    """The plan's jobs, each done or to do with its work and estimated GPU-hours on
    ``device``, then the total per table (:func:`racl.plan.cost_table`)."""
    out = out or sys.stdout
    rows, totals = cost_table(profile, targets, device, archs, seeds, method, overrides, runs, datasets)
    jobs = {j.key: j for j in plan(profile, targets, archs, seeds, method, runs, datasets)}
    unit = "GPU-hours" if "(" not in device else "hours"  # a CPU's label is 'model (N threads)'
    print(f"estimated {unit} on {device} (bench: its committed benchmark records; runs: else its finished runs of the "
          f"same computation; unknown: neither timed the job)", file=out)
    w = max(len(r["job"]) for r in rows) if rows else 10
    for r in rows:
        j = jobs[f"{r['kind']}/{r['job']}"]
        print(f"{'done' if j.done() else 'todo'}  {r['kind']:8s} {r['job']:{w}s} {format_hours(r['gpu_hours']):>9s} "
              f"{r['source'] or '':5s} {r['work']}{_again(j)}", file=out)
    print(f"total {unit} per table:", file=out)
    for t in totals:
        extra = "" if t["gpu_hours"] is not None or not t["known_gpu_hours"] else \
            f" ({format_hours(t['known_gpu_hours'])} known, {t['unknown_jobs']} jobs unknown)"
        extra = extra or (f" ({t['unknown_jobs']} jobs unknown)" if t["gpu_hours"] is None else "")
        print(f"  {t['table']:22s} {t['jobs']:3d} jobs  {format_hours(t['gpu_hours'])}{extra}", file=out)
    others = [d for d in run_devices(runs) if d != device]
    if any(r["gpu_hours"] is None for r in rows) and others:
        print(f"(finished runs of this campaign's records were timed on {'; '.join(others)}: --cost-device NAME "
              f"costs the jobs on one of them)", file=out)


def _again(job: Job) -> str:
    """Why a job that has run is to run again, or how an interrupted one goes on ('' for one
    that has not run, or is done)."""
    if job.done():
        return ""
    why = job.outdated()
    if why:
        return f"; again: {why}"
    if job.kind in FILE_KINDS or not (job.path / "provenance.json").exists():
        return ""
    if "finished" in read_json(job.path / "provenance.json"):
        return "; again: finished, but its checkpoint, which a job to run loads, is not here"
    if (job.path / "checkpoint.pt").exists():
        return "; interrupted: resumes from its checkpoint"
    return "; interrupted before its first checkpoint (or failed): starts over"


# ---------------------------------------------------------------------- command line
def add_reproduce_parser(sub):
    p = sub.add_parser("reproduce", help="plan and run what the paper's tables and figures need")
    p.add_argument("--profile", default="mini", choices=sorted(DATASETS), help="budget: smoke | mini | gpu | paper (default: mini)")
    p.add_argument("--targets", default="table1", help=f"comma list: {', '.join(TARGETS)}")
    p.add_argument("--archs", help="comma list restricting the models (default: all at paper, a few at mini/smoke)")
    p.add_argument("--datasets", help="comma list restricting the datasets, by the paper's names: cifar10, cifar100, "
                                      "tinyimagenet (default: all; only Tables 1-3 use more than CIFAR-10)")
    p.add_argument("--seeds", help="comma list of seeds, for every target (default: each target's own: "
                                    + "; ".join(f"{','.join(map(str, v))} for {k}" for k, v in DEFAULT_SEEDS.items())
                                    + "; 0 for the others)")
    p.add_argument("--method", choices=["pgd", "trades", "mart"],
                   help="adversarial training objective (default: the profile's: MART, the paper's Sec. 4.1, at mini and "
                        "paper; PGD-AT at smoke)")
    p.add_argument("--data-root", help="folder holding (or receiving) the datasets; default data/downloads")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    p.add_argument("--runs", help=f"where the records go (default: {RUNS})")
    p.add_argument("--dry-run", action="store_true", help="print the jobs with their estimated cost and run nothing")
    p.add_argument("--executor", default="sequential", choices=EXECUTORS,
                   help="sequential (in this process, the default) | local (jobs side by side: one per GPU, or "
                        "--workers on the CPU) | slurm (submitted through submitit)")
    p.add_argument("--kinds", help=f"sequential executor: comma list of the job kinds to run ({', '.join(KINDS)}; "
                                   "default: all), e.g. train on a lent GPU and eval elsewhere")
    p.add_argument("--time-budget", type=float, metavar="SECONDS",
                   help="sequential executor: start only the jobs whose estimated time (--dry-run's, on --cost-device) "
                        "fits what is left of SECONDS; a job no record has timed runs, keeping its checkpoint or "
                        "finished attacks when stopped")
    p.add_argument("--may-stop", metavar="KINDS",
                   help="with --time-budget: comma list of job kinds started whatever their estimate, because what "
                        "they did when stopped is kept for the next run (a search's checkpoint, an evaluation's "
                        "finished attacks)")
    p.add_argument("--workers", type=int, help="local executor: jobs at a time (default: one per GPU, or one per two CPU cores)")
    p.add_argument("--threads", type=int, help="local executor on the CPU: threads of each job (default: cores / workers); "
                                               "e.g. --workers 1 --threads 1 leaves the other cores free")
    p.add_argument("--log-dir", default="runs/campaign", help="local and slurm executors: one log folder per job under it "
                                                             "(default: runs/campaign)")
    p.add_argument("--cost-device", help="device whose benchmark records give the estimates: a GPU name as "
                                         "torch.cuda.get_device_name gives it, or 'CPU model (N threads)' "
                                         "(default: this machine's device)")
    p.add_argument("--slurm-partition", help="Slurm partition (default: the cluster's)")
    p.add_argument("--slurm-account", help="Slurm account (default: the cluster's)")
    p.add_argument("--slurm-max-hours", type=float, default=24.0,
                   help="the longest time limit a job asks for; longer jobs are requeued from their checkpoint (default: 24)")
    p.add_argument("--slurm-setup", action="append", default=[], metavar="LINE",
                   help="a shell line run before each Slurm job, e.g. 'module load cuda' (repeatable)")
    p.add_argument("--gpus-per-job", type=int, default=1,
                   help="slurm executor: GPUs (one task each, torch.distributed) per retraining, evaluation and "
                        "transfer job; searches take one (default: 1)")

    def run(args):
        if args.workers is not None and args.workers < 1:
            raise ValueError(f"--workers must be at least 1, got {args.workers}")
        if args.threads is not None and args.threads < 1:
            raise ValueError(f"--threads must be at least 1, got {args.threads}")
        if args.threads is not None and args.executor != "local":
            raise ValueError(f"--threads applies to --executor local only (got --executor {args.executor}); "
                             "the sequential executor runs each job in this process, on OMP_NUM_THREADS threads")
        if distributed.shard().active:
            raise distributed.DistributedError("reproduce starts its own jobs: run it in one process, without torchrun "
                                               "(--gpus-per-job N makes each Slurm retraining data-parallel)")
        if args.gpus_per_job < 1:
            raise ValueError(f"--gpus-per-job must be at least 1, got {args.gpus_per_job}")
        if args.gpus_per_job > 1 and args.executor != "slurm":
            raise ValueError("--gpus-per-job applies to --executor slurm; on this machine start one run on several GPUs "
                             "with torchrun (README, On several GPUs)")
        if (args.kinds or args.time_budget is not None) and args.executor != "sequential":
            raise ValueError(f"--kinds and --time-budget apply to --executor sequential, not {args.executor}")
        if args.may_stop and args.time_budget is None:
            raise ValueError("--may-stop applies with --time-budget")
        kinds = [k.strip() for k in args.kinds.split(",") if k.strip()] if args.kinds else None
        may_stop = [k.strip() for k in args.may_stop.split(",") if k.strip()] if args.may_stop else None
        if args.slurm_max_hours <= 0:
            raise ValueError(f"--slurm-max-hours must be positive, got {args.slurm_max_hours}")
        try:
            seeds = tuple(int(s) for s in args.seeds.split(",")) if args.seeds is not None else None
        except ValueError:
            raise ValueError(f"--seeds takes a comma list of integers, got {args.seeds!r}") from None
        archs = args.archs.split(",") if args.archs else DEFAULT_ARCHS.get(args.profile)
        targets = [t.strip() for t in args.targets.split(",") if t.strip()]
        runs = Path(args.runs) if args.runs else None
        if args.executor == "slurm" and not args.dry_run:
            check_slurm()  # before anything is planned or written
        datasets = [d.strip() for d in args.datasets.split(",") if d.strip()] if args.datasets is not None else None
        jobs = plan(args.profile, targets, archs, seeds, args.method, runs, datasets)
        if args.dry_run:
            hw = hardware(resolve_device(args.device))
            if args.executor == "local" and not hw.get("gpu"):
                hw["cpu_threads"] = cpu_slots(args.workers, args.threads)[1]  # what each job will run with
            device = args.cost_device or hardware_label(hw)
            print_cost(args.profile, targets, device, archs, seeds, args.method, runs=runs, datasets=datasets)
            return 0
        for j in jobs:
            print(f"{'done' if j.done() else 'todo'}  {j.kind:8s} {j.name}{_again(j)}")
        if args.executor == "sequential":
            status = run_sequential(jobs, args.profile, args.data_root, args.device, kinds=kinds,
                                    time_budget_s=args.time_budget, cost_device=args.cost_device, may_stop=may_stop)
            ran = sum(v == "ran" for v in status.values())
            left = sum(v.startswith("not run") for v in status.values())
            print(f"ran {ran} job(s); {left} not run" + (" (above)" if left else ""))
        elif args.executor == "local":
            status = run_local(jobs, args.profile, Path(args.log_dir), args.data_root, args.device, args.workers,
                               threads=args.threads)
            bad = {k: v for k, v in status.items() if v != "done"}
            if bad:
                print(f"error: {len(bad)} job(s) did not finish: " + "; ".join(f"{k}: {v}" for k, v in bad.items()),
                      file=sys.stderr)
                return 1
        else:
            opts = SlurmOptions(args.slurm_partition, args.slurm_account, args.slurm_max_hours, args.slurm_setup,
                                args.cost_device, gpus_per_job=args.gpus_per_job)
            submit_slurm(jobs, args.profile, Path(args.log_dir), opts, args.data_root, args.device)
            print(f"submitted; logs and slurm-jobs.json under {args.log_dir}; run the same command again to resubmit "
                  f"what is not done")
        return 0

    p.set_defaults(func=run)
