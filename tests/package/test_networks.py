"""Tests of gaebook.networks on devices: where parameters live, and what the policies read back."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from host_traffic import host_traffic

from gaebook.networks import ActorCritic, BatchedLinear


class MetaGenerator(torch.Generator):
    """A CPU generator that reports the ``meta`` device, standing in for a CUDA generator.

    Meta kernels compute shapes only and accept any generator, so a network built with it ends up
    on ``meta`` exactly when it allocates and draws on ``generator.device``; one built on the
    CPU regardless (which a real CUDA generator makes fail) ends up on the CPU.
    """

    @property
    def device(self) -> torch.device:
        return torch.device("meta")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


KINDS = [{"n_actions": 3}, {"n_actions": 3, "shared": True}, {"action_size": 2}, {"action_size": 2, "shared": True}]


@pytest.mark.parametrize("kwargs", KINDS)
def test_parameters_are_made_on_the_generators_device(kwargs):
    agent = ActorCritic(5, n_agents=2, generator=MetaGenerator(), **kwargs)
    assert {p.device.type for p in agent.parameters()} == {"meta"}
    layer = BatchedLinear(2, 3, 4, gain=1.0, generator=MetaGenerator())
    assert layer.weight.device.type == layer.bias.device.type == "meta"
    on_cpu = ActorCritic(5, n_agents=2, generator=gen(), **kwargs)  # same shapes on a real device
    assert [p.shape for p in agent.parameters()] == [p.shape for p in on_cpu.parameters()]


def continuous_batch(shared: bool) -> tuple[ActorCritic, torch.Tensor, torch.Tensor]:
    agent = ActorCritic(3, action_size=2, n_agents=2, shared=shared, generator=gen())
    with torch.no_grad():
        agent.log_std.copy_(torch.randn(agent.log_std.shape, generator=gen(1)))
    obs = torch.randn(2, 5, 3, generator=gen(2))
    actions = torch.randn(2, 5, 2, generator=gen(3))
    return agent, obs, actions


@pytest.mark.parametrize("shared", [False, True])
def test_gaussian_log_probs_are_those_of_a_checked_normal(shared):
    agent, obs, actions = continuous_batch(shared)
    mean, std = agent.policy(obs).detach(), agent.log_std.exp().detach()
    checked = torch.distributions.Normal(mean, std.expand_as(mean), validate_args=True)
    logp, entropy, _ = agent.log_prob_entropy(obs, actions)
    assert torch.equal(logp, checked.log_prob(actions).sum(-1))
    assert torch.equal(entropy, checked.entropy().sum(-1))
    sampled, sampled_logp, _ = agent.act(obs, generator=gen(4))
    assert torch.equal(sampled_logp, checked.log_prob(sampled).sum(-1))


@pytest.mark.parametrize("kwargs", KINDS)
def test_policies_read_nothing_from_the_device(kwargs):
    agent = ActorCritic(3, n_agents=2, generator=gen(), **kwargs)
    obs = torch.randn(2, 5, 3, generator=gen(1))
    actions, _, _ = agent.act(obs, generator=gen(2))
    assert host_traffic(lambda: agent.act(obs, generator=gen(2))) == Counter()
    assert host_traffic(lambda: agent.act(obs, generator=gen(2), greedy=True)) == Counter()
    assert host_traffic(lambda: agent.log_prob_entropy(obs, actions)) == Counter()


def test_the_check_sees_the_reads_of_a_checked_normal():
    """The test above could fail: a validating Normal reads three values (mean, scale, action)."""
    mean = torch.zeros(4)
    # validate_args explicitly: a test that ran before may have switched the global default off
    normal = lambda: torch.distributions.Normal(mean, mean + 1, validate_args=True).log_prob(mean)  # noqa: E731
    assert host_traffic(normal)["reads"] == 3


def test_bad_sizes_and_generator():
    with pytest.raises(ValueError, match="observation_size must be a positive int"):
        ActorCritic(0, n_actions=2, generator=gen())
    with pytest.raises(ValueError, match="action_size must be a positive int"):
        ActorCritic(3, action_size=0, generator=gen())
    with pytest.raises(ValueError, match="n_agents must be a positive int"):
        ActorCritic(3, n_actions=2, n_agents=0, generator=gen())
    with pytest.raises(TypeError, match=r"generator must be a torch\.Generator"):
        ActorCritic(3, n_actions=2, generator=0)
    assert ActorCritic(3, n_actions=2, generator=gen()).observation_size == 3
