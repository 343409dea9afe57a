"""The KL to the reference in LM PPO: which estimator is right in the reward and which as a loss
term (exact gradients on a softmax), the configuration that follows, the KL loss term in the
update, and the adaptive KL controller; every new option of LMPPOConfig on CUDA without a host sync."""

from __future__ import annotations

import copy

import pytest
import torch
from fake_cuda import NO_FAKE_CUDA, Harness
from torch.optim.optimizer import register_optimizer_step_pre_hook

from gaebook.lm import ppo as lm_ppo
from gaebook.lm.ppo import LMHistory, LMPPOConfig, adaptive_kl_coef, aggregate_loss, finetune
from gaebook.lm.tasks import CreditProbe
from gaebook.lm.tinygpt import CharTokenizer, TinyGPT, pretrain, sequence_log_probs
from gaebook.lm.token_mdp import KL_ESTIMATORS, kl_penalty

TASK = CreditProbe(2)
TOK = CharTokenizer(TASK.alphabet)

# A few 5-way softmaxes π_θ = softmax(θ) and references π_ref = softmax(θ_ref), in float64.
_G = torch.Generator().manual_seed(0)
SOFTMAXES = [
    (torch.randn(5, generator=_G, dtype=torch.float64), torch.randn(5, generator=_G, dtype=torch.float64))
    for _ in range(3)
]


def exact_kl_gradient(theta: torch.Tensor, ref_theta: torch.Tensor, *, reverse: bool = False) -> torch.Tensor:
    """``∇_θ KL(π_θ ‖ π_ref)`` (``KL(π_ref ‖ π_θ)`` if ``reverse``) by autograd of the exact sum over tokens."""
    theta = theta.clone().requires_grad_()
    log_p, log_q = theta.log_softmax(0), ref_theta.log_softmax(0)
    kl = (log_q.exp() * (log_q - log_p)).sum() if reverse else (log_p.exp() * (log_p - log_q)).sum()
    return torch.autograd.grad(kl, theta)[0]


def reward_form_gradient(theta: torch.Tensor, ref_theta: torch.Tensor, estimator: str) -> torch.Tensor:
    """``E_π[k(a) ∇log π(a)]``: the policy gradient of ``k`` used as a reward (score-function form),
    the expectation taken exactly by enumerating the tokens weighted by ``π``."""
    theta = theta.clone().requires_grad_()
    log_p, log_q = theta.log_softmax(0), ref_theta.log_softmax(0)
    k = kl_penalty(log_p, log_q, estimator=estimator).detach()  # a reward: not differentiated
    return torch.autograd.grad((log_p.exp().detach() * k * log_p).sum(), theta)[0]


def loss_form_gradient(theta: torch.Tensor, ref_theta: torch.Tensor, estimator: str) -> torch.Tensor:
    """``E_π[∇k(a)]``: the gradient of ``k`` used as a loss term, differentiated through ``log π(a)``
    with the samples fixed (their weights ``π(a)`` are not differentiated), exactly."""
    theta = theta.clone().requires_grad_()
    log_p, log_q = theta.log_softmax(0), ref_theta.log_softmax(0)
    k = kl_penalty(log_p, log_q, estimator=estimator)
    return torch.autograd.grad((log_p.exp().detach() * k).sum(), theta)[0]


def exact_estimators(form) -> tuple[set[str], dict[str, float]]:
    """The estimators whose gradient in ``form`` is ∇KL on every softmax, and each one's worst relative error."""
    errors = {}
    for estimator in KL_ESTIMATORS:
        errors[estimator] = max(
            ((form(t, r, estimator) - exact_kl_gradient(t, r)).norm() / exact_kl_gradient(t, r).norm()).item()
            for t, r in SOFTMAXES
        )
    return {e for e, err in errors.items() if err < 1e-12}, errors


