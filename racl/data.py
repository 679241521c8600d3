"""Datasets and a tensor-resident loader.

Datasets are held as uint8 arrays (N, 3, H, W) with int64 labels, from one of:

* ``cifar10`` / ``cifar100``: torchvision, downloaded into ``root`` where there is internet
  (``download=True``) or read from an existing ``cifar-10-batches-py`` folder;
* ``tinyimagenet``: the standard ``tiny-imagenet-200`` folder layout (train/<wnid>/images,
  val/images + val_annotations.txt; its val split serves as the test split);
* a ``.npz`` file with ``x_train, y_train, x_test, y_test`` (N, H, W, 3) uint8, the format of
  ``../shared/data``; ``cifar10-mini`` / ``cifar100-mini`` find those files by name in
  ``$RACL_DATA``, the repository's ``data/mini``, ``data/local`` or ``../shared/data``;
* ``synthetic`` (16x16) or ``synthetic-SIZE``: ten smooth random colour templates with
  random shifts, flips and noise, which a small network learns in seconds (for smoke runs).

A missing dataset raises :class:`DatasetNotFoundError` naming every place that was tried; a
``.npz`` whose arrays are not (N, H, W, 3) uint8 images with whole-number class indices in
0..C-1 (float labels with a fraction, one-hot or negative labels, labels beyond ``classes``)
raises :class:`DatasetFormatError` naming the file, at load rather than at the first step.

:class:`Loader` keeps the images on the training device and does the standard CIFAR
augmentation (4-pixel zero-padded random crop, horizontal flip) there. Each batch's
randomness comes from its own generator seeded by (seed, epoch, step), so a run resumed
from any step sees exactly the batches it would have seen.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np
import torch

DEFAULT_ROOT = Path(os.environ.get("RACL_DATA_ROOT", Path(__file__).resolve().parent.parent / "data" / "downloads"))

STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "tinyimagenet": ((0.4802, 0.4481, 0.3975), (0.2302, 0.2265, 0.2262)),
    "synthetic": ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
}


class DatasetNotFoundError(FileNotFoundError):
    """Raised with a message naming what was looked for and where."""


@dataclass
class ArrayData:
    x: torch.Tensor  # uint8 (N, 3, H, W)
    y: torch.Tensor  # int64 (N,)
    num_classes: int
    name: str
    source: str
    mean: tuple = STATS["cifar10"][0]
    std: tuple = STATS["cifar10"][1]
    classes: Sequence[str] = field(default_factory=list)

    def __len__(self):
        return len(self.y)

    @property
    def image_size(self) -> int:
        return int(self.x.shape[-1])

    def subset(self, idx) -> "ArrayData":
        idx = torch.as_tensor(idx, dtype=torch.long)
        return ArrayData(self.x[idx], self.y[idx], self.num_classes, self.name, self.source, self.mean, self.std, self.classes)

    def head(self, n: Optional[int]) -> "ArrayData":
        """The first ``n`` examples (all of them for None)."""
        return self if not n else self.subset(torch.arange(min(n, len(self))))


class DatasetFormatError(ValueError):
    """A dataset whose arrays are not images and class labels of the expected form."""


def _from_hwc(x: np.ndarray, y, source: str = "", **kw) -> ArrayData:
    where = f"{source}: " if source else ""
    x = np.asarray(x)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        hint = " (scale float images in [0, 1] by 255 and round to uint8)" if x.dtype.kind == "f" else ""
        if x.ndim == 4 and x.shape[1] == 3 and x.shape[-1] != 3:
            hint = " (these look channels-first: transpose to (N, H, W, 3))"
        raise DatasetFormatError(f"{where}expected uint8 images of shape (N, H, W, 3), got {x.dtype} {x.shape}{hint}")
    if x.shape[0] == 0:
        raise DatasetFormatError(f"{where}holds no images")
    if x.shape[1] != x.shape[2]:
        raise DatasetFormatError(f"{where}images must be square (H = W), got {x.shape[1]}x{x.shape[2]}")
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    yt = torch.as_tensor(np.asarray(y), dtype=torch.long)
    if len(xt) != len(yt):
        raise DatasetFormatError(f"{where}{len(xt)} images but {len(yt)} labels")
    return ArrayData(xt, yt, source=source, **kw)


def check_labels(y, path, key: str, num_classes: Optional[int] = None) -> np.ndarray:
    """Class indices (int64, shape (N,)) from the label array ``key`` of ``path``, or a
    :class:`DatasetFormatError` naming the file: float labels that are not whole numbers
    (which ``int()`` would silently truncate), one-hot or 2-D labels, negative labels and
    labels outside ``0 .. num_classes - 1`` are refused."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        looks = (" (they look one-hot: store the class indices, y.argmax(1))"
                 if y.ndim == 2 and y.size and np.isin(y, (0, 1)).all() and (y.sum(1) == 1).all() else "")
        raise DatasetFormatError(f"{path}: {key} must be class indices of shape (N,), got shape {y.shape}{looks}")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all():
            raise DatasetFormatError(f"{path}: {key} holds NaN or infinite labels")
        if (y != np.round(y)).any():
            i = int(np.flatnonzero(y != np.round(y))[0])
            raise DatasetFormatError(f"{path}: {key} holds non-integer labels (e.g. {key}[{i}] = {y[i]}); "
                                     f"labels must be class indices 0..C-1")
    elif y.dtype.kind not in "iu":
        raise DatasetFormatError(f"{path}: {key} must hold integer class indices, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.size and y.min() < 0:
        raise DatasetFormatError(f"{path}: {key} holds negative labels (min {y.min()}); labels must be class indices 0..C-1")
    if num_classes is not None and y.size and y.max() >= num_classes:
        raise DatasetFormatError(f"{path}: {key} holds label {y.max()}, outside 0..{num_classes - 1} "
                                 f"({num_classes} classes)")
    return y


def search_paths() -> list[Path]:
    repo = Path(__file__).resolve().parent.parent
    paths = []
    if os.environ.get("RACL_DATA"):
        paths.append(Path(os.environ["RACL_DATA"]))
    # data/mini: inside the repository, so a clone (e.g. in Colab) carries the files with it
    paths += [repo / "data" / "mini", repo / "data" / "local", repo.parent / "shared" / "data",
              Path.cwd().parent / "shared" / "data"]
    return paths


def _load_npz(path: Path, split: str, name: str) -> ArrayData:
    """One split of a ``.npz`` (x_train, y_train, x_test, y_test; optional classes), its
    images and labels checked (see :func:`check_labels`), both splits' labels against the
    same class count."""
    import zipfile

    if not zipfile.is_zipfile(path):
        raise DatasetFormatError(f"{path} is not a .npz archive (numpy.savez writes one with x_train, y_train, x_test, y_test)")
    try:
        z = np.load(path, allow_pickle=False)
        files = list(z.files)
    except Exception as e:  # noqa: BLE001 - re-raised with context
        raise DatasetFormatError(f"could not read {path} as a .npz archive ({type(e).__name__}: "
                                 f"{' '.join(str(e).split())[:200]})") from e
    key = "train" if split == "train" else "test"
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in files]
    if missing:
        raise DatasetFormatError(f"{path} lacks {', '.join(missing)} (has: {', '.join(files) or 'nothing'}); "
                                 f"a dataset .npz holds x_train, y_train, x_test, y_test")
    try:
        classes = [str(c) for c in z["classes"]] if "classes" in files else []
        num_classes = len(classes) or None
        ys = {k: check_labels(z[f"y_{k}"], path, f"y_{k}", num_classes) for k in ("train", "test")}
        x = z[f"x_{key}"]
        other = z[f"x_{'test' if key == 'train' else 'train'}"]
    except (ValueError, OSError, EOFError) as e:
        if isinstance(e, DatasetFormatError):
            raise
        raise DatasetFormatError(f"could not read {path} ({type(e).__name__}: {' '.join(str(e).split())[:200]})") from e
    if num_classes is None:
        num_classes = int(max(ys["train"].max(initial=-1), ys["test"].max(initial=-1))) + 1
    if num_classes < 2:
        raise DatasetFormatError(f"{path}: the labels name {num_classes} class(es); a classifier needs at least 2")
    if other.ndim == 4 and x.ndim == 4 and other.shape[-1] == x.shape[-1] == 3 and other.shape[1:] != x.shape[1:]:
        raise DatasetFormatError(f"{path}: x_train and x_test hold images of different shapes "
                                 f"({tuple(z['x_train'].shape[1:])} and {tuple(z['x_test'].shape[1:])})")
    base = name.split("-")[0]
    mean, std = STATS.get(base, STATS["cifar10"] if num_classes <= 10 else STATS["cifar100"])
    return _from_hwc(x, ys[key], source=str(path), num_classes=num_classes, name=name, mean=mean, std=std, classes=classes)


