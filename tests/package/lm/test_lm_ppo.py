"""Tests of gaebook.lm.ppo: the LM PPO loop on a tiny task."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from gaebook.lm import ppo as lm_ppo
from gaebook.lm.ppo import (
    ADVANTAGE_ESTIMATORS,
    LOSS_AGG_MODES,
    LMPPOConfig,
    TokenAdvantages,
    advantage_estimator,
    aggregate_loss,
    answer_prompts,
    finetune,
    register_advantage_estimator,
    sample_and_score,
)
from gaebook.lm.tasks import CopyDigits, CreditProbe
from gaebook.lm.tinygpt import CharTokenizer, TinyGPT, ValueModel, frozen_copy, pretrain
from gaebook.ppo import ppo_loss

TASK = CreditProbe(2)
TOK = CharTokenizer(TASK.alphabet)


@pytest.fixture(scope="module")
def pretrained(one_thread) -> TinyGPT:
    """A policy that writes the format but gets the key right only about half the time."""
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = TinyGPT(TOK.vocab_size, max_len=2 + TASK.max_new_tokens, d_model=32, n_layers=1, n_heads=2)
    data = TOK.batch(TASK.demonstrations(1000, corruption=0.6, generator=g))
    pretrain(model, data, steps=150, batch_size=32, lr=1e-2, generator=g, progress=False)
    return model


def snapshot(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def bit_identical(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_ppo_gae_improves_the_reward(pretrained):
    prompts = TASK.prompts(300, generator=torch.Generator().manual_seed(1))
    before, _ = answer_prompts(pretrained, TASK, TOK, prompts, generator=torch.Generator().manual_seed(2))
    policy = copy.deepcopy(pretrained)
    # a trainable copy: only finetune's own care can keep it from changing
    reference = copy.deepcopy(pretrained)
    reference_before = snapshot(reference)
    config = LMPPOConfig(iterations=15, n_prompts=32, lr=1e-3)
    history = finetune(
        policy, TASK, TOK, config, generator=torch.Generator().manual_seed(3), reference=reference, progress=False
    )
    after, _responses = answer_prompts(policy, TASK, TOK, prompts, generator=torch.Generator().manual_seed(2))
    assert before.mean() < 0.7, f"the pretrained policy should be imperfect; accuracy {before.mean():.2f}"
    assert after.mean() > before.mean() + 0.2, f"accuracy {before.mean():.2f} -> {after.mean():.2f}"
    assert history.reward.shape == (15,) and history.kl[-1] > 0
    assert all(torch.isfinite(getattr(history, f)).all() for f in ("value_loss", "explained_variance", "entropy"))
    # the reference of the KL penalty is untouched, bit for bit...
    assert bit_identical(snapshot(reference), reference_before)
    # ...while the policy, trained in place, changed
    assert not bit_identical(snapshot(policy), snapshot(pretrained))


@pytest.mark.parametrize("advantage", ["grpo", "rloo", "reinforce++"])
def test_critic_free_estimators_run(pretrained, advantage):
    policy = copy.deepcopy(pretrained)
    config = LMPPOConfig(iterations=2, n_prompts=8, group_size=4, advantage=advantage)
    history = finetune(policy, TASK, TOK, config, generator=torch.Generator().manual_seed(0), progress=False)
    assert history.reward.shape == (2,) and torch.isnan(history.value_loss).all()
    assert torch.isfinite(history.policy_loss).all()


def test_options_run(pretrained):
    policy = copy.deepcopy(pretrained)
    critic = ValueModel.from_policy(pretrained)
    config = LMPPOConfig(
        iterations=2,
        n_prompts=16,
        lam_actor=0.9,
        lam_critic=1.0,
        adaptive_lam_alpha=1.0,
        kl_target=0.5,
        kl_horizon=100,
        kl_loss_coef=0.05,
        kl_loss_estimator="k3",
        loss_agg_mode="seq-mean-token-mean",
        mask_truncated=True,
        value_pretrain_steps=2,
        ent_coef=0.01,
    )
    history = finetune(
        policy,
        TASK,
        TOK,
        config,
        generator=torch.Generator().manual_seed(0),
        critic=critic,
        reference=frozen_copy(pretrained),
        progress=False,
    )
    assert critic.value_head.weight.abs().sum() > 0, "the critic should have trained"
    assert math.isfinite(history.explained_variance[-1].item())


def test_sample_and_score_rewards(pretrained):
    config = LMPPOConfig(n_prompts=16, group_size=2, kl_coef=0.5, truncation_penalty=2.0, max_new_tokens=3)
    r = sample_and_score(
        pretrained, frozen_copy(pretrained), TASK, TOK, config, generator=torch.Generator().manual_seed(0)
    )
    assert r.texts[0] == r.texts[1] and len(r.responses) == 32
    torch.testing.assert_close(r.scores, r.correct - 2.0 * r.samples.truncated.float())
    # the policy is its own reference: no KL, so the rewards are the scores on the last tokens
    torch.testing.assert_close(r.rewards.sum(1), r.scores)


def test_a_process_task_rewards_each_step_on_its_own_token():
    task = CopyDigits(3)
    tok = CharTokenizer(task.alphabet)
    torch.manual_seed(0)
    # untrained: it writes any token, special tokens too
    policy = TinyGPT(tok.vocab_size, max_len=12, d_model=16, n_layers=1, n_heads=2)
    config = LMPPOConfig(n_prompts=64, kl_coef=0.5, truncation_penalty=2.0, max_new_tokens=5)
    r = sample_and_score(policy, frozen_copy(policy), task, tok, config, generator=torch.Generator().manual_seed(1))
    mask = r.samples.mask
    assert r.samples.truncated.any() and (~r.samples.truncated).any()
    expected = torch.zeros_like(r.rewards)
    for i, (prompt, row) in enumerate(zip(r.texts, r.samples.tokens.tolist(), strict=True)):
        n = int(mask[i].sum()) - int(not r.samples.truncated[i])  # the steps: tokens before EOS
        for t, token in enumerate(row[:n]):
            expected[i, t] = 1 / 3 if t < 3 and tok.token_name(token) == prompt[t] else 0.0  # prompt: 3 digits, '='
        expected[i, int(mask[i].sum()) - 1] -= 2.0 * float(r.samples.truncated[i])
    assert (expected > 0).any(), "some digits should be right by chance"
    # the policy is its own reference: no KL, so the rewards are the steps' and the truncation penalty
    torch.testing.assert_close(r.rewards, expected)
    torch.testing.assert_close(r.scores, expected.sum(1))
    torch.testing.assert_close(r.correct, task.reward(r.texts, r.responses))


def test_a_process_task_must_reward_every_step():
    class OneShort(CopyDigits):
        def step_rewards(self, prompts, steps):
            return [r[:-1] for r in super().step_rewards(prompts, steps)]

    task = OneShort(2)
    tok = CharTokenizer(task.alphabet)
    policy = TinyGPT(tok.vocab_size, max_len=8, d_model=8, n_layers=1, n_heads=1)
    config = LMPPOConfig(n_prompts=4, max_new_tokens=3)
    with pytest.raises(ValueError, match=r"OneShort.step_rewards must return .* one reward per step"):
        sample_and_score(policy, policy, task, tok, config, generator=torch.Generator().manual_seed(0))


def test_a_scorer_cannot_replace_process_rewards():
    task = CopyDigits(2)
    tok = CharTokenizer(task.alphabet)
    policy = TinyGPT(tok.vocab_size, max_len=8, d_model=8, n_layers=1, n_heads=1)
    config = LMPPOConfig(n_prompts=4, max_new_tokens=3)

    def scorer(prompts, samples):
        return torch.zeros(samples.tokens.shape[0])

    with pytest.raises(
        ValueError, match="scorer replaces an outcome task's exact match; CopyDigits has process rewards"
    ):
        sample_and_score(policy, policy, task, tok, config, generator=torch.Generator().manual_seed(0), scorer=scorer)


def test_bad_config():
    with pytest.raises(ValueError, match="advantage='grpo' needs group_size >= 2; got 1"):
        LMPPOConfig(advantage="grpo")
    with pytest.raises(ValueError, match=r"advantage must be one of 'gae', 'grpo', 'rloo', 'reinforce\+\+'; got 'ppo'"):
        LMPPOConfig(advantage="ppo")
    with pytest.raises(ValueError, match=r"lam_critic must lie in \[0, 1\]; got 1\.5"):
        LMPPOConfig(lam_critic=1.5)
    with pytest.raises(ValueError, match="n_minibatches must divide n_prompts"):
        LMPPOConfig(n_prompts=5, n_minibatches=2)
    with pytest.raises(ValueError, match="kl_estimator='k3' cannot go in the reward"):
        LMPPOConfig(kl_estimator="k3")
    with pytest.raises(ValueError, match="loss_agg_mode must be one of 'token-mean', 'seq-mean-token-mean'"):
        LMPPOConfig(loss_agg_mode="seq-mean")
    with pytest.raises(TypeError, match="mask_truncated must be a bool; got 1"):
        LMPPOConfig(mask_truncated=1)
    with pytest.raises(ValueError, match="iterations must be a positive int; got 0"):
        LMPPOConfig(iterations=0)
    with pytest.raises(ValueError, match="n_prompts must be a positive int; got True"):
        LMPPOConfig(n_prompts=True)
    with pytest.raises(ValueError, match=r"vf_coef must be a non-negative number; got -0\.5"):
        LMPPOConfig(vf_coef=-0.5)
    with pytest.raises(ValueError, match="max_new_tokens must be a positive int; got 0"):
        LMPPOConfig(max_new_tokens=0)


def test_vf_coef_weights_the_value_loss(pretrained):
    """With vf_coef = 0 the value loss has no weight: the critic stays as it was; otherwise it trains."""

    def critic_after(vf_coef: float) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        policy = copy.deepcopy(pretrained)
        critic = ValueModel.from_policy(pretrained)
        before = snapshot(critic)
        config = LMPPOConfig(iterations=2, n_prompts=8, vf_coef=vf_coef)
        finetune(policy, TASK, TOK, config, generator=torch.Generator().manual_seed(0), critic=critic, progress=False)
        return before, snapshot(critic)

    before, after = critic_after(0.0)
    assert bit_identical(before, after)
    before, after = critic_after(1.0)
    assert not bit_identical(before, after)


def test_finetune_passes_vf_coef_to_the_loss(pretrained, monkeypatch):
    loss, seen = lm_ppo.ppo_loss, []

    def spy(*args, **kwargs):
        seen.append(kwargs["vf_coef"])
        return loss(*args, **kwargs)

    monkeypatch.setattr(lm_ppo, "ppo_loss", spy)
    config = LMPPOConfig(iterations=1, n_prompts=8, vf_coef=0.25)
    finetune(copy.deepcopy(pretrained), TASK, TOK, config, generator=torch.Generator().manual_seed(0), progress=False)
    assert seen == [0.25] * (config.n_epochs * config.n_minibatches)


def test_the_estimator_table_drives_validation_documentation_and_dispatch(pretrained, monkeypatch):
    assert set(ADVANTAGE_ESTIMATORS) == {"gae", "grpo", "rloo", "reinforce++"}
    for name, estimator in ADVANTAGE_ESTIMATORS.items():
        assert f"``{name!r}``" in (LMPPOConfig.__doc__ or ""), f"{name} is missing from LMPPOConfig's documentation"
        assert advantage_estimator(name) is estimator
    assert advantage_estimator("gae").uses_critic and not advantage_estimator("rloo").uses_critic
    assert advantage_estimator("grpo").min_group_size == 2

    # a new entry is accepted by the configuration and called by finetune; zero advantages leave
    # the policy where it was (no entropy bonus, no critic)
    monkeypatch.setattr(lm_ppo, "ADVANTAGE_ESTIMATORS", dict(ADVANTAGE_ESTIMATORS))
    calls = []

    @register_advantage_estimator("zero", summary="no advantage at all", min_group_size=3)
    def zero(batch, values, config):
        calls.append(values)
        return TokenAdvantages(torch.zeros_like(batch.rewards), None)

    assert "zero" in lm_ppo.ADVANTAGE_ESTIMATORS and "zero" not in ADVANTAGE_ESTIMATORS
    with pytest.raises(ValueError, match=r"advantage='zero' needs group_size >= 3; got 2"):
        LMPPOConfig(advantage="zero", group_size=2)
    policy = copy.deepcopy(pretrained)
    config = LMPPOConfig(iterations=2, n_prompts=4, group_size=3, advantage="zero")
    history = finetune(policy, TASK, TOK, config, generator=torch.Generator().manual_seed(0), progress=False)
    assert calls == [None, None], "finetune calls the entry once per iteration, without critic values"
    assert bit_identical(snapshot(policy), snapshot(pretrained))
    assert torch.isnan(history.value_loss).all() and torch.isnan(history.explained_variance).all()


def test_estimator_table_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"advantage must be one of 'gae', 'grpo', 'rloo', 'reinforce\+\+'; got 'ppo'"):
        advantage_estimator("ppo")
    with pytest.raises(ValueError, match="name 'gae' is already registered"):
        register_advantage_estimator("gae", summary="again")
    with pytest.raises(ValueError, match="min_group_size must be a positive int"):
        register_advantage_estimator("new", summary="none", min_group_size=0)
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        register_advantage_estimator("", summary="none")


def loss_example(seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Per-token PPO inputs (B, T) = (5, 7) with responses of 7, 4, 1, 0 and 3 valid tokens."""
    g = torch.Generator().manual_seed(seed)
    draw = lambda: torch.randn(5, 7, generator=g)  # noqa: E731
    old_log_probs = -draw().abs()
    log_probs = old_log_probs + 0.3 * draw()  # ratios on both sides of the clip range, below 3
    mask = torch.arange(7) < torch.tensor([7, 4, 1, 0, 3]).unsqueeze(1)
    return log_probs, old_log_probs, draw(), draw(), draw(), draw(), draw().abs(), mask


