"""MART (Wang et al., ICLR 2020; the paper's [62]), the paper profile's objective (Sec. 4.1:
"Following [62], the hyperparameter which balances the adversarial loss and KL divergence is
set to 6"), and the paper profile training on the entire training set."""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from racl.profiles import get_profile
from racl.training import AdversarialTrainer, adversarial_loss, mart_attack

TINY = dict(max_train_images=96, epochs=1, batch_size=32, layers=3, init_channels=4, attack_steps=1)


def _mart_by_hand(logits, logits_adv, y, beta):
    """MART's loss from its definition (Wang et al., Eq. 8 with the reference code's
    constants), in float64 with plain Python loops: (1/B) sum_i [ -log p'_{i,y} -
    log(1.0001 - max_{k != y} p'_{i,k}) + beta * KL(p_i || p'_i) * (1.0000001 - p_{i,y}) ]."""
    total = 0.0
    for z, za, t in zip(logits.double().tolist(), logits_adv.double().tolist(), y.tolist()):
        p = [math.exp(v - max(z)) for v in z]
        p = [v / sum(p) for v in p]
        pa = [math.exp(v - max(za)) for v in za]
        pa = [v / sum(pa) for v in pa]
        wrong = max(pa[k] for k in range(len(pa)) if k != t)
        bce = -math.log(pa[t]) - math.log(1.0001 - wrong + 1e-12)
        kl = sum(pk * (math.log(pk) - math.log(pak + 1e-12)) for pk, pak in zip(p, pa) if pk > 0)
        total += bce + beta * kl * (1.0000001 - p[t])
    return total / len(y)


def test_mart_loss_matches_its_definition():
    # an identity "model": the inputs are the logits, so the loss can be written out by hand
    g = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(16, 10, generator=g)
    logits_adv = logits + torch.randn(16, 10, generator=g)
    y = torch.randint(0, 10, (16,), generator=g)
    logits_adv[0, y[0]] += 20  # one example whose adversarial prediction is confidently right
    model = nn.Identity()
    for beta in (0.0, 1.0, 6.0):
        ours = adversarial_loss("mart", model, logits, y, logits_adv, beta).item()
        # float32 softmax / log over 10 classes against float64: relative error ~1e-6
        assert ours == pytest.approx(_mart_by_hand(logits, logits_adv, y, beta), rel=2e-5)


def _mart_reference(logits, logits_adv, y, beta):
    """MART's loss as Wang et al.'s reference code writes it: the KL's target is softmax(f(x))."""
    p_adv = F.softmax(logits_adv, 1)
    top2 = p_adv.argsort(1)[:, -2:]
    new_y = torch.where(top2[:, -1] == y, top2[:, -2], top2[:, -1])
    bce = F.cross_entropy(logits_adv, y) + F.nll_loss(torch.log(1.0001 - p_adv + 1e-12), new_y)
    p_nat = F.softmax(logits, 1)
    true_prob = p_nat.gather(1, y[:, None]).squeeze(1)
    kl = (F.kl_div(torch.log(p_adv + 1e-12), p_nat, reduction="none").sum(1) * (1.0000001 - true_prob)).mean()
    return bce + beta * kl


def test_mart_gradient_equals_the_reference_codes_and_stays_finite_where_a_probability_underflows():
    """Ours takes the KL's target as log_softmax (log_target=True), the reference code as
    softmax: equal in value and gradient, compared in float64 where rounding is ~1e-16 (one
    evaluation, no iteration to amplify it); where a clean probability underflows to 0 (logits
    150 apart in float32), the reference's gradient is NaN (0 * log 0) and ours is finite."""
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (16,), generator=g)
    logits = (3 * torch.randn(16, 10, generator=g)).double()
    logits_adv = logits + torch.randn(16, 10, generator=g).double()
    grads = []
    for fn in (lambda a, b: adversarial_loss("mart", nn.Identity(), a, y, b, 6.0), lambda a, b: _mart_reference(a, b, y, 6.0)):
        a, b = logits.clone().requires_grad_(), logits_adv.clone().requires_grad_()
        loss = fn(a, b)
        loss.backward()
        grads.append((loss.item(), a.grad, b.grad))
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-12, abs=1e-12)
    for ours, ref in zip(grads[0][1:], grads[1][1:]):
        assert torch.allclose(ours, ref, rtol=1e-10, atol=1e-12)
    far = torch.zeros(4, 10)
    far[:, 0] = 150.0  # exp(-150) underflows to 0 in float32: 9 clean probabilities are exactly 0
    far_adv = torch.randn(4, 10, generator=g)
    yb = torch.tensor([1, 2, 3, 4])  # the clean prediction is wrong: the KL term has its full weight
    assert (F.softmax(far, 1) == 0).sum() == 36
    grads = []
    for fn in (lambda a, b: adversarial_loss("mart", nn.Identity(), a, yb, b, 6.0), lambda a, b: _mart_reference(a, b, yb, 6.0)):
        a, b = far.clone().requires_grad_(), far_adv.clone().requires_grad_()
        fn(a, b).backward()
        grads.append(a.grad)
    assert torch.isnan(grads[1]).any()  # the reference code's gradient
    assert torch.isfinite(grads[0]).all()  # ours