def _load_cifar(name: str, split: str, root: Path, download: bool) -> ArrayData:
    import torchvision

    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    folder = "cifar-10-batches-py" if name == "cifar10" else "cifar-100-python"
    try:
        ds = cls(str(root), train=(split == "train"), download=download)
    except Exception as e:  # noqa: BLE001 - no internet, corrupt archive, missing folder
        raise DatasetNotFoundError(
            f"{name} ({split}) not found: looked for {root / folder}"
            + (f" and tried to download it into {root}, which failed ({type(e).__name__}: {e})" if download else "")
            + f". Put the torchvision folder there, pass --data-root, or use a local .npz "
            f"(e.g. --dataset {name}-mini, found in {', '.join(map(str, search_paths()))})."
        ) from e
    mean, std = STATS[name]
    return _from_hwc(ds.data, ds.targets, num_classes=len(ds.classes), name=name, source=f"torchvision:{root / folder}",
                     mean=mean, std=std, classes=list(ds.classes))


def _load_tinyimagenet(split: str, root: Path) -> ArrayData:
    from PIL import Image

    base = root / "tiny-imagenet-200" if (root / "tiny-imagenet-200").exists() else root
    wnids_file = base / "wnids.txt"
    if not wnids_file.exists():
        archive = root / "tiny-imagenet-200.zip"
        raise DatasetNotFoundError(
            f"Tiny-ImageNet not found: looked for {wnids_file} (the tiny-imagenet-200 folder layout). "
            f"Download http://cs231n.stanford.edu/tiny-imagenet-200.zip and unzip it into {root}"
            + (f" ({archive} exists: unzip it)" if archive.exists() else "") + ", or pass --data-root."
        )
    cache = base / f"racl-cache-{split}.npz"
    wnids = [w.strip() for w in wnids_file.read_text().split() if w.strip()]
    index = {w: i for i, w in enumerate(wnids)}
    if cache.exists():
        z = np.load(cache)
        x, y = z["x"], z["y"]
    else:
        files, labels = [], []
        if split == "train":
            for w in wnids:
                for f in sorted((base / "train" / w / "images").glob("*.JPEG")):
                    files.append(f)
                    labels.append(index[w])
        else:
            ann = base / "val" / "val_annotations.txt"
            if not ann.exists():
                raise DatasetNotFoundError(f"Tiny-ImageNet validation labels not found: looked for {ann}")
            for line in ann.read_text().splitlines():
                parts = line.split("\t")
                if len(parts) >= 2:
                    files.append(base / "val" / "images" / parts[0])
                    labels.append(index[parts[1]])
        if not files:
            raise DatasetNotFoundError(f"no Tiny-ImageNet {split} images under {base}")
        x = np.stack([np.asarray(Image.open(f).convert("RGB").resize((64, 64))) for f in files])
        y = np.asarray(labels, dtype=np.int64)
        try:
            np.savez(cache, x=x, y=y)
        except OSError:
            pass
    mean, std = STATS["tinyimagenet"]
    return _from_hwc(x, y, num_classes=len(wnids), name="tinyimagenet", source=str(base), mean=mean, std=std, classes=wnids)