@pytest.mark.parametrize("mode", LOSS_AGG_MODES)
def test_aggregate_loss_is_verls_agg_loss(mode):
    core_algos = pytest.importorskip("verl.trainer.ppo.core_algos")  # the llm extra; make floors runs without it

    *_, x, _, mask = loss_example()
    theirs = core_algos.agg_loss(x, mask.float(), mode)
    torch.testing.assert_close(aggregate_loss(x, mask, mode), theirs)
    torch.testing.assert_close(aggregate_loss(x.unsqueeze(0), mask.unsqueeze(0), mode), theirs.unsqueeze(0))
    # the modes differ on responses of different lengths
    others = [aggregate_loss(x, mask, m) for m in LOSS_AGG_MODES if m != mode]
    assert all(not torch.allclose(aggregate_loss(x, mask, mode), o) for o in others)


@pytest.mark.parametrize("mode", LOSS_AGG_MODES)
@pytest.mark.filterwarnings(
    "ignore:.*compute_policy_loss' is deprecated:FutureWarning"
)  # vanilla's arithmetic, no config
def test_ppo_loss_aggregated_as_verl_aggregates_its_policy_and_value_losses(mode):
    core_algos = pytest.importorskip("verl.trainer.ppo.core_algos")  # the llm extra; make floors runs without it

    log_probs, old_log_probs, advantages, values, old_values, returns, entropy, mask = loss_example(1)
    _, stats = ppo_loss(
        *(x.unsqueeze(0) for x in (log_probs, old_log_probs, advantages, values, old_values, returns, entropy)),
        clip_coef=0.2,
        clip_vloss=True,
        vf_coef=1.0,
        ent_coef=0.0,
        mask=mask.unsqueeze(0),
        reduce=lambda x, m: aggregate_loss(x, m, mode),
    )
    policy_loss, *_ = core_algos.compute_policy_loss(
        old_log_probs, log_probs, advantages, mask.float(), cliprange=0.2, loss_agg_mode=mode
    )
    value_loss, _ = core_algos.compute_value_loss(
        values, returns, old_values, mask.float(), cliprange_value=0.2, loss_agg_mode=mode
    )
    torch.testing.assert_close(stats["policy_loss"], policy_loss.unsqueeze(0))
    torch.testing.assert_close(stats["value_loss"], value_loss.unsqueeze(0))
    torch.testing.assert_close(stats["entropy"], core_algos.agg_loss(entropy, mask.float(), mode).unsqueeze(0))