def test_in_the_reward_only_k1_has_the_kls_gradient():
    exact, errors = exact_estimators(reward_form_gradient)
    assert exact == {"k1"}, f"relative gradient errors in the reward: {errors}"
    for estimator in ("k2", "k3"):
        assert errors[estimator] > 0.05, f"{estimator} in the reward: relative error only {errors[estimator]:.3g}"
    # the bias of k3 is E_π[(r − 1)∇log π] = Σ_a (π_ref − π)(a) ∇log π(a), as kl_penalty's docstring says
    for t, r in SOFTMAXES:
        theta = t.clone().requires_grad_()
        log_p = theta.log_softmax(0)
        bias = torch.autograd.grad(((r.softmax(0) - log_p.exp()).detach() * log_p).sum(), theta)[0]
        torch.testing.assert_close(reward_form_gradient(t, r, "k3"), exact_kl_gradient(t, r) + bias)


def test_as_a_loss_only_k2_has_the_kls_gradient():
    exact, errors = exact_estimators(loss_form_gradient)
    assert exact == {"k2"}, f"relative gradient errors as a loss: {errors}"
    # k1 has no gradient in expectation (E_π[∇log π] = 0): its error is the whole gradient
    assert errors["k1"] == pytest.approx(1.0, abs=1e-12), f"k1 as a loss: relative error {errors['k1']:.3g}"
    assert errors["k3"] > 0.05, f"k3 as a loss: relative error only {errors['k3']:.3g}"
    # k3's gradient as a loss is that of the reverse KL, KL(π_ref ‖ π)
    for t, r in SOFTMAXES:
        torch.testing.assert_close(loss_form_gradient(t, r, "k3"), exact_kl_gradient(t, r, reverse=True))


def test_the_configuration_accepts_in_the_reward_only_what_is_exact_there():
    exact_in_reward, _ = exact_estimators(reward_form_gradient)
    exact_as_loss, _ = exact_estimators(loss_form_gradient)
    accepted = set()
    for estimator in KL_ESTIMATORS:
        try:
            LMPPOConfig(kl_estimator=estimator)
            accepted.add(estimator)
        except ValueError:
            pass
    assert accepted == exact_in_reward == {LMPPOConfig().kl_estimator}
    assert {LMPPOConfig().kl_loss_estimator} == exact_as_loss


def test_k3_in_the_reward_is_refused_with_the_reason_and_the_way_out():
    for estimator in ("k3", "k2"):
        with pytest.raises(ValueError, match=rf"kl_estimator='{estimator}' cannot go in the reward") as info:
            LMPPOConfig(kl_estimator=estimator)
        message = str(info.value)
        assert "only for k = k1" in message and f"kl_loss_estimator='{estimator}'" in message
        assert "kl_loss_coef > 0" in message
    with pytest.raises(ValueError, match="kl_estimator must be one of 'k1', 'k2', 'k3'; got 'k4'"):
        LMPPOConfig(kl_estimator="k4")
    with pytest.raises(ValueError, match=r"kl_loss_estimator='k1' has no gradient as a loss term"):
        LMPPOConfig(kl_loss_coef=0.1, kl_loss_estimator="k1")
    with pytest.raises(ValueError, match="kl_loss_estimator must be one of"):
        LMPPOConfig(kl_loss_estimator="low_var_kl")
    with pytest.raises(ValueError, match=r"kl_loss_coef must be a non-negative number; got -0\.1"):
        LMPPOConfig(kl_loss_coef=-0.1)
    # GRPO's setting: k3 as a loss term, no KL in the reward
    LMPPOConfig(kl_coef=0.0, kl_loss_coef=0.04, kl_loss_estimator="k3")


@pytest.fixture(scope="module")
def pretrained() -> TinyGPT:
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = TinyGPT(TOK.vocab_size, max_len=2 + TASK.max_new_tokens, d_model=32, n_layers=1, n_heads=2)
    data = TOK.batch(TASK.demonstrations(500, corruption=0.6, generator=g))
    pretrain(model, data, steps=60, batch_size=32, lr=1e-2, generator=g, progress=False)
    return model


def far_reference() -> TinyGPT:
    """A reference far from the pretrained policy: a fresh random model."""
    torch.manual_seed(1)
    return TinyGPT(TOK.vocab_size, max_len=2 + TASK.max_new_tokens, d_model=32, n_layers=1, n_heads=2)


