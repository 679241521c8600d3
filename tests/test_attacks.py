"""Attacks and evaluation: eps-ball, effectiveness, AutoAttack, the CW fix, sanity checks."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from racl.attacks import CW, cw_margin, keyed_noise, linf_pgd, make_attack
from racl.data import load_dataset
from racl.evaluation import EvalConfig, evaluate, get_eval_profile, run_attack, sweep, transfer_matrix
from racl.networks import SmallCNN

BOUNDED = ["fgsm", "rfgsm", "mim20", "pgd20", "cw_inf", "noise"]


@pytest.fixture(scope="module")
def data(shared_data):
    """Real CIFAR-10 images (an undefended network on them is easy to attack; the synthetic
    templates are separable by more than 8/255)."""
    tr = load_dataset("cifar10-mini", "train", shared_data)
    te = load_dataset("cifar10-mini", "test", shared_data)
    return (tr.x.float() / 255, tr.y), (te.x[:256].float() / 255, te.y[:256])


@pytest.fixture(scope="module")
def model(data):
    (x, y), _ = data
    torch.manual_seed(0)
    m = SmallCNN()
    opt = torch.optim.Adam(m.parameters(), 3e-3)
    for _ in range(6):
        for i in range(0, len(y), 64):
            opt.zero_grad()
            F.cross_entropy(m(x[i : i + 64]), y[i : i + 64]).backward()
            opt.step()
    return m.eval()


def test_the_undefended_model_is_accurate(model, data):
    _, (x, y) = data
    with torch.no_grad():
        assert (model(x).argmax(1) == y).float().mean() > 0.35  # chance is 0.1


@pytest.mark.parametrize("name", BOUNDED)
def test_attacks_stay_in_the_eps_ball_and_in_range(model, data, name):
    _, (x, y) = data
    eps = 8 / 255
    res = run_attack(model, make_attack(name, eps), x[:64], y[:64])
    assert res["in_eps_ball"] and res["in_range"]
    assert res["max_linf"] <= eps + 1e-6


def test_pgd_drives_an_undefended_model_near_zero(model, data):
    _, (x, y) = data
    assert run_attack(model, make_attack("pgd20", 8 / 255), x, y)["acc"] < 0.05
    assert run_attack(model, make_attack("fgsm", 8 / 255), x, y)["acc"] < 0.5


def test_autoattack_runs_via_pyautoattack(model, data):
    _, (x, y) = data
    res = run_attack(model, make_attack("autoattack", 8 / 255, seed=0), x[:32], y[:32])
    assert res["in_eps_ball"] and res["acc"] <= 0.05
    assert res["params"]["version"] == "standard"


def test_cw_loss_fix_matters_when_all_logits_are_negative():
    import torchattacks

    logits = torch.tensor([[-1.0, -3.0, -2.0]])
    y = torch.tensor([0])
    assert cw_margin(logits, y).item() == pytest.approx(-1.0)  # max other (-2) - true (-1)
    broken = torchattacks.CW(nn.Identity(), c=1).f(logits, y)
    from racl.attacks import _fixed_cw_class

    fixed = _fixed_cw_class()(nn.Identity(), c=1).f(logits, y)
    # the true class wins by 1: the untargeted CW objective is clamp(real - other, -kappa) = 1
    assert fixed.item() == pytest.approx(1.0)
    assert broken.item() != pytest.approx(1.0)  # torchattacks #184: 0 beats every negative logit


def test_cw_l2_attack_succeeds(model, data):
    _, (x, y) = data
    res = run_attack(model, make_attack("cw", 8 / 255, steps=50, lr=0.05), x[:32], y[:32])
    assert res["acc"] < 0.5 and "in_eps_ball" not in res  # unbounded in l-inf


def test_bad_epsilon_is_refused():
    for bad in (8, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"epsilon must lie in \[0, 1\]"):
            make_attack("pgd20", bad)
    with pytest.raises(ValueError):
        EvalConfig(epsilon=8).validate()
    with pytest.raises(KeyError, match="unknown attack"):
        make_attack("deepfool")


def test_sweeps_and_transfer(model, data):
    _, (x, y) = data
    s = sweep(model, x[:64], y[:64], "eps", (0.0, 0.02, 0.05), "fgsm")
    assert s[0]["acc"] >= s[-1]["acc"]
    torch.manual_seed(1)
    other = SmallCNN().eval()
    m = transfer_matrix({"a": model, "b": other}, x[:64], y[:64], make_attack("pgd10", 8 / 255))
    assert set(m) == {"a", "b"} and m["a"]["a"] < 0.1


def test_sanity_checks_pass_on_a_normal_model(model, data):
    _, (x, y) = data
    cfg = get_eval_profile("smoke", attacks=("fgsm", "pgd20"), n=128)
    rec = evaluate(model, x, y, cfg)
    failed = [k for k, v in rec["sanity"].items() if not v["passed"]]
    assert rec["sanity_passed"], failed


def test_sanity_checks_catch_gradient_masking(model, data):
    _, (x, y) = data
    masked = SmallCNN(quantize=4).eval()
    masked.load_state_dict(model.state_dict())
    cfg = get_eval_profile("smoke", attacks=("fgsm", "pgd20"), n=128)
    rec = evaluate(masked, x, y, cfg, source=model)
    assert not rec["sanity_passed"]
    assert not rec["sanity"]["gradients_nonzero"]["passed"]
    assert not rec["sanity"]["white_box_beats_transfer"]["passed"]  # transfer from the clean twin works better


def test_pgd_and_rfgsm_steps_are_torchattacks_steps(model, data):
    """PGD and RFGSM run on linf_pgd (for the keyed random start); from the same start one
    step equals torchattacks'. torchattacks averages the CE over the batch where linf_pgd
    sums it (the same gradient signs) and projects as x + clamp(x' - x) where linf_pgd
    clamps x' to [x - eps, x + eps]: the two differ by at most an ulp of values in [0, 1]
    (6e-8), hence the tolerance of 1e-6."""
    import torchattacks

    _, (x, y) = data
    x, y = x[:32], y[:32]
    ours = make_attack("pgd1", 8 / 255, random_start=False)(model, x, y)
    theirs = torchattacks.PGD(model, eps=8 / 255, alpha=2 / 255, steps=1, random_start=False)(x, y)
    assert (ours - theirs).abs().max().item() <= 1e-6 and (ours - x).abs().max().item() > 1 / 255
    # RFGSM (torchattacks' algorithm): a random step alpha * sign(N(0, 1)) (keyed), then one
    # step alpha * sign(grad), projected
    rf = make_attack("rfgsm", 8 / 255)
    start = (x + rf.alpha * keyed_noise(x.shape, None, 0, 3, "normal").sign()).clamp(0, 1)
    xa = rf(model, x, y)
    x_start = start.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(model(x_start), y), x_start)
    expect = torch.min(torch.max(start + rf.alpha * g.sign(), x - 8 / 255), x + 8 / 255).clamp(0, 1)
    assert (xa - expect).abs().max().item() <= 1e-6


def test_pgd_k_is_the_kth_iterate_of_one_longer_run(model, data):
    """PGD's step size does not depend on its number of steps, so PGD-k from the keyed start
    is the k-th iterate of a longer run from the same start on the same batch: the same
    operations on the same tensors, hence the same bits on any CPU. run_pgd takes every
    length from one run, with the results run_attack gives each one alone."""
    from racl.attacks import PGD
    from racl.evaluation import run_pgd

    _, (x, y) = data
    x, y, index = x[:24], y[:24], torch.arange(100, 124)
    its = dict(PGD(8 / 255, steps=1).iterates(model, x, y, index, at=(5, 1, 3)))
    assert sorted(its) == [1, 3, 5]
    for k in (1, 3, 5):
        assert torch.equal(its[k], make_attack(f"pgd{k}", 8 / 255)(model, x, y, index)), k
    res = run_pgd(model, PGD(8 / 255), (1, 3, 5), x, y, batch_size=16, index=index)
    for k in (1, 3, 5):
        alone = run_attack(model, make_attack(f"pgd{k}", 8 / 255), x, y, batch_size=16, index=index)
        assert {f: res[k][f] for f in ("acc", "n", "correct", "max_linf", "in_range", "in_eps_ball", "params")} == \
            {f: alone[f] for f in ("acc", "n", "correct", "max_linf", "in_range", "in_eps_ball", "params")}, k
    assert res[1]["iterate_of"] == res[3]["iterate_of"] == "pgd5" and "iterate_of" not in res[5]
    assert res[1]["seconds"] <= res[3]["seconds"] <= res[5]["seconds"]
    with pytest.raises(ValueError, match="counted from 1"):
        list(PGD(8 / 255).iterates(model, x, y, index, at=(0, 2)))


def test_linf_pgd_draws_its_random_start_once(model, data):
    """The random start of linf_pgd (the training's PGD) is one draw from its generator."""
    _, (x, y) = data
    x, y, eps = x[:8], y[:8], 8 / 255
    g = torch.Generator().manual_seed(5)
    out = linf_pgd(model, x, y, eps, 2 / 255, 0, generator=g)
    ref = torch.Generator().manual_seed(5)
    assert torch.equal(out, (x + (2 * torch.rand(x.shape, generator=ref) - 1) * eps).clamp(0, 1))
    assert torch.equal(torch.rand(3, generator=g), torch.rand(3, generator=ref))  # one draw consumed, as before


def test_an_evaluation_takes_pgd_and_its_curve_against_iterations_from_one_run(model, data):
    """evaluate: PGD-2 and PGD-4 and the sweep against iterations (on the same examples
    here: sanity_n = n) are the results of each alone; the shorter says it is an iterate."""
    from racl.profiles import get_eval_profile as profile

    _, (x, y) = data
    cfg = profile("smoke", attacks=("pgd2", "fgsm", "pgd4"), n=32, sanity_n=32, batch_size=16, sweep_steps=(1, 2, 4),
                  sweep_eps=(0.03,), sanity=False)
    rec = evaluate(model, x, y, cfg)
    assert list(rec["attacks"]) == ["pgd2", "fgsm", "pgd4"]
    for k in (2, 4):
        alone = run_attack(model, make_attack(f"pgd{k}", cfg.epsilon), x[:32], y[:32], batch_size=16)
        assert rec["attacks"][f"pgd{k}"]["correct"] == alone["correct"]
    assert rec["attacks"]["pgd2"]["iterate_of"] == "pgd4"
    assert rec["sweeps"]["pgd_steps"] == sweep(model, x[:32], y[:32], "steps", (1, 2, 4), eps=cfg.epsilon, batch_size=16)