def test_aggregate_loss_checks_its_arguments():
    x, mask = torch.zeros(2, 3), torch.ones(2, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="mode must be one of"):
        aggregate_loss(x, mask, "seq-sum")
    with pytest.raises(ValueError, match=r"mask must be a bool tensor of loss's shape \(2, 3\)"):
        aggregate_loss(x, mask[:1], "token-mean")
    with pytest.raises(TypeError, match="loss must be a floating tensor"):
        aggregate_loss(torch.zeros(3), None, "token-mean")
    torch.testing.assert_close(aggregate_loss(torch.ones(2, 3), None, "seq-mean-token-sum"), torch.tensor(3.0))


def test_finetune_aggregates_every_loss_term_by_the_mode(pretrained, monkeypatch):
    real, seen = lm_ppo.aggregate_loss, []

    def spy(loss, mask, mode="token-mean"):
        seen.append(mode)
        return real(loss, mask, mode)

    monkeypatch.setattr(lm_ppo, "aggregate_loss", spy)
    config = LMPPOConfig(iterations=1, n_prompts=8, loss_agg_mode="seq-mean-token-sum-norm", kl_loss_coef=0.1)
    finetune(copy.deepcopy(pretrained), TASK, TOK, config, generator=torch.Generator().manual_seed(0), progress=False)
    # per update: the surrogate, the value error, the entropy, the KL term
    assert seen == ["seq-mean-token-sum-norm"] * (4 * config.n_epochs * config.n_minibatches)