def synthetic(split: str = "train", size: int = 16, n: Optional[int] = None, num_classes: int = 10, seed: int = 0) -> ArrayData:
    """Ten smooth random colour templates; each image is its class template, randomly
    shifted and flipped, plus noise. Learnable in a few epochs by a tiny network."""
    n = n or (640 if split == "train" else 320)
    g = torch.Generator().manual_seed(seed)  # templates are shared by both splits
    coarse = torch.rand(num_classes, 3, 4, 4, generator=g)
    templates = torch.nn.functional.interpolate(coarse, size=(size + 4, size + 4), mode="bilinear", align_corners=False)
    gs = torch.Generator().manual_seed(seed + (1 if split == "train" else 2))
    y = torch.randint(0, num_classes, (n,), generator=gs)
    dx = torch.randint(0, 5, (n,), generator=gs)
    dy = torch.randint(0, 5, (n,), generator=gs)
    imgs = torch.stack([templates[y[i], :, dy[i] : dy[i] + size, dx[i] : dx[i] + size] for i in range(n)])
    flip = torch.rand(n, generator=gs) < 0.5
    imgs[flip] = imgs[flip].flip(-1)
    imgs = (0.75 * imgs + 0.25 * torch.rand(imgs.shape, generator=gs)).clamp(0, 1)
    x = (imgs * 255).round().to(torch.uint8)
    mean, std = STATS["synthetic"]
    return ArrayData(x, y, num_classes, f"synthetic-{size}", f"synthetic(seed={seed})", mean, std, [f"class{i}" for i in range(num_classes)])