def first_update(pretrained: TinyGPT, config: LMPPOConfig, reference: TinyGPT, monkeypatch) -> tuple:
    """The gradient of finetune's first update and the batch it was computed on."""
    grads, batches = [], []
    real = lm_ppo.sample_and_score

    def spy(*args, **kwargs):
        batches.append(real(*args, **kwargs))
        return batches[-1]

    def before_step(optimizer, *_):
        grads.append([p.grad.clone() for group in optimizer.param_groups for p in group["params"]])

    monkeypatch.setattr(lm_ppo, "sample_and_score", spy)
    hook = register_optimizer_step_pre_hook(before_step)
    try:
        finetune(
            copy.deepcopy(pretrained),
            TASK,
            TOK,
            config,
            generator=torch.Generator().manual_seed(0),
            reference=reference,
            progress=False,
        )
    finally:
        hook.remove()
    return grads[0], batches[0]


@pytest.mark.parametrize(("estimator", "mode"), [("k2", "token-mean"), ("k3", "seq-mean-token-sum-norm")])
def test_the_kl_loss_term_reaches_the_update(pretrained, monkeypatch, estimator, mode):
    """The update's gradient with kl_loss_coef = c is that without it plus c·∇aggregate(k)."""
    coef, reference = 5.0, far_reference()
    common = {
        "iterations": 1,
        "n_prompts": 8,
        "group_size": 2,
        "advantage": "rloo",
        "n_epochs": 1,
        "n_minibatches": 1,
        "max_grad_norm": 1e9,  # no clipping: gradients add
        "kl_loss_estimator": estimator,
        "loss_agg_mode": mode,
    }
    without, batch = first_update(pretrained, LMPPOConfig(**common), reference, monkeypatch)
    with_kl, batch_again = first_update(pretrained, LMPPOConfig(kl_loss_coef=coef, **common), reference, monkeypatch)
    assert torch.equal(batch.samples.tokens, batch_again.samples.tokens), "both runs update on the same batch"
    # the KL term's gradient, computed here on the same batch
    policy = copy.deepcopy(pretrained)
    log_probs, _ = sequence_log_probs(policy, batch.prompts, batch.samples.tokens)
    mask = batch.samples.mask
    kl = kl_penalty(log_probs, batch.ref_log_probs, estimator=estimator).masked_fill(~mask, 0.0)
    (coef * aggregate_loss(kl, mask, mode)).backward()
    expected = [p.grad for p in policy.parameters()]
    difference = [a - b for a, b in zip(with_kl, without, strict=True)]
    norm = torch.cat([e.flatten() for e in expected]).norm().item()
    assert norm > 1e-2, f"the KL term should pull: gradient norm {norm:.3g}"
    for d, e in zip(difference, expected, strict=True):
        torch.testing.assert_close(d, e, rtol=1e-4, atol=1e-6)


def test_adaptive_kl_coef_is_verls_controller():
    AdaptiveKLController = pytest.importorskip("verl.trainer.ppo.core_algos").AdaptiveKLController  # the llm extra

    theirs = AdaptiveKLController(init_kl_coef=0.05, target_kl=2.0, horizon=100)
    ours = torch.tensor(0.05, dtype=torch.float64)
    for kl in (6.0, 2.5, 2.0, 1.9, 0.1, 0.0, 3.0):  # far above (clipped), above, on, below, far below
        theirs.update(kl, n_steps=16)
        ours = adaptive_kl_coef(ours, torch.tensor(kl, dtype=torch.float64), target=2.0, horizon=100, n_steps=16)
        assert ours.item() == pytest.approx(theirs.value, rel=1e-12)


