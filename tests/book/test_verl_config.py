"""The page "From the book to verl": its verl configuration, chapter 6's PPO-GAE run, passes verl 0.9.1's own checks.

The page and this test take the overrides from :func:`gaebook.lm.verl.chapter6_overrides` and the
compose-and-validate path from :func:`gaebook.lm.verl.validated_ppo_trainer`: they cannot drift apart.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from hydra.errors import InstantiationException

from gaebook.lm.hf import char_tokenizer, tiny_llama
from gaebook.lm.verl import (
    CHAPTER6_PPO_GAE,
    CHAPTER6_TASK,
    ENV_VAR,
    ESTIMATOR_NAME,
    EXTERNAL_MODULE,
    chapter6_overrides,
    ppo_trainer_overrides,
    validated_ppo_trainer,
)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny Llama and its tokenizer for chapter 6's task, saved where verl's config points."""
    path = tmp_path_factory.mktemp("tiny_llama")
    tokenizer = char_tokenizer(CHAPTER6_TASK.alphabet)
    tiny_llama(tokenizer, generator=torch.Generator().manual_seed(0)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def test_the_pages_configuration_passes_verls_checks_with_chapter_6s_settings(model_path: str) -> None:
    config = validated_ppo_trainer(chapter6_overrides(model_path))
    algorithm = config.algorithm
    assert algorithm.adv_estimator == ESTIMATOR_NAME
    assert (algorithm.gamma, algorithm.lam) == (CHAPTER6_PPO_GAE.gamma, CHAPTER6_PPO_GAE.lam_actor)
    assert algorithm.use_kl_in_reward and algorithm.kl_penalty == "kl"
    assert algorithm.kl_ctrl.kl_coef == CHAPTER6_PPO_GAE.kl_coef
    assert config.critic.enable and config.critic.model.path == model_path
    assert config.actor_rollout_ref.model.path == model_path
    assert config.data.train_batch_size == CHAPTER6_PPO_GAE.n_prompts
    assert config.data.max_response_length == CHAPTER6_TASK.max_new_tokens
    assert config.ray_kwargs.ray_init.runtime_env.env_vars[ENV_VAR] == EXTERNAL_MODULE


def test_verls_checks_can_fail(model_path: str) -> None:
    """A minibatch larger than the batch is refused by verl's own validation."""
    overrides = [*chapter6_overrides(model_path), "actor_rollout_ref.actor.ppo_mini_batch_size=128"]
    with pytest.raises((ValueError, InstantiationException), match="ppo_mini_batch_size"):
        validated_ppo_trainer(overrides)


def test_the_kl_and_aggregation_options_map_to_settings_verl_accepts(model_path: str) -> None:
    """The adaptive KL controller, the KL loss term and the aggregation mode, as verl reads them."""
    options = dataclasses.replace(
        CHAPTER6_PPO_GAE, kl_target=6.0, kl_loss_coef=0.05, kl_loss_estimator="k2", loss_agg_mode="seq-mean-token-mean"
    )
    task = CHAPTER6_TASK
    config = validated_ppo_trainer(
        ppo_trainer_overrides(
            options,
            model_path=model_path,
            max_prompt_length=1 + task.max_depth + 2 * task.max_pairs + 1,
            max_response_length=task.max_new_tokens,
        )
    )
    assert config.algorithm.kl_ctrl.type == "adaptive" and config.algorithm.kl_ctrl.target_kl == 6.0
    actor = config.actor_rollout_ref.actor
    assert actor.use_kl_loss and actor.kl_loss_coef == 0.05 and actor.kl_loss_type == "mse"
    assert actor.loss_agg_mode == config.critic.loss_agg_mode == "seq-mean-token-mean"