def test_the_sequence_modes_are_refused_under_torch_distributed(pretrained, monkeypatch):
    monkeypatch.setattr(lm_ppo.distributed, "world", lambda group=None: (0, 2))
    config = LMPPOConfig(iterations=1, n_prompts=8, loss_agg_mode="seq-mean-token-mean")
    with pytest.raises(
        ValueError, match=r"loss_agg_mode='seq-mean-token-mean' is not supported under torch\.distributed"
    ):
        finetune(pretrained, TASK, TOK, config, generator=torch.Generator().manual_seed(0), progress=False)


def spy_losses(monkeypatch) -> tuple[list, list, list]:
    """Record finetune's batches, its minibatches and the mask of every ppo_loss call."""
    batches, parts, masks = [], [], []
    real_sample, real_minibatches = lm_ppo.sample_and_score, lm_ppo.distributed.minibatches
    monkeypatch.setattr(lm_ppo, "sample_and_score", lambda *a, **k: batches.append(real_sample(*a, **k)) or batches[-1])
    monkeypatch.setattr(lm_ppo.distributed, "minibatches", lambda *a: parts.append(real_minibatches(*a)) or parts[-1])
    monkeypatch.setattr(lm_ppo, "ppo_loss", lambda *a, **k: masks.append(k["mask"].squeeze(0)) or ppo_loss(*a, **k))
    return batches, parts, masks


