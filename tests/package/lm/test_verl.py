"""gaebook's GAE as a verl advantage estimator: verl's registry, verl's own GAE and its dispatch, the overrides."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch import Tensor
from torch.testing import assert_close
from verl.trainer.ppo import core_algos

from gaebook import gae
from gaebook.lm.verl import (
    CHAPTER6_PPO_GAE,
    ESTIMATOR_NAME,
    EXTERNAL_MODULE,
    gae_advantage_return,
    ppo_trainer_overrides,
    register_gae_estimator,
)
from gaebook.reductions import masked_whiten


@pytest.fixture(autouse=True)
def own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets a copy of verl's table of estimators, so that its registrations do not leak."""
    monkeypatch.setattr(core_algos, "ADV_ESTIMATOR_REGISTRY", dict(core_algos.ADV_ESTIMATOR_REGISTRY))


def batch(seed: int, kind: str, *, bs: int = 8, length: int = 16) -> tuple[Tensor, Tensor, Tensor]:
    """Rewards, values and an int64 response mask (verl's dtype) of one of three kinds.

    ``eos``: each response ends at a random length, padding after it; ``multi_turn``: besides,
    random runs of observation tokens (mask 0) inside the responses; ``empty_rows``: multi-turn
    with the first and fourth rows entirely masked.
    """
    g = torch.Generator().manual_seed(seed)
    rewards = torch.randn(bs, length, generator=g)
    values = torch.randn(bs, length, generator=g)
    lengths = torch.randint(1, length + 1, (bs,), generator=g)
    mask = torch.arange(length) < lengths.unsqueeze(1)
    if kind != "eos":
        mask &= torch.rand(bs, length, generator=g) > 0.3
        mask[:, 0] = True  # a response starts with the policy's token
    if kind == "empty_rows":
        mask[[0, 3]] = False
    return rewards, values, mask.long()


def on_mask(x: Tensor, mask: Tensor) -> Tensor:
    return x[mask.bool()]


def test_the_estimator_round_trips_through_verls_registry() -> None:
    assert register_gae_estimator("gaebook_round_trip") is gae_advantage_return
    assert core_algos.get_adv_estimator_fn("gaebook_round_trip") is gae_advantage_return
    assert register_gae_estimator() is core_algos.get_adv_estimator_fn(ESTIMATOR_NAME)


@pytest.mark.parametrize("kind", ["eos", "multi_turn", "empty_rows"])
@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(("gamma", "lam"), [(1.0, 0.95), (0.9, 0.7), (1.0, 1.0), (0.99, 0.0)])
def test_through_the_registry_it_equals_verls_gae(kind: str, seed: int, gamma: float, lam: float) -> None:
    rewards, values, mask = batch(seed, kind)
    theirs = core_algos.compute_gae_advantage_return(rewards, values, mask, gamma=gamma, lam=lam)
    register_gae_estimator()
    fn = core_algos.get_adv_estimator_fn(ESTIMATOR_NAME)
    ours = fn(token_level_rewards=rewards, values=values, response_mask=mask, gamma=gamma, lam=lam)
    for o, t in zip(ours, theirs, strict=True):
        assert_close(on_mask(o, mask), on_mask(t, mask))
        assert not on_mask(o, 1 - mask).any(), "0 at masked positions"


def test_the_observation_tokens_matter_and_the_plain_shift_would_differ() -> None:
    """The test above can fail: bootstrapping from the next position instead of the next valid one differs."""
    rewards, values, mask = batch(0, "multi_turn")
    theirs, _ = core_algos.compute_gae_advantage_return(rewards, values, mask, gamma=1.0, lam=0.95)
    m = mask.bool()
    shifted = torch.cat([values[:, 1:], torch.zeros(len(values), 1)], dim=1) * torch.cat(
        [m[:, 1:], torch.zeros(len(m), 1, dtype=torch.bool)], dim=1
    )
    naive, _ = gae(rewards, values, shifted, torch.zeros_like(m), gamma=1.0, lam=0.95, mask=m)
    assert not torch.allclose(on_mask(masked_whiten(naive, m), mask), on_mask(theirs, mask))


@pytest.mark.parametrize("dtype", [torch.bool, torch.int64, torch.float32])
def test_any_mask_dtype_and_gamma_lam_from_verls_algorithm_config(dtype: torch.dtype) -> None:
    rewards, values, mask = batch(1, "multi_turn")
    config = OmegaConf.create({"gamma": 0.9, "lam": 0.8})
    ours = gae_advantage_return(rewards, values, mask.to(dtype), config=config)
    theirs = gae_advantage_return(rewards, values, mask.bool(), gamma=0.9, lam=0.8)
    for o, t in zip(ours, theirs, strict=True):
        assert torch.equal(o, t)


