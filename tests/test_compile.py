"""The retraining's ``compile`` switch (racl.speed.compiled): the same step as eager PyTorch.

Compared where rounding cannot be amplified: one training step from the same weights with
no attack iterations (a PGD step takes the sign of the input gradient, so a reordered sum
can flip a near-zero component and move a pixel by a whole step), and the input gradient
the attack uses, at fixed weights. torch.compile reorders and fuses fp32 sums of at most a
few hundred terms per output through a few dozen layers: relative differences of order
1e-6, so 1e-4 (values) and 1e-3 (gradients, in norm) leave a wide margin while a wrong
graph differs at order 1. Compiling takes tens of seconds on a CPU; these tests run once in
``make test`` (not in the other-CPU pass).
"""

import pytest
import torch
import torch.nn.functional as F

from racl.profiles import get_profile
from racl.training import AdversarialTrainer

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

TINY = dict(max_train_images=96, val_images=0, epochs=1, batch_size=16, layers=3, init_channels=4, lr=0.1, device="cpu")


def trainer(**kw) -> AdversarialTrainer:
    torch.manual_seed(0)
    return AdversarialTrainer(get_profile("smoke", {**TINY, **kw}, kind="train"), None, progress=False)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm().clamp_min(1e-12)).item()


def test_a_compiled_training_step_and_input_gradient_equal_the_eager_ones():
    torch._dynamo.reset()
    eager, comp = trainer(method="mart", attack_steps=0), trainer(method="mart", attack_steps=0, compile="default")
    assert comp.net is not comp.model and eager.net is eager.model
    before = {k: v.clone() for k, v in eager.model.state_dict().items()}
    for k, v in comp.model.state_dict().items():
        assert torch.equal(v, before[k]), k  # the same initial weights
    _, x, y = next(iter(eager.train_loader.epoch(0)))
    loss_e, _ = eager.train_step(0, 0, x, y)
    loss_c, _ = comp.train_step(0, 0, x, y)
    assert loss_c == pytest.approx(loss_e, rel=1e-4)
    # the SGD update of every parameter and BatchNorm statistic, as one vector: a single small
    # gradient (a BatchNorm bias sums terms that cancel) can differ more in relative terms
    keys = [k for k, v in before.items() if v.is_floating_point()]
    upd = lambda t: torch.cat([(t.model.state_dict()[k] - before[k]).flatten() for k in keys])  # noqa: E731
    assert upd(eager).norm() > 0 and rel(upd(comp), upd(eager)) < 1e-3
    # the checkpoint holds the eager module's names, whichever ran
    assert all(not k.startswith("_orig_mod") for k in comp.state_dict()["model"])
    # the input gradient PGD takes the sign of, at the same (now updated) weights
    comp.model.load_state_dict(eager.model.state_dict())
    grads = []
    for m in (eager.model.eval(), comp.net.eval()):
        xi = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(m(xi), y), xi)
        grads.append(g)
    assert grads[0].abs().sum() > 0 and rel(grads[1], grads[0]) < 1e-3


def test_a_bad_compile_mode_is_a_clear_error(monkeypatch):
    with pytest.raises(ValueError, match="compile must be one of off, default, reduce-overhead, max-autotune; got 'fast'"):
        get_profile("smoke", {"compile": "fast"}, kind="train")
    from racl import speed

    monkeypatch.setattr(speed, "cpp_compiler", lambda: None)  # a machine without g++
    with pytest.raises(ValueError, match="compile=default on the CPU needs a C\\+\\+ compiler"):
        trainer(compile="default")
    assert trainer().net is not None  # compile=off needs none


def test_this_machine_can_compile():
    """`make setup` installs g++ where it is missing: the tests above need it."""
    from racl import speed

    assert speed.cpp_compiler(), "no C++ compiler found for torch.compile on the CPU: run `make setup` (installs g++)"


def test_the_benchmark_times_the_compiled_step_beside_the_eager_one(tmp_path, monkeypatch):
    """The benchmark's plumbing of --compile (keys, speed-up, only under --compile-variant),
    in process with torch.compile replaced by a wrapper that records its calls: the compiled
    step itself is checked above, and compiling again here would cost CI minutes."""
    import importlib.util
    import json
    import sys
    from pathlib import Path

    import racl.speed

    calls = []
    monkeypatch.setattr(racl.speed.torch, "compile", lambda m, **kw: calls.append(kw) or m)
    repo = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("bench", repo / "benchmarks" / "bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.json"
    monkeypatch.setattr(sys, "argv", ["bench.py", "--part", "train", "--variant", "auto", "--cells", "3", "--channels", "4",
                                      "--train-batch", "4", "--pgd-steps", "1", "--repeat", "1", "--warmup", "0",
                                      "--device", "cpu", "--compile", "default,reduce-overhead", "--json", str(out)])
    bench.main()
    assert calls == [{"mode": "default", "dynamic": False}, {"mode": "reduce-overhead", "dynamic": False}]
    rec = json.loads(out.read_text())["results"]
    auto, base = rec["train/auto"], rec["train/baseline"]
    for mode in ("default", "reduce_overhead"):
        key = f"racl_3cell_compile_{mode}"
        assert auto[f"{key}_pgd1_step_s"] > 0 and auto[f"{key}_first_step_s"] > 0
        assert auto[f"{key}_speedup"] == pytest.approx(auto["racl_3cell_pgd1_step_s"] / auto[f"{key}_pgd1_step_s"])
    assert not any("compile" in k for k in base)  # only under --compile-variant (auto)