@pytest.mark.parametrize("mask_truncated", [False, True])
def test_overlong_filtering_masks_the_truncated_responses_out_of_the_loss(monkeypatch, mask_truncated):
    torch.manual_seed(0)  # an untrained policy: some responses end within 3 tokens, others are cut
    policy = TinyGPT(TOK.vocab_size, max_len=2 + TASK.max_new_tokens, d_model=32, n_layers=1, n_heads=2)
    batches, parts, masks = spy_losses(monkeypatch)
    config = LMPPOConfig(iterations=1, n_prompts=16, max_new_tokens=3, mask_truncated=mask_truncated)
    finetune(policy, TASK, TOK, config, generator=torch.Generator().manual_seed(0), progress=False)
    s = batches[0].samples
    assert 0 < s.truncated.sum() < len(s.truncated), "the batch should mix truncated and ended responses"
    kept = s.mask & ~s.truncated.unsqueeze(1) if mask_truncated else s.mask
    expected = [kept[idx] for epoch in parts for idx in epoch]
    assert len(masks) == len(expected) == config.n_epochs * config.n_minibatches
    assert all(torch.equal(m, e) for m, e in zip(masks, expected, strict=True))


def test_overlong_filtering_leaves_a_batch_of_truncated_responses_untrained(pretrained):
    """Every response cut (a budget too short for any answer): the policy and the critic do not move."""

    def trained(mask_truncated: bool) -> tuple[bool, bool]:
        policy, critic = copy.deepcopy(pretrained), ValueModel.from_policy(pretrained)
        before = snapshot(policy), snapshot(critic)
        config = LMPPOConfig(iterations=1, n_prompts=8, max_new_tokens=2, mask_truncated=mask_truncated)
        history = finetune(
            policy, TASK, TOK, config, generator=torch.Generator().manual_seed(0), critic=critic, progress=False
        )
        assert history.truncated.item() == 1.0
        return not bit_identical(before[0], snapshot(policy)), not bit_identical(before[1], snapshot(critic))

    assert trained(False) == (True, True)
    assert trained(True) == (False, False)