@pytest.mark.parametrize("mode", ["token-mean", "token-sum", "seq-mean-token-sum", "seq-mean-token-mean"])
def test_verls_losses_cannot_tell_the_two_apart(mode: str) -> None:
    """verl reads advantages and returns only on the mask: its aggregated losses are the same."""
    rewards, values, mask = batch(2, "empty_rows")
    ours = gae_advantage_return(rewards, values, mask, gamma=1.0, lam=0.95)
    theirs = core_algos.compute_gae_advantage_return(rewards, values, mask, gamma=1.0, lam=0.95)
    assert not torch.equal(ours[0], theirs[0]), "they differ at masked positions"
    ratio = torch.rand(rewards.shape, generator=torch.Generator().manual_seed(3)) + 0.5
    for o, t in zip(ours, theirs, strict=True):
        assert_close(core_algos.agg_loss(-o * ratio, mask, mode), core_algos.agg_loss(-t * ratio, mask, mode))


def test_registering_again_is_a_no_op_and_a_taken_name_is_refused() -> None:
    register_gae_estimator("gaebook_twice")
    register_gae_estimator("gaebook_twice")
    assert core_algos.get_adv_estimator_fn("gaebook_twice") is gae_advantage_return
    with pytest.raises(ValueError, match="'gae' is already registered"):
        register_gae_estimator("gae")
    assert core_algos.get_adv_estimator_fn("gae") is core_algos.compute_gae_advantage_return
    with pytest.raises(ValueError, match="name"):
        register_gae_estimator("")


def test_bad_input_is_refused_with_the_argument_named() -> None:
    rewards, values, mask = batch(0, "eos")
    with pytest.raises(TypeError, match="values is missing"):
        gae_advantage_return(rewards, response_mask=mask, gamma=1.0, lam=0.95)
    with pytest.raises(ValueError, match="token_level_rewards must be"):
        gae_advantage_return(rewards[0], values[0], mask[0], 1.0, 0.95)
    with pytest.raises(TypeError, match="token_level_rewards"):
        gae_advantage_return(rewards.tolist(), values, mask, 1.0, 0.95)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="response_mask has shape"):
        gae_advantage_return(rewards, values, mask[:, 1:], 1.0, 0.95)
    with pytest.raises(TypeError, match="response_mask must be"):
        gae_advantage_return(rewards, values, None, 1.0, 0.95)
    with pytest.raises(TypeError, match="gamma is missing"):
        gae_advantage_return(rewards, values, mask, lam=0.95)
    with pytest.raises(TypeError, match="lam must be"):
        gae_advantage_return(rewards, values, mask, 1.0, "0.95")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lam must lie"):
        gae_advantage_return(rewards, values, mask, 1.0, 1.5)
    with pytest.raises(ValueError, match="values must be a tensor of token_level_rewards' shape"):
        gae_advantage_return(rewards, values[:, 1:], mask, 1.0, 0.95)