def test_mart_kl_term_is_weighted_by_clean_misclassification():
    model = nn.Identity()
    y = torch.tensor([0, 0])
    logits_adv = torch.tensor([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    sure = torch.tensor([[30.0, 0.0, 0.0], [30.0, 0.0, 0.0]])  # p_y(clean) = 1 in float32: weight 1e-7
    unsure = torch.tensor([[0.0, 3.0, 0.0], [0.0, 3.0, 0.0]])  # p_y(clean) ~ 0.045
    bce = adversarial_loss("mart", model, sure, y, logits_adv, 0.0)
    # a clean prediction that is right with certainty switches the KL term off
    assert (adversarial_loss("mart", model, sure, y, logits_adv, 6.0) - bce).abs().item() < 1e-5
    kl = F.kl_div(torch.log(F.softmax(logits_adv, 1)), F.softmax(unsure, 1), reduction="none").sum(1)
    weight = 1.0000001 - F.softmax(unsure, 1)[:, 0]
    got = adversarial_loss("mart", model, unsure, y, logits_adv, 6.0) - bce
    assert got.item() == pytest.approx(6.0 * (kl * weight).mean().item(), rel=1e-5)


def test_mart_crafts_with_ce_pgd_from_a_small_gaussian_start():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10)).eval()
    x = torch.rand(32, 3, 8, 8)
    y = torch.randint(0, 10, (32,))
    eps = 8 / 255
    # zero steps: the start, x + 0.001 N(0, 1) kept in [0, 1]
    start = mart_attack(model, x, y, eps, 2 / 255, 0, torch.Generator().manual_seed(1))
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    assert torch.equal(start, torch.min(torch.max(x + 0.001 * noise, x - eps), x + eps).clamp(0, 1))
    x_adv = mart_attack(model, x, y, eps, 2 / 255, 10, torch.Generator().manual_seed(1))
    assert (x_adv - x).abs().max() <= eps + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    ce = lambda t: F.cross_entropy(model(t), y).item()  # noqa: E731
    assert ce(x_adv) > ce(start) + 0.1  # it ascends the cross-entropy


def test_paper_profile_is_mart_beta_6_on_the_entire_training_set():
    cfg = get_profile("paper", kind="train")
    assert (cfg.method, cfg.beta, cfg.val_images) == ("mart", 6.0, 0)
    # mini follows the paper's objective (its PGD-AT records stay as a labelled comparison);
    # smoke keeps PGD-AT, one forward pass per step cheaper, for CI and the book's build
    assert get_profile("mini", kind="train").method == "mart" and get_profile("smoke", kind="train").method == "pgd"
    assert get_profile("mini", kind="train").val_images == 256


def test_mart_training_on_the_entire_training_set():
    cfg = get_profile("smoke", {**TINY, "method": "mart", "val_images": 0}, kind="train")
    t = AdversarialTrainer(cfg, None, progress=False)
    assert t.val_loader is None and len(t.train_loader.y) == 96
    res = t.fit()
    row = res["final"]
    assert math.isfinite(row["train_loss"]) and not any(k.startswith("val_") for k in row)
    with_val = AdversarialTrainer(get_profile("smoke", {**TINY, "val_images": 32}, kind="train"), None, progress=False)
    assert len(with_val.train_loader.y) == 64 and len(with_val.val_loader.y) == 32
