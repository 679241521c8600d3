"""Datasets and the loader."""

import numpy as np
import pytest
import torch

from racl.data import DatasetNotFoundError, Loader, augment_batch, load_dataset, synthetic


def test_shared_cifar_subsets_load(shared_data, monkeypatch):
    monkeypatch.setenv("RACL_DATA", str(shared_data))
    tr = load_dataset("cifar10-mini", "train")
    te = load_dataset("cifar10-mini", "test")
    assert tr.x.shape == (5482, 3, 32, 32) and tr.x.dtype == torch.uint8
    assert te.x.shape == (1017, 3, 32, 32) and tr.num_classes == 10
    assert tr.classes[0] == "airplane"
    c100 = load_dataset(str(shared_data / "cifar100-mini.npz"), "train")
    assert c100.num_classes == 100 and len(c100) == 1117


def test_missing_datasets_say_what_was_looked_for(tmp_path, monkeypatch):
    with pytest.raises(DatasetNotFoundError, match="cifar10 \\(train\\) not found.*" + str(tmp_path)):
        load_dataset("cifar10", "train", root=tmp_path, download=False)
    with pytest.raises(DatasetNotFoundError, match="tiny-imagenet-200"):
        load_dataset("tinyimagenet", "train", root=tmp_path)
    monkeypatch.setenv("RACL_DATA", str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match="looked in"):
        load_dataset("cifar42-mini")
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        load_dataset(str(tmp_path / "nope.npz"))
    with pytest.raises(DatasetNotFoundError, match="unknown dataset"):
        load_dataset("imagenet")


def test_tinyimagenet_folder_layout(tmp_path):
    from PIL import Image

    base = tmp_path / "tiny-imagenet-200"
    wnids = ["n01", "n02"]
    (base).mkdir()
    (base / "wnids.txt").write_text("\n".join(wnids))
    rng = np.random.default_rng(0)
    for w in wnids:
        d = base / "train" / w / "images"
        d.mkdir(parents=True)
        for k in range(3):
            Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(d / f"{w}_{k}.JPEG")
    (base / "val" / "images").mkdir(parents=True)
    lines = []
    for k in range(4):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(base / "val" / "images" / f"val_{k}.JPEG")
        lines.append(f"val_{k}.JPEG\t{wnids[k % 2]}\t0\t0\t63\t63")
    (base / "val" / "val_annotations.txt").write_text("\n".join(lines))
    tr = load_dataset("tinyimagenet", "train", root=tmp_path)
    te = load_dataset("tinyimagenet", "test", root=tmp_path)
    assert tr.x.shape == (6, 3, 64, 64) and tr.num_classes == 2
    assert te.y.tolist() == [0, 1, 0, 1]


def test_loader_is_deterministic_per_epoch_and_step():
    d = synthetic("train", size=16, n=100)
    a = Loader(d, 32, shuffle=True, augment=True, seed=3, drop_last=True)
    b = Loader(d, 32, shuffle=True, augment=True, seed=3, drop_last=True)
    ea = list(a.epoch(2))
    eb = list(b.epoch(2, start=1))  # resuming mid-epoch reproduces the remaining batches
    assert len(ea) == 3 and len(eb) == 2
    for (_, xa, ya), (_, xb, yb) in zip(ea[1:], eb):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(list(a.epoch(1))[0][1], ea[0][1])  # epochs differ
    assert ea[0][1].min() >= 0 and ea[0][1].max() <= 1


def test_augmentation_is_crop_and_flip():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    out = augment_batch(x, torch.Generator().manual_seed(0), pad=0)  # no padding: only flips
    for i in range(2):
        assert torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(-1))
    out = augment_batch(x, torch.Generator().manual_seed(1), pad=4)
    assert out.shape == x.shape


def test_synthetic_is_learnable_and_the_same_templates_in_both_splits():
    tr, te = synthetic("train"), synthetic("test")
    # nearest class mean on raw pixels already beats chance by far
    means = torch.stack([tr.x[tr.y == c].float().mean(0) for c in range(10)])
    d = ((te.x.float()[:, None] - means[None]) ** 2).flatten(2).sum(-1)
    acc = (d.argmin(1) == te.y).float().mean().item()
    assert acc > 0.5


def _npz(path, **arrays):
    rng = np.random.default_rng(0)
    a = dict(x_train=rng.integers(0, 256, (20, 8, 8, 3), dtype=np.uint8), y_train=np.arange(20) % 3,
             x_test=rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8), y_test=np.arange(6) % 3)
    a.update(arrays)
    np.savez(path, **a)
    return str(path)


@pytest.mark.parametrize("arrays,message", [
    (dict(y_train=(np.arange(20) % 3) + 0.5), r"y_train holds non-integer labels \(e.g. y_train\[0\] = 0.5\)"),
    (dict(y_test=np.array([0, 1, 2, -1, 0, 1])), "y_test holds negative labels"),
    (dict(classes=np.array(["a", "b"])), r"y_train holds label 2, outside 0..1 \(2 classes\)"),
    (dict(y_train=np.eye(3, dtype=np.float32)[np.arange(20) % 3]), "one-hot"),
    (dict(y_train=np.array(["a"] * 20)), "integer class indices"),
    (dict(y_train=np.full(20, np.nan)), "NaN"),
    (dict(x_train=np.zeros((20, 8, 8, 3), np.float32)), "expected uint8 images.*float32"),
    (dict(x_train=np.zeros((20, 3, 8, 8), np.uint8), x_test=np.zeros((6, 3, 8, 8), np.uint8)), "channels-first"),
    (dict(x_train=np.zeros((20, 8, 6, 3), np.uint8), x_test=np.zeros((6, 8, 6, 3), np.uint8)), "square"),
    (dict(x_test=np.zeros((6, 16, 16, 3), np.uint8)), "different shapes"),
    (dict(y_train=np.arange(19) % 3), "20 images but 19 labels"),
    (dict(y_train=np.zeros(20, int), y_test=np.zeros(6, int)), "at least 2"),
])
def test_bad_npz_arrays_are_refused_at_load_naming_the_file(tmp_path, arrays, message):
    """Labels that int() would silently truncate, or that would crash the first step, are
    refused when the file is read, with the file's name."""
    from racl.data import DatasetFormatError

    p = _npz(tmp_path / "user.npz", **arrays)
    with pytest.raises(DatasetFormatError, match=str(tmp_path / "user.npz").replace(".", r"\.") + ".*" + message):
        load_dataset(p, "train")


def test_npz_labels_in_other_whole_number_forms_load(tmp_path):
    p = _npz(tmp_path / "ok.npz", y_train=(np.arange(20) % 3).astype(np.float32)[:, None], y_test=np.arange(6, dtype=np.uint8) % 3)
    tr, te = load_dataset(p, "train"), load_dataset(p, "test")
    assert tr.y.dtype == torch.int64 and tr.y.tolist() == [i % 3 for i in range(20)]
    assert te.y.tolist() == [0, 1, 2, 0, 1, 2] and tr.num_classes == te.num_classes == 3


def test_files_that_are_not_dataset_archives(tmp_path):
    from racl.data import DatasetFormatError

    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(DatasetFormatError, match="text.npz is not a .npz archive"):
        load_dataset(str(tmp_path / "text.npz"))
    np.savez(tmp_path / "half.npz", x_train=np.zeros((2, 8, 8, 3), np.uint8))
    with pytest.raises(DatasetFormatError, match="half.npz lacks y_train, x_test, y_test"):
        load_dataset(str(tmp_path / "half.npz"))
