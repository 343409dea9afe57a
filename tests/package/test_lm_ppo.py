"""Tests of gaebook.lm_ppo: the LM PPO loop on a tiny task."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from gaebook.lm import CharTokenizer, TinyGPT, ValueModel, frozen_copy, pretrain
from gaebook.lm_ppo import LMPPOConfig, evaluate, rollout, train
from gaebook.tasks import CreditProbe

TASK = CreditProbe(2)
TOK = CharTokenizer(TASK.alphabet)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run fastest on one thread (and do not fight other processes for cores)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def pretrained(one_thread) -> TinyGPT:
    """A policy that writes the format but gets the key right only about half the time."""
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = TinyGPT(TOK.vocab_size, max_len=2 + TASK.max_new_tokens, d_model=32, n_layers=1, n_heads=2)
    data = TOK.batch(TASK.demonstrations(1000, corruption=0.6, generator=g))
    pretrain(model, data, steps=150, batch_size=32, lr=1e-2, generator=g, progress=False)
    return model


def test_ppo_gae_improves_the_reward(pretrained):
    prompts = TASK.prompts(300, generator=torch.Generator().manual_seed(1))
    before, _ = evaluate(pretrained, TASK, TOK, prompts, generator=torch.Generator().manual_seed(2))
    policy = copy.deepcopy(pretrained)
    config = LMPPOConfig(iterations=15, n_prompts=32, lr=1e-3)
    history = train(policy, TASK, TOK, config, generator=torch.Generator().manual_seed(3), progress=False)
    after, _responses = evaluate(policy, TASK, TOK, prompts, generator=torch.Generator().manual_seed(2))
    assert before.mean() < 0.7, f"the pretrained policy should be imperfect; accuracy {before.mean():.2f}"
    assert after.mean() > before.mean() + 0.2, f"accuracy {before.mean():.2f} -> {after.mean():.2f}"
    assert history.reward.shape == (15,) and history.kl[-1] > 0
    assert all(torch.isfinite(getattr(history, f)).all() for f in ("value_loss", "explained_variance", "entropy"))
    # the reference model was frozen at the start: the pretrained weights are untouched
    assert not torch.equal(policy.head.weight, pretrained.head.weight)


@pytest.mark.parametrize("advantage", ["grpo", "rloo", "reinforce++"])
def test_critic_free_estimators_run(pretrained, advantage):
    policy = copy.deepcopy(pretrained)
    config = LMPPOConfig(iterations=2, n_prompts=8, group_size=4, advantage=advantage)
    history = train(policy, TASK, TOK, config, generator=torch.Generator().manual_seed(0), progress=False)
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
        kl_estimator="k3",
        value_pretrain_steps=2,
        ent_coef=0.01,
    )
    history = train(
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


def test_rollout_rewards(pretrained):
    config = LMPPOConfig(n_prompts=16, group_size=2, kl_coef=0.5, truncation_penalty=2.0, max_new_tokens=3)
    r = rollout(pretrained, frozen_copy(pretrained), TASK, TOK, config, generator=torch.Generator().manual_seed(0))
    assert r.texts[0] == r.texts[1] and len(r.responses) == 32
    torch.testing.assert_close(r.scores, r.correct - 2.0 * r.samples.truncated.float())
    # the policy is its own reference: no KL, so the rewards are the scores on the last tokens
    torch.testing.assert_close(r.rewards.sum(1), r.scores)


def test_bad_config():
    with pytest.raises(ValueError, match="needs group_size"):
        LMPPOConfig(advantage="grpo")
    with pytest.raises(ValueError, match="advantage must be"):
        LMPPOConfig(advantage="ppo")
    with pytest.raises(ValueError, match="lam_critic"):
        LMPPOConfig(lam_critic=1.5)
    with pytest.raises(ValueError, match="n_minibatches"):
        LMPPOConfig(n_prompts=5, n_minibatches=2)
    with pytest.raises(ValueError, match="kl_estimator"):
        LMPPOConfig(kl_estimator="k2")
    with pytest.raises(ValueError, match="iterations"):
        LMPPOConfig(iterations=0)
