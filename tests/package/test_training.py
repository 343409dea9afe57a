"""Tests of gaebook.training: the configuration checks and the averaging of update statistics."""

from __future__ import annotations

import re

import pytest
import torch

from gaebook.lm.ppo import LMPPOConfig
from gaebook.ppo import PPOConfig
from gaebook.training import RunningMeans, check_choice, check_non_negative, check_positive_int, check_unit_interval


def test_check_positive_int():
    for ok in (1, 7, 10**9):
        check_positive_int("n", ok)
    for bad in (0, -3, 2.0, True, "4", None):
        with pytest.raises(ValueError, match=f"^{re.escape(f'n must be a positive int; got {bad!r}')}$"):
            check_positive_int("n", bad)


def test_check_non_negative_and_unit_interval():
    for ok in (0, 0.0, 0.5, 1e9):
        check_non_negative("coef", ok)
    for bad in (-1e-9, float("nan"), False, "1"):
        with pytest.raises(ValueError, match=r"^coef must be a non-negative number"):
            check_non_negative("coef", bad)
    for ok in (0, 0.3, 1.0):
        check_unit_interval("lam", ok)
    for bad in (-0.1, 1.01, float("nan"), None, True):
        with pytest.raises(ValueError, match=r"^lam must lie in \[0, 1\]"):
            check_unit_interval("lam", bad)


def test_check_choice_lists_the_choices():
    check_choice("kind", "b", ("a", "b"))
    with pytest.raises(ValueError, match=r"^kind must be one of 'a', 'b'; got 'c'$"):
        check_choice("kind", "c", ("a", "b"))


def test_running_means_average_each_statistic_on_its_own():
    means = RunningMeans()
    means.add({"loss": torch.tensor([1.0, 10.0]), "kl": torch.tensor([0.5, 0.0])})
    means.add({"loss": torch.tensor([3.0, 20.0]), "kl": torch.tensor([1.5, 1.0])})
    means.add({"loss": torch.tensor([5.0, 0.0]), "kl": torch.tensor([1.0, 2.0])})
    out = means.means()
    assert means.count == 3
    torch.testing.assert_close(out["loss"], torch.tensor([3.0, 10.0]))
    torch.testing.assert_close(out["kl"], torch.tensor([1.0, 1.0]))


def test_running_means_bad_use():
    with pytest.raises(ValueError, match="no statistics were added"):
        RunningMeans().means()
    means = RunningMeans()
    means.add({"loss": torch.zeros(2)})
    with pytest.raises(ValueError, match=r"stats must have the names \['loss'\]; got \['kl'\]"):
        means.add({"kl": torch.zeros(2)})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"n_envs": 0}, "n_envs must be a positive int; got 0"),
        ({"n_steps": True}, "n_steps must be a positive int; got True"),
        ({"n_epochs": 2.5}, "n_epochs must be a positive int; got 2.5"),
        ({"gamma": 1.5}, r"gamma must lie in \[0, 1\]; got 1.5"),
        ({"lam": -0.1}, r"lam must lie in \[0, 1\]; got -0.1"),
        ({"lam": torch.tensor([0.5, 1.25])}, r"lam must lie in \[0, 1\]; got a tensor from 0.5 to 1.25"),
        ({"lam": torch.tensor(0.5)}, r"lam must be a number or a \(G,\) tensor, one λ per agent; got shape \(\)"),
        ({"vf_coef": -1.0}, "vf_coef must be a non-negative number; got -1.0"),
        ({"critic_target": "td"}, "critic_target must be one of 'lambda_return', 'monte_carlo'; got 'td'"),
        ({"n_envs": 3, "n_steps": 5, "n_minibatches": 4}, "n_minibatches must divide n_envs"),
        ({"total_steps": 10}, "total_steps must cover at least one rollout"),
    ],
)
def test_ppo_config_messages_name_the_field(changes, message):
    with pytest.raises(ValueError, match=message):
        PPOConfig(**changes)


def test_both_configs_accept_their_defaults_and_a_lambda_per_agent():
    assert PPOConfig(lam=torch.tensor([0.0, 0.95, 1.0])).n_iterations == 100_000 // (4 * 128)
    assert LMPPOConfig().vf_coef == 1.0 and LMPPOConfig().batch_size == 64