def test_verls_dispatch_passes_no_values_to_a_registered_estimator() -> None:
    """verl 0.9.1's compute_advantage gives values, gamma and lam to its own 'gae' alone: pinned here."""
    from verl import DataProto
    from verl.trainer.ppo.ray_trainer import compute_advantage

    rewards, values, mask = batch(4, "multi_turn")
    register_gae_estimator()
    data = DataProto.from_dict(
        tensors={"token_level_rewards": rewards, "values": values, "response_mask": mask},
        non_tensors={"uid": np.array([str(i // 2) for i in range(len(mask))], dtype=object)},
    )
    config = OmegaConf.create({"gamma": 1.0, "lam": 0.95})
    verl_gae = compute_advantage(data, adv_estimator="gae", gamma=1.0, lam=0.95, config=config)
    ours = gae_advantage_return(rewards, values, mask, config=config)
    assert_close(on_mask(verl_gae.batch["advantages"], mask), on_mask(ours[0], mask))
    with pytest.raises(TypeError, match="values is missing"):
        compute_advantage(data, adv_estimator=ESTIMATOR_NAME, gamma=1.0, lam=0.95, config=config)


def run(code: str, **env: str) -> str:
    environment = {**os.environ, **env}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, check=True)
    return done.stdout.strip()


def test_verl_use_external_modules_makes_import_verl_register_it() -> None:
    code = (
        "import verl\nfrom verl.trainer.ppo.core_algos import get_adv_estimator_fn\n"
        "import gaebook.lm.verl as m\nprint(get_adv_estimator_fn(m.ESTIMATOR_NAME) is m.gae_advantage_return)"
    )
    assert run(code, VERL_USE_EXTERNAL_MODULES=f"json,{EXTERNAL_MODULE}").endswith("True")  # one of a list
    absent = (
        "import verl\nfrom verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY\n"
        "import gaebook.lm.verl as m\nprint(m.ESTIMATOR_NAME in ADV_ESTIMATOR_REGISTRY)"
    )
    assert run(absent, VERL_USE_EXTERNAL_MODULES="").endswith("False")


def test_the_module_imports_without_verl_and_says_what_is_missing() -> None:
    code = (
        "import sys\nsys.modules['verl'] = None  # as if verl were not installed\n"
        "import gaebook.lm.verl as m\n"
        "try:\n    m.register_gae_estimator()\nexcept ImportError as e:\n    print(e)"
    )
    assert "needs verl" in run(code, VERL_USE_EXTERNAL_MODULES="")


def test_the_overrides_map_the_config_and_refuse_what_verl_lacks() -> None:
    overrides = dict(
        o.split("=", 1)
        for o in ppo_trainer_overrides(CHAPTER6_PPO_GAE, model_path="/m", max_prompt_length=18, max_response_length=12)
    )
    assert overrides["algorithm.adv_estimator"] == ESTIMATOR_NAME
    assert float(overrides["algorithm.lam"]) == CHAPTER6_PPO_GAE.lam_actor
    assert float(overrides["algorithm.kl_ctrl.kl_coef"]) == CHAPTER6_PPO_GAE.kl_coef
    assert int(overrides["actor_rollout_ref.actor.ppo_mini_batch_size"]) * CHAPTER6_PPO_GAE.n_minibatches == 64
    assert overrides["algorithm.kl_penalty"] == "kl" and overrides["algorithm.kl_ctrl.type"] == "fixed"
    assert overrides["actor_rollout_ref.actor.use_kl_loss"] == "False"
    assert overrides["actor_rollout_ref.actor.loss_agg_mode"] == "token-mean"
    options = dataclasses.replace(
        CHAPTER6_PPO_GAE,
        kl_target=6.0,
        kl_horizon=5000,
        kl_loss_coef=0.05,
        kl_loss_estimator="k3",
        loss_agg_mode="seq-mean-token-sum-norm",
    )
    mapped = dict(
        o.split("=", 1)
        for o in ppo_trainer_overrides(options, model_path="/m", max_prompt_length=18, max_response_length=12)
    )
    assert mapped["algorithm.kl_ctrl.type"] == "adaptive"
    assert float(mapped["algorithm.kl_ctrl.target_kl"]) == 6.0 and int(mapped["algorithm.kl_ctrl.horizon"]) == 5000
    assert mapped["actor_rollout_ref.actor.use_kl_loss"] == "True"
    assert float(mapped["actor_rollout_ref.actor.kl_loss_coef"]) == 0.05
    assert mapped["actor_rollout_ref.actor.kl_loss_type"] == "low_var_kl"
    assert mapped["actor_rollout_ref.actor.loss_agg_mode"] == "seq-mean-token-sum-norm"
    for change, match in [
        ({"advantage": "grpo", "group_size": 2}, "advantage"),
        ({"lam_critic": 1.0}, "lam_critic"),
        ({"adaptive_lam_alpha": 1.0}, "adaptive_lam_alpha"),
        ({"whiten_advantages": False}, "whiten_advantages"),
        ({"value_pretrain_steps": 10}, "value_pretrain_steps"),
        ({"mask_truncated": True}, "mask_truncated"),
        ({"n_prompts": 6, "group_size": 2, "n_minibatches": 4}, "n_minibatches"),
    ]:
        with pytest.raises(ValueError, match=match):
            ppo_trainer_overrides(
                dataclasses.replace(CHAPTER6_PPO_GAE, **change),
                model_path="/m",
                max_prompt_length=18,
                max_response_length=12,
            )
    with pytest.raises(ValueError, match="model_path"):
        ppo_trainer_overrides(CHAPTER6_PPO_GAE, model_path="", max_prompt_length=18, max_response_length=12)
    with pytest.raises(ValueError, match="max_response_length"):
        ppo_trainer_overrides(CHAPTER6_PPO_GAE, model_path="/m", max_prompt_length=18, max_response_length=0)