def test_adaptive_kl_coef_checks_its_arguments():
    beta, kl = torch.tensor(0.1), torch.tensor(1.0)
    with pytest.raises(ValueError, match="target must be a positive number"):
        adaptive_kl_coef(beta, kl, target=0.0, horizon=10, n_steps=1)
    with pytest.raises(ValueError, match="horizon must be a positive int"):
        adaptive_kl_coef(beta, kl, target=1.0, horizon=0, n_steps=1)
    with pytest.raises(ValueError, match="n_steps/horizon must be below 5"):
        adaptive_kl_coef(beta, kl, target=1.0, horizon=10, n_steps=50)
    with pytest.raises(ValueError, match=r"kl_coef must be a floating 0-d tensor; got torch.float32 \(1,\)"):
        adaptive_kl_coef(beta.view(1), kl, target=1.0, horizon=10, n_steps=1)
    with pytest.raises(ValueError, match="kl_target needs kl_coef > 0"):
        LMPPOConfig(kl_coef=0.0, kl_target=1.0)
    with pytest.raises(ValueError, match=r"kl_target must be a positive number or None; got -1\.0"):
        LMPPOConfig(kl_target=-1.0)
    with pytest.raises(ValueError, match="kl_horizon must exceed"):
        LMPPOConfig(n_prompts=64, kl_target=1.0, kl_horizon=12)
    with pytest.raises(ValueError, match="kl_horizon must be a positive int"):
        LMPPOConfig(kl_horizon=0)


def run_with_target(pretrained, monkeypatch, kl_target: float | None):
    config = LMPPOConfig(iterations=3, n_prompts=8, kl_coef=0.1, kl_target=kl_target, kl_horizon=10)
    batches = []
    real = lm_ppo.sample_and_score
    monkeypatch.setattr(lm_ppo, "sample_and_score", lambda *a, **k: batches.append(real(*a, **k)) or batches[-1])
    history = finetune(
        copy.deepcopy(pretrained),
        TASK,
        TOK,
        config,
        generator=torch.Generator().manual_seed(0),
        reference=far_reference(),
        progress=False,
    )
    # each iteration's rewards carry that iteration's β
    for beta, b in zip(history.kl_coef, batches, strict=True):
        k1 = ((b.samples.log_probs - b.ref_log_probs) * b.samples.mask).sum(1)
        torch.testing.assert_close(b.rewards.sum(1), b.scores - beta * k1)
    return config, history


def test_beta_rises_above_the_target_and_falls_below(pretrained, monkeypatch):
    for target, direction in ((1e-3, 1), (1e3, -1)):
        config, history = run_with_target(pretrained, monkeypatch, target)
        assert history.kl_coef[0].item() == pytest.approx(0.1)
        steps = history.kl_coef.diff()
        assert (direction * steps > 0).all(), f"target {target}, KL {history.kl.tolist()}: β {history.kl_coef.tolist()}"
        # Ziegler et al.'s rule, from the measured KL; clipped at ±20 % × n/H here, as the KL is far from the target
        error = (history.kl[:-1] / target - 1).clamp(-0.2, 0.2)
        expected = history.kl_coef[:-1] * (1 + error * config.batch_size / config.kl_horizon)
        torch.testing.assert_close(history.kl_coef[1:], expected)


def test_a_fixed_beta_stays_fixed(pretrained, monkeypatch):
    _, history = run_with_target(pretrained, monkeypatch, None)
    assert (history.kl > 0.1).all(), "the reference is far: the KL is large, which a controller would act on"
    assert torch.equal(history.kl_coef, torch.full((3,), 0.1))


@NO_FAKE_CUDA
def test_the_new_options_run_on_cuda_without_host_syncs():
    """The adaptive β, the KL loss term, a sequence aggregation and overlong filtering stay on the device
    (fake ``cuda:0`` of tests/package/fake_cuda.py, or a GPU with ``GAEBOOK_TEST_DEVICE=cuda``)."""
    harness = Harness.from_environment()
    torch.manual_seed(0)
    policy = harness.module(TinyGPT(TOK.vocab_size, max_len=2 + TASK.max_new_tokens, d_model=16, n_layers=1, n_heads=2))
    config = LMPPOConfig(
        iterations=2,
        n_prompts=4,
        group_size=2,
        advantage="grpo",
        n_epochs=1,
        kl_target=0.1,
        kl_horizon=10,
        kl_loss_coef=0.1,
        loss_agg_mode="seq-mean-token-sum-norm",
        mask_truncated=True,
    )
    history: LMHistory = harness.run(finetune, policy, TASK, TOK, config, generator=harness.generator(), progress=False)
    harness.assert_on_device(list(policy.parameters()))
    assert history.kl_coef.shape == (2,) and history.kl_coef.device.type == "cpu"
