"""The benchmark's gaebook-zoo run must train with the rl-baselines3-zoo's settings as SB3 does."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from torch.testing import assert_close

pytest.importorskip("stable_baselines3")
import torch.nn.functional as F

from gaebook.envs import CartPole
from gaebook.networks import ActorCritic
from gaebook.ppo import ppo_loss

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("ppo_cartpole_benchmark", ROOT / "benchmarks" / "ppo_cartpole.py")
assert _spec is not None and _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
sys.modules["ppo_cartpole_benchmark"] = bench
_spec.loader.exec_module(bench)


def test_the_zoo_config_has_the_zoo_rollout_minibatches_and_schedule():
    config, net = bench.zoo_config(bench.SB3_ZOO)
    zoo = bench.SB3_ZOO["kwargs"]
    assert (config.n_envs, config.n_steps) == (bench.SB3_ZOO["n_envs"], zoo["n_steps"])
    assert config.n_envs * config.n_steps // config.n_minibatches == zoo["batch_size"]
    assert (config.n_epochs, config.gamma, config.lam) == (zoo["n_epochs"], zoo["gamma"], zoo["gae_lambda"])
    # the zoo's schedules start at lr and clip and anneal linearly: lr is annealed in gaebook too
    assert config.lr == zoo["learning_rate"](1.0) and config.anneal_lr
    assert config.clip_coef == zoo["clip_range"](1.0)
    assert not config.clip_vloss and config.norm_adv and config.ent_coef == zoo["ent_coef"]
    assert config.max_grad_norm == bench.sb3_default("max_grad_norm")
    assert config.total_steps == bench.SB3_ZOO["n_timesteps"]
    assert net == {"hidden": 64, "shared": False}


def test_a_batch_that_does_not_split_into_minibatches_is_refused():
    zoo = {**bench.SB3_ZOO, "kwargs": {**bench.SB3_ZOO["kwargs"], "batch_size": 100}}
    with pytest.raises(ValueError, match="batch_size"):
        bench.zoo_config(zoo)


def test_the_mapped_loss_is_sb3s_loss():
    """SB3's PPO loss: clipped surrogate + ent_coef * (-entropy) + vf_coef * mse(returns, values)."""
    config, _ = bench.zoo_config(bench.SB3_ZOO)
    g = torch.Generator().manual_seed(0)
    log_probs, old_log_probs = 0.3 * torch.randn(2, 1, 256, generator=g)
    adv, values, old_values, entropy = torch.randn(4, 1, 256, generator=g)
    returns = 10 * torch.randn(1, 256, generator=g)
    loss, _ = ppo_loss(
        log_probs, old_log_probs, adv, values, old_values, returns, entropy,
        clip_coef=config.clip_coef, clip_vloss=config.clip_vloss, vf_coef=config.vf_coef, ent_coef=config.ent_coef,
    )  # fmt: skip
    ratio = (log_probs - old_log_probs).exp()
    clip = config.clip_coef
    policy_loss = -torch.min(adv * ratio, adv * ratio.clamp(1 - clip, 1 + clip)).mean()
    sb3_loss = (
        policy_loss
        + bench.SB3_ZOO["kwargs"]["ent_coef"] * -entropy.mean()
        + bench.sb3_default("vf_coef") * F.mse_loss(returns, values)
    )
    assert_close(loss, sb3_loss.reshape(1))


def test_the_mapped_networks_have_sb3s_parameter_count():
    import gymnasium as gym
    from stable_baselines3 import PPO

    env = gym.make("CartPole-v1")
    model = PPO("MlpPolicy", env, device="cpu", seed=0)
    _, net = bench.zoo_config(bench.SB3_ZOO)
    agent = ActorCritic(CartPole.observation_size, n_actions=CartPole.n_actions, generator=torch.Generator(), **net)
    assert sum(p.numel() for p in agent.parameters()) == sum(p.numel() for p in model.policy.parameters())
    env.close()
