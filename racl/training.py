"""Adversarial retraining of searched cells and of human designs (paper Sec. 4.1).

Three objectives (``method``), the last two with a balance hyperparameter ``beta``:

* ``mart`` (the ``paper`` profile): Wang et al., "Improving adversarial robustness requires
  revisiting misclassified examples" (ICLR 2020), the paper's reference [62]. Sec. 4.1:
  "Following [62], the hyperparameter which balances the adversarial loss and KL divergence
  is set to 6", so beta = 6. The loss is
  BCE(f(x'), y) + beta * KL(f(x) || f(x')) * (1 - p_y(x)), where the boosted cross-entropy
  BCE(p', y) = -log p'_y - log(1 - max_{k != y} p'_k) and x' is crafted by CE-PGD from
  x + 0.001 N(0, 1) (MART's reference code, :func:`mart_attack`);
* ``pgd``: Madry et al., CE on l-inf PGD examples (uniform random start); the ``mini`` and
  ``smoke`` profiles, whose committed records were trained with it;
* ``trades``: CE(f(x), y) + beta * KL(f(x) || f(x')), x' maximising the KL (Zhang et al.).

Paper settings (the ``paper`` profile): eps = 8/255 with 10 steps of 2/255 on CIFAR, eps =
4/255 with 6 steps of 2/255 on Tiny-ImageNet; SGD lr 0.1, momentum 0.9, wd 2e-4, gradient
norm clipped at 5, batch 128, 100 epochs, "on the entire training set" (no held-out
images: ``val_images=0``). The learning-rate schedule is not given; we use the TRADES / MART
one: lr / 10 at 75% and again at 90% of training (``lr_schedule="step"``, :func:`step_lr`),
with ``cosine`` as the alternative. Adversarial examples for training are crafted with the
model in inference mode (BN running statistics), as the TRADES and MART code does.

``lr_warmup_epochs > 0`` trains the first epochs at a tenth of the schedule's rate
(:data:`WARMUP_FACTOR`), He et al.'s recipe for ResNet-110 ("Deep Residual Learning",
Sec. 4.2: 0.01 until the training error is below 80%, about 400 iterations, then 0.1).
Table 4's ResNet-110 source needs it here too: without it the mini MART run diverged at its
7th step (NaN loss). Crafting in inference mode is what breaks: after a few steps at the
full rate, BN's running statistics lag the 54 residual blocks' activations so far that the
inference-mode logits overflow (max |logit| 1.4, 2.9, 11.6, then NaN over steps 0, 4, 5, 6).

With ``val_images > 0`` (the ``mini`` and ``smoke`` profiles) each epoch ends with clean and
PGD accuracy on a held-out slice of the training set (not used for training or model
selection). Each epoch writes a metrics row and a checkpoint; a run started again in the
same directory resumes, and every random draw is keyed by (seed, epoch, step), so the
resumed run reaches the same weights.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import distributed, speed
from .attacks import check_epsilon, linf_pgd
from .data import Loader, batch_seed, load_dataset, split_indices
from .networks import arch_label, build_model, count_parameters
from .profiles import TRAIN_PROFILES, _check_choice, from_dict, to_dict
from .records import (CheckpointError, NonFiniteLossError, RunDir, check_finite, finish_provenance, load_checkpoint,
                      progress, provenance, read_json, resolve_device, save_checkpoint, write_json)


from .profiles import TrainConfig  # noqa: E402,F401 - plain data, defined with its profiles in racl.profiles


# ---------------------------------------------------------------------- schedule
#: the rate of a warm-up epoch as a fraction of the schedule's (He et al.: 0.01 against 0.1)
WARMUP_FACTOR = 0.1


def step_lr(lr: float, epoch: int, epochs: int) -> float:
    """The step schedule: ``lr`` until 75% of training, ``lr / 10`` until 90%, then
    ``lr / 100`` (TRADES / MART), changed at epoch boundaries: the drops come at epochs
    ``b1 = floor(0.75 E)`` and ``b2 = floor(0.9 E)`` (0-based), except that every phase but
    the last lasts at least one epoch (``b1 >= 1``, ``b2 >= b1 + 1``). So 100 epochs are 75 at
    lr, 15 at lr / 10 and 10 at lr / 100; 6 epochs are 4, 1, 1; 2 epochs are 1 at lr and 1 at
    lr / 10; a single epoch trains at lr (the floors alone gave it lr / 100)."""
    b1 = max(1, int(0.75 * epochs))
    b2 = max(b1 + 1, int(0.9 * epochs))
    if epoch >= b1:  # two divisions by 10, not one by 100: the same floats as before the b1, b2 guards
        lr /= 10
    if epoch >= b2:
        lr /= 10
    return lr


# ---------------------------------------------------------------------- objectives
def mart_attack(model, x, y, eps, alpha, steps, generator=None, noise=None):
    """MART's inner maximisation (Wang et al.'s reference code): CE-PGD from x + 0.001 N(0, 1)
    (``noise``: that N(0, 1) draw, else drawn from ``generator``)."""
    noise = torch.randn(x.shape, generator=generator).to(x) if noise is None else noise
    return linf_pgd(model, x, y, eps, alpha, steps, loss="ce", start=x + 0.001 * noise)


def trades_attack(model, x, eps, alpha, steps, generator=None, noise=None):
    """TRADES' inner maximisation: PGD on KL(f(x) || f(x')) from x + 0.001 N(0, 1)
    (``noise``: that N(0, 1) draw, else drawn from ``generator``)."""
    with torch.no_grad():
        p_clean = F.softmax(model(x), 1)
    noise = torch.randn(x.shape, generator=generator).to(x) if noise is None else noise

    def kl(logits, _y):
        return F.kl_div(F.log_softmax(logits, 1), p_clean, reduction="none").sum(1)

    return linf_pgd(model, x, None, eps, alpha, steps, loss=kl, start=x + 0.001 * noise)


def adversarial_loss(method: str, model: nn.Module, x, y, x_adv, beta: float) -> torch.Tensor:
    """The training loss of ``method`` on a batch (clean ``x``, crafted ``x_adv``), as in the
    module docstring. MART follows Wang et al.'s reference code term by term: the boosted CE
    is CE(f(x'), y) - log(1.0001 - p'_{y*}) with y* the most likely wrong class of f(x'),
    the KL is summed over classes and weighted per example by (1.0000001 - p_y(x)), then
    averaged over the batch.

    One departure from the reference code, in the gradient only: the KL's target is taken as
    log_softmax(f(x)) (``log_target=True``), not softmax(f(x)). The two are equal in value,
    but where a clean probability underflows to exactly 0 (logits more than about 100 apart
    in float32) the reference's p log p has the gradient 0 * log 0 = NaN, which then reaches
    every weight through gradient clipping. The mini retraining of Table 8's w/o CL cell
    (pooling on most edges) hit it at step 15."""
    if method == "pgd":
        return F.cross_entropy(model(x_adv), y)
    logits = model(x)
    logits_adv = model(x_adv)
    if method == "trades":
        kl = F.kl_div(F.log_softmax(logits_adv, 1), F.softmax(logits, 1), reduction="batchmean")
        return F.cross_entropy(logits, y) + beta * kl
    # MART
    p_adv = F.softmax(logits_adv, 1)
    top2 = p_adv.argsort(1)[:, -2:]
    new_y = torch.where(top2[:, -1] == y, top2[:, -2], top2[:, -1])
    bce = F.cross_entropy(logits_adv, y) + F.nll_loss(torch.log(1.0001 - p_adv + 1e-12), new_y)
    log_p_nat = F.log_softmax(logits, 1)
    true_prob = log_p_nat.gather(1, y[:, None]).squeeze(1).exp()
    kl = F.kl_div(torch.log(p_adv + 1e-12), log_p_nat, reduction="none", log_target=True).sum(1)
    kl = (kl * (1.0000001 - true_prob)).mean()
    return bce + beta * kl


def fit_toy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int = 4, batch_size: int = 64,
            lr: float = 3e-3, seed: int = 0, fgsm_eps: float = 0.0) -> nn.Module:
    """Train a small model on tensors (x in [0, 1]) with Adam, for demonstrations and tests.
    ``fgsm_eps > 0`` trains on FGSM examples from a random start (one PGD step of 1.25 eps,
    Wong et al.'s "fast" adversarial training). Every random draw is keyed by ``seed``."""
    opt = torch.optim.Adam(model.parameters(), lr)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=g)
        for i in range(0, len(perm), batch_size):
            xb, yb = x[perm[i : i + batch_size]], y[perm[i : i + batch_size]]
            if fgsm_eps > 0:
                model.eval()
                xb = linf_pgd(model, xb, yb, fgsm_eps, 1.25 * fgsm_eps, steps=1, generator=g)
                model.train()
            opt.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, loader: Loader, attack: Optional[Callable] = None) -> tuple[float, int]:
    model.eval()
    correct = n = 0
    for x, y in loader:
        if attack is not None:
            with torch.enable_grad():
                x = attack(model, x, y)
        correct += (model(x).argmax(1) == y).sum().item()
        n += len(y)
    return correct / max(n, 1), n


_RESUMABLE_FIELDS = ("checkpoint_every", "device", *speed.RESUMABLE)


class AdversarialTrainer:
    def __init__(self, cfg: TrainConfig, out: Optional[str | Path] = None, data_root=None, progress: bool = True):
        self.cfg = cfg.validate()
        # several processes (torchrun): this one trains on `rows` of every global batch
        self.shard, self.device = distributed.init(resolve_device(cfg.device))
        self.rows = distributed.rows(cfg.batch_size, self.shard) if self.shard.active else slice(None)
        self.progress = progress and self.shard.main
        self.run = RunDir(out) if out else None
        torch.manual_seed(cfg.seed)
        train = load_dataset(cfg.dataset, "train", data_root).head(cfg.max_train_images)
        if cfg.val_images >= len(train):
            raise ValueError(f"val_images={cfg.val_images} leaves nothing to train on ({len(train)} images)")
        self.data = train
        if cfg.val_images:
            val_idx, tr_idx = split_indices(len(train), cfg.val_images / len(train), cfg.seed)
            self.train_loader = Loader(train.subset(tr_idx), cfg.batch_size, True, cfg.augment, cfg.seed, self.device, True, stream=5)
            self.val_loader = Loader(train.subset(val_idx), 256, False, False, cfg.seed, self.device)
        else:  # the entire training set (the paper's Sec. 4.1)
            self.train_loader = Loader(train, cfg.batch_size, True, cfg.augment, cfg.seed, self.device, True, stream=5)
            self.val_loader = None
        self.model = build_model(cfg.arch, train.num_classes, train.image_size, cfg.init_channels, cfg.layers,
                                 cfg.auxiliary, cfg.drop_path_prob, train.mean, train.std).to(self.device)
        self.n_params = count_parameters(self.model)
        if self.shard.active and cfg.sync_batchnorm:
            self.model = distributed.sync_batchnorm(self.model, self.device)
        if self.shard.active and hasattr(self.model, "drop_path_rows"):
            self.model.drop_path_rows = (self.rows, cfg.batch_size)
        self.precision = speed.resolve_precision(cfg.precision, self.device)
        self.channels_last = speed.resolve_flag(cfg.channels_last, self.device)
        speed.memory_format(self.model, self.channels_last)
        self.opt = speed.sgd(self.model.parameters(), cfg.lr, cfg.momentum, cfg.weight_decay,
                             speed.resolve_flag(cfg.fused_optimizer, self.device))
        # the module the attacks, the loss and the step's accuracy run through (racl.speed.compiled)
        self.net = speed.compiled(self.model, cfg.compile, self.device)
        # the module the loss runs through: DistributedDataParallel averages the gradients over the ranks
        self.ddp = self.net
        if self.shard.active:
            from torch.nn.parallel import DistributedDataParallel

            import inspect

            # no buffer broadcast at each forward when BatchNorm already uses the global batch
            sync = "forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters \
                else "broadcast_buffers"
            self.ddp = DistributedDataParallel(self.net, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                                               **{sync: not cfg.sync_batchnorm})
        self.epoch, self.step, self.history, self._acc = 0, 0, [], {}
        self._resumed = False
        if self.run is not None:
            self._prepare_run_dir()

    # ---------------------------------------------------------------- run directory
    def _prepare_run_dir(self):
        """Every rank resumes from the directory's checkpoint; only rank 0 writes."""
        state = self.run.resume_state("racl-train", self.cfg, _RESUMABLE_FIELDS, self.device)
        if state is not None:
            self.load_state_dict(state)
            self._resumed = True
        if not self.shard.main:
            self.prov = None
            return
        self.prov = self.run.start_provenance(self._resumed, lambda: provenance(
            self.cfg.profile, self.cfg.dataset, self.cfg.seed, self.device, arch=self.cfg.arch, n_params=self.n_params,
            data_source=self.data.source, n_train_images=len(self.data)))
        if self.shard.active or "world_size" in self.prov:
            self.prov["world_size"] = self.shard.world_size
            sizes = self.prov.setdefault("world_sizes", [])
            if self.shard.world_size not in sizes:
                sizes.append(self.shard.world_size)
            self.prov["sync_batchnorm"] = self.cfg.sync_batchnorm
        write_json(self.run.path / "config.json", to_dict(self.cfg))

    def state_dict(self) -> dict:
        return {"kind": "racl-train", "config": to_dict(self.cfg), "epoch": self.epoch, "step": self.step,
                "model": self.model.state_dict(), "opt": self.opt.state_dict(), "history": self.history,
                "acc": self._acc, "n_params": self.n_params, "num_classes": self.data.num_classes,
                "image_size": self.data.image_size, "mean": list(self.data.mean), "std": list(self.data.std)}

    def load_state_dict(self, s: dict) -> None:
        try:
            self.model.load_state_dict(s["model"])
        except RuntimeError as e:
            raise CheckpointError(f"checkpoint weights do not fit architecture {self.cfg.arch!r}: {e}") from e
        if "opt" in s:
            self.opt.load_state_dict(s["opt"])
        elif s["epoch"] < self.cfg.epochs:  # weights only (export_weights): nothing to go on from
            raise CheckpointError(f"the checkpoint holds the weights only (exported for evaluation elsewhere), at epoch "
                                  f"{s['epoch']} of {self.cfg.epochs}: a training cannot resume from it; "
                                  f"resume from the full checkpoint or delete the run folder to start over")
        self.epoch, self.step = s["epoch"], s["step"]
        self.history, self._acc = list(s["history"]), dict(s["acc"])

    # ---------------------------------------------------------------- training
    def lr_at(self, epoch: int) -> float:
        """The schedule's rate at ``epoch``, a tenth of it in the warm-up epochs."""
        cfg = self.cfg
        if cfg.lr_schedule == "cosine":
            lr = cfg.lr * (1 + math.cos(math.pi * epoch / cfg.epochs)) / 2
        else:
            lr = step_lr(cfg.lr, epoch, cfg.epochs)
        return lr * WARMUP_FACTOR if epoch < cfg.lr_warmup_epochs else lr

    def craft(self, x, y, gen):
        """Adversarial examples of this rank's rows of the global batch (x, y) (all of them in
        one process). With several ranks the random start is drawn for the global batch from
        ``gen``, as one process draws it, and sliced."""
        cfg = self.cfg
        self.model.eval()
        if not self.shard.active:
            if cfg.method == "trades":
                x_adv = trades_attack(self.net, x, cfg.epsilon, cfg.step_size, cfg.attack_steps, gen)
            elif cfg.method == "mart":
                x_adv = mart_attack(self.net, x, y, cfg.epsilon, cfg.step_size, cfg.attack_steps, gen)
            else:
                x_adv = linf_pgd(self.net, x, y, cfg.epsilon, cfg.step_size, cfg.attack_steps, "ce", True, gen)
        else:
            r = self.rows
            if cfg.method in ("trades", "mart"):
                noise = torch.randn(x.shape, generator=gen).to(x)[r]
                if cfg.method == "trades":
                    x_adv = trades_attack(self.net, x[r], cfg.epsilon, cfg.step_size, cfg.attack_steps, noise=noise)
                else:
                    x_adv = mart_attack(self.net, x[r], y[r], cfg.epsilon, cfg.step_size, cfg.attack_steps, noise=noise)
            else:  # linf_pgd's uniform start in the ball, drawn for the global batch
                noise = torch.rand(x.shape, generator=gen, dtype=x.dtype, device="cpu").to(x.device)
                start = (x + (2 * noise - 1) * cfg.epsilon).clamp(0, 1)[r]
                x_adv = linf_pgd(self.net, x[r], y[r], cfg.epsilon, cfg.step_size, cfg.attack_steps, "ce", start=start)
        self.model.train()
        return x_adv

    def train_step(self, epoch: int, step: int, x, y) -> tuple[float, float]:
        cfg = self.cfg
        key = batch_seed(cfg.seed, 6, epoch, step)
        gen = torch.Generator().manual_seed(key)
        torch.manual_seed(key)  # drop-path masks
        x = speed.as_input(x, self.channels_last)
        with speed.autocast(self.precision, self.device):
            x_adv = self.craft(x, y, gen)
            if self.shard.active:
                x, y = x[self.rows], y[self.rows]
            self.model.train()
            loss = adversarial_loss(cfg.method, self.ddp, x, y, x_adv, cfg.beta)
            if cfg.auxiliary and getattr(self.model, "aux_logits", None) is not None:
                loss = loss + cfg.auxiliary_weight * F.cross_entropy(self.model.aux_logits, y)
        loss = speed.full(loss)
        shown = distributed.all_mean(loss)  # the global batch's loss; every rank stops together
        if not torch.isfinite(shown):
            raise NonFiniteLossError(f"non-finite training loss {shown.item()} at epoch {epoch}, step {step}")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.opt.step()
        with torch.no_grad():
            self.model.eval()
            hit = self.net(x_adv).argmax(1) == y
            if self.shard.active:
                k, n = distributed.all_sum([hit.sum().item(), len(y)], self.device)
                acc = k / n
            else:
                acc = hit.float().mean().item()
        return shown.item(), acc

    def validate(self, epoch: int) -> dict:
        """Clean and PGD accuracy on the held-out slice; nothing without one (``val_images=0``)."""
        cfg = self.cfg
        if self.val_loader is None:
            return {}
        clean, n = accuracy(self.model, self.val_loader)
        gen_seed = batch_seed(cfg.seed, 7, epoch)
        pgd = lambda m, x, y: linf_pgd(m, x, y, cfg.epsilon, cfg.step_size, cfg.val_attack_steps, "ce", True,  # noqa: E731
                                       torch.Generator().manual_seed(gen_seed))
        robust, _ = accuracy(self.model, self.val_loader, pgd)
        return {"val_clean_acc": clean, f"val_pgd{cfg.val_attack_steps}_acc": robust, "val_n": n}

    def fit(self, stop_after_steps: Optional[int] = None, callback=None) -> dict:
        cfg = self.cfg
        done = 0
        n_steps = len(self.train_loader)
        while self.epoch < cfg.epochs:
            epoch = self.epoch
            for g in self.opt.param_groups:
                g["lr"] = self.lr_at(epoch)
            t_epoch = time.time() - self._acc.get("seconds", 0.0)
            bar = progress(n_steps, f"{arch_label(cfg.arch)} {cfg.method} epoch {epoch + 1}/{cfg.epochs}", self.progress, self.step)
            for step, x, y in self.train_loader.epoch(epoch, self.step):  # the global batch, on every rank
                if stop_after_steps is not None and done >= stop_after_steps:
                    bar.close()
                    return {"stopped": True, "epoch": epoch, "step": step}
                loss, acc = self.train_step(epoch, step, x, y)
                a = self._acc
                a["loss"] = a.get("loss", 0.0) + loss * len(y)
                a["acc"] = a.get("acc", 0.0) + acc * len(y)
                a["n"] = a.get("n", 0) + len(y)
                self.step, done = step + 1, done + 1
                bar.set_postfix(loss=f"{loss:.3f}", adv_acc=f"{acc:.2f}", refresh=False)  # shown by update()
                bar.update(1)
                if self.run and cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 and self.step < n_steps:
                    self._acc["seconds"] = time.time() - t_epoch
                    self._save()
            bar.close()
            a = self._acc
            row = {"epoch": epoch, "lr": self.lr_at(epoch), "train_loss": a.get("loss", 0) / max(a.get("n", 1), 1),
                   "train_adv_acc": a.get("acc", 0) / max(a.get("n", 1), 1)}
            row.update(self.validate(epoch))
            row["seconds"] = round(time.time() - t_epoch, 2)
            check_finite(f"training epoch {epoch}", row, {"model": self.model})
            self.history.append(row)
            self.epoch, self.step, self._acc = epoch + 1, 0, {}
            if self.run:
                if self.shard.main:
                    self.run.rewrite_metrics(self.history)
                self._save()
            if callback:
                callback(row)
        if self.run and self.shard.main:
            self.prov = finish_provenance(self.run.account(self.prov), self.prov["wall_time_s"])
            write_json(self.run.path / "provenance.json", self.prov)
        distributed.barrier()  # every rank ends once rank 0 has written
        return {"final": self.history[-1] if self.history else None, "n_params": self.n_params}

    def _save(self):
        """Checkpoint the run atomically. The last one (every epoch trained) holds the weights
        without the optimizer's state, as :func:`export_weights` writes them: nothing resumes
        from it, and it is half the size of one with SGD's momentum buffers (what is committed
        under ``data/runs`` and what travels to and from a lent GPU)."""
        check_finite(f"training checkpoint at epoch {self.epoch}, step {self.step}", None, {"model": self.model})
        if not self.shard.main:
            return
        state = self.state_dict()
        if self.epoch >= self.cfg.epochs:
            del state["opt"]
        save_checkpoint(self.run.checkpoint, state)
        self.run.account(self.prov)
        write_json(self.run.path / "provenance.json", self.prov)


#: a finished run's files that go with its weights (the checkpoint is written afresh)
RUN_FILES = ("config.json", "metrics.jsonl", "provenance.json")


def export_weights(run: str | Path, dest: str | Path) -> Path:
    """Copy a *finished* training run to ``dest`` with a checkpoint that holds the weights and
    everything :func:`load_trained` reads, but not the optimizer's state (about half of a
    checkpoint trained with momentum): what travels from a lent GPU to be evaluated elsewhere.
    A run finished by this version of the trainer has such a checkpoint already (see
    ``AdversarialTrainer._save``), and this copies it; an older one's loses its optimizer
    state. An unfinished run is refused (it could not resume from the copy). Returns ``dest``."""
    src, dest = Path(run), Path(dest)
    prov = src / "provenance.json"
    if not (prov.exists() and "finished" in read_json(prov)):
        raise CheckpointError(f"{src} is not a finished training run (its provenance says it has not finished); "
                              f"only a finished run's weights are exported")
    state = load_checkpoint(src / "checkpoint.pt", "cpu", kind="racl-train")
    if dest.resolve() == src.resolve():
        raise ValueError(f"export_weights: the destination is the run itself ({src})")
    dest.mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:
        if (src / name).exists():
            shutil.copy2(src / name, dest / name)
    save_checkpoint(dest / "checkpoint.pt", {k: v for k, v in state.items() if k not in ("opt", "acc")} | {"acc": {}})
    return dest


def load_trained(path: str | Path, device="cpu") -> tuple[nn.Module, dict]:
    """The model of a training run (its directory or checkpoint) and the checkpoint's metadata."""
    p = Path(path)
    ckpt = p / "checkpoint.pt" if p.is_dir() else p
    if not ckpt.exists():
        raise CheckpointError(f"no checkpoint at {ckpt}")
    state = load_checkpoint(ckpt, device)
    if state.get("kind") != "racl-train":
        raise CheckpointError(f"{ckpt} is a {state.get('kind')!r} checkpoint, not a trained model")
    cfg = from_dict(TrainConfig, state["config"])
    model = build_model(cfg.arch, state["num_classes"], state["image_size"], cfg.init_channels, cfg.layers,
                        cfg.auxiliary, 0.0, tuple(state["mean"]), tuple(state["std"])).to(device)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise CheckpointError(f"{ckpt}: weights do not fit architecture {cfg.arch!r}: {e}") from e
    model.eval()
    return model, {"config": to_dict(cfg), "epoch": state["epoch"], "n_params": state["n_params"],
                   "complete": state["epoch"] >= cfg.epochs, "history": state["history"],
                   "num_classes": state["num_classes"], "image_size": state["image_size"], "checkpoint": ckpt}


def add_train_parser(sub, common, make_config):
    p = sub.add_parser("train", help="adversarially train a searched cell or a human-designed network")
    common(p, "train")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--genotype", help="genotype name (RACL, DARTS_V2, PC_DARTS...), JSON/text file or string")
    g.add_argument("--arch", help="human design: resnet18, resnet50, wrn28_10, densenet121, resnet110")
    p.add_argument("--method", choices=["pgd", "trades", "mart"],
                   help="training objective (paper profile: mart, beta=6, Sec. 4.1; mini and smoke: pgd)")
    p.add_argument("--out", required=True, help="run directory (resumed if it holds a checkpoint of the same config)")

    def run(args):
        import sys

        if args.genotype or args.arch:
            args.set = (args.set or []) + [f"arch={args.genotype or args.arch}"]
        if args.method:
            args.set = (args.set or []) + [f"method={args.method}"]
        cfg = make_config(args, "train").for_dataset()
        from .genotypes import GenotypeError, load_genotype
        from .networks import HUMAN_ARCHS, canonical_arch

        key = canonical_arch(cfg.arch)
        if key not in HUMAN_ARCHS:
            load_genotype(cfg.arch)  # fail early with the genotype's own message
        t = AdversarialTrainer(cfg, args.out, args.data_root, progress=not args.no_progress)
        try:
            if t._resumed and t.shard.main:
                print(f"resuming {args.out} at epoch {t.epoch + 1}, step {t.step}", file=sys.stderr)
            res = t.fit()
            if t.shard.main:
                ranks = f" on {t.shard.world_size} processes" if t.shard.active else ""
                print(f"{cfg.arch}: {t.n_params / 1e6:.3f}M params{ranks}; final {res['final']}")
        finally:
            distributed.finish()
        return 0

    p.set_defaults(func=run)