def load_dataset(name: str, split: str = "train", root: Optional[str | Path] = None, download: bool = True) -> ArrayData:
    """Load ``split`` ('train' or 'test') of dataset ``name`` (see the module docstring)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(root) if root else DEFAULT_ROOT
    if name.endswith(".npz"):
        p = Path(name)
        if not p.exists():
            raise DatasetNotFoundError(f"dataset file {p} does not exist")
        return _load_npz(p, split, p.stem)
    if name.startswith("synthetic"):
        size = int(name.split("-", 1)[1]) if "-" in name else 16
        return synthetic(split, size=size)
    if name in ("cifar10", "cifar100"):
        return _load_cifar(name, split, root, download)
    if name in ("tinyimagenet", "tiny-imagenet"):
        return _load_tinyimagenet(split, root)
    if name.endswith("-mini"):
        tried = []
        for d in search_paths():
            p = d / f"{name}.npz"
            tried.append(str(p))
            if p.exists():
                return _load_npz(p, split, name)
        raise DatasetNotFoundError(f"{name}.npz not found; looked in: {', '.join(tried)}. Set RACL_DATA to its folder.")
    raise DatasetNotFoundError(f"unknown dataset {name!r}: use cifar10, cifar100, tinyimagenet, cifar10-mini, cifar100-mini, synthetic[-SIZE] or a .npz path")


def split_indices(n: int, portion: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random split of range(n) into a ``portion`` part and the rest (search: weights / arch)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    k = int(round(portion * n))
    return perm[:k], perm[k:]


def batch_seed(*keys: int) -> int:
    return int(np.random.SeedSequence([int(k) & 0xFFFFFFFF for k in keys]).generate_state(1)[0])


def augment_batch(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop (zero padding ``pad``) and horizontal flip of a float batch (B, C, H, W)."""
    B, C, H, W = x.shape
    off = torch.randint(0, 2 * pad + 1, (2, B), generator=gen).to(x.device)
    flip = (torch.rand(B, generator=gen) < 0.5).to(x.device)
    xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    rows = (off[0][:, None] + torch.arange(H, device=x.device)).view(B, 1, H, 1)
    cols = off[1][:, None] + torch.arange(W, device=x.device)
    cols = torch.where(flip[:, None], cols.flip(1), cols).view(B, 1, 1, W)
    return xp[torch.arange(B, device=x.device).view(B, 1, 1, 1), torch.arange(C, device=x.device).view(1, C, 1, 1), rows, cols]


class Loader:
    """Batches of (float images in [0, 1], labels) from uint8 tensors kept on ``device``."""

    def __init__(self, data: ArrayData, batch_size: int, shuffle: bool = True, augment: bool = False,
                 seed: int = 0, device: str | torch.device = "cpu", drop_last: bool = False, stream: int = 0):
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        self.x = data.x.to(device)
        self.y = data.y.to(device)
        self.batch_size, self.shuffle, self.augment = batch_size, shuffle, augment
        self.seed, self.device, self.drop_last, self.stream = seed, torch.device(device), drop_last, stream

    def __len__(self):
        n = len(self.y)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def epoch(self, epoch: int = 0, start: int = 0) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        n = len(self.y)
        if self.shuffle:
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(batch_seed(self.seed, self.stream, epoch))).to(self.device)
        else:
            perm = torch.arange(n, device=self.device)
        for step in range(start, len(self)):
            idx = perm[step * self.batch_size : (step + 1) * self.batch_size]
            x = self.x[idx].float().div_(255)
            if self.augment:
                x = augment_batch(x, torch.Generator().manual_seed(batch_seed(self.seed, self.stream, epoch, step)))
            yield step, x, self.y[idx]

    def __iter__(self):
        for _, x, y in self.epoch(0):
            yield x, y
