"""Actor-critic networks for a batch of independent agents.

Every parameter has a leading *agent* dimension ``G``, so ``G`` agents (different seeds, or a
different λ each) train at once with the same tensor operations as one: a λ sweep over many
seeds costs little more than a single run. Observations are ``(G, ..., observation_size)``; a
single agent is simply ``G = 1``.

Initialisation follows CleanRL's ``ppo.py``: orthogonal weights with gain √2 in hidden layers,
0.01 on the policy head (a near-uniform first policy) and 1 on the value head; zero biases.
Parameters are created on the device of the generator that draws them, so a network built with a
CUDA generator lives on the GPU.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor, nn

__all__ = ["ActorCritic", "BatchedLinear"]


class BatchedLinear(nn.Module):
    """``G`` independent linear layers: ``(G, ..., fan_in) -> (G, ..., fan_out)``.

    The weights are orthogonal (times ``gain``), drawn with ``generator`` on its device, where
    the parameters are created.
    """

    def __init__(self, n_agents: int, fan_in: int, fan_out: int, *, gain: float, generator: torch.Generator) -> None:
        super().__init__()
        device = generator.device
        weight = torch.empty(n_agents, fan_out, fan_in, device=device)
        for w in weight:  # orthogonal per agent, drawn from the generator
            draw = torch.randn(max(fan_in, fan_out), min(fan_in, fan_out), generator=generator, device=device)
            q, r = torch.linalg.qr(draw)
            q = q * torch.sign(torch.diagonal(r))
            w.copy_(gain * (q if fan_out >= fan_in else q.T)[:fan_out, :fan_in])
        self.weight = nn.Parameter(weight.transpose(1, 2).contiguous())  # (G, fan_in, fan_out)
        self.bias = nn.Parameter(torch.zeros(n_agents, 1, fan_out, device=device))

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[1:-1]
        flat = x.reshape(x.shape[0], -1, x.shape[-1])
        return torch.baddbmm(self.bias, flat, self.weight).reshape(x.shape[0], *lead, -1)


def _mlp(n_agents: int, sizes: list[int], out_gain: float, generator: torch.Generator) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        last = i == len(sizes) - 2
        layers.append(BatchedLinear(n_agents, a, b, gain=out_gain if last else math.sqrt(2), generator=generator))
        if not last:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class ActorCritic(nn.Module):
    """Policy and value networks for ``n_agents`` independent agents.

    Args:
        observation_size: length of an observation vector.
        n_actions: number of discrete actions (a categorical policy), or
        action_size: length of a continuous action (a Gaussian policy with a state-independent,
            learned log standard deviation). Give exactly one of the two.
        n_agents: ``G``, the number of independent agents.
        hidden: width of the two hidden layers.
        shared: one trunk for actor and critic (one optimiser sees both losses) instead of two
            separate networks (as in CleanRL and in one of the source posts this book expands).
        generator: the source of the initial weights; the parameters are created on its device.

    :meth:`act` and :meth:`log_prob_entropy` read nothing back from the device (no host
    synchronisation), for discrete and continuous policies alike.
    """

    def __init__(
        self,
        observation_size: int,
        *,
        n_actions: int | None = None,
        action_size: int | None = None,
        n_agents: int = 1,
        hidden: int = 64,
        shared: bool = False,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        if n_actions is not None and action_size is None:
            out = n_actions
        elif action_size is not None and n_actions is None:
            out = action_size
        else:
            raise ValueError("give exactly one of n_actions (discrete) and action_size (continuous)")
        sizes = dict(
            observation_size=observation_size,
            n_actions=n_actions,
            action_size=action_size,
            n_agents=n_agents,
            hidden=hidden,
        )
        for name, size in sizes.items():
            if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
                raise ValueError(f"{name} must be a positive int; got {size!r}")
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator; got {type(generator).__name__}")
        self.n_agents, self.observation_size = n_agents, observation_size
        self.discrete = n_actions is not None
        self.shared = shared
        self.actor: nn.Module
        self.critic: nn.Module
        if shared:
            self.trunk = _mlp(n_agents, [observation_size, hidden, hidden], math.sqrt(2), generator).append(nn.Tanh())
            self.actor = BatchedLinear(n_agents, hidden, out, gain=0.01, generator=generator)
            self.critic = BatchedLinear(n_agents, hidden, 1, gain=1.0, generator=generator)
        else:
            self.actor = _mlp(n_agents, [observation_size, hidden, hidden, out], 0.01, generator)
            self.critic = _mlp(n_agents, [observation_size, hidden, hidden, 1], 1.0, generator)
        if not self.discrete:
            self.log_std = nn.Parameter(torch.zeros(n_agents, 1, out, device=generator.device))

    def _features(self, obs: Tensor) -> Tensor:
        if obs.shape[0] != self.n_agents or obs.shape[-1] != self.observation_size:
            raise ValueError(
                f"obs must have shape ({self.n_agents}, ..., {self.observation_size}); got {tuple(obs.shape)}"
            )
        return self.trunk(obs) if self.shared else obs

    def value(self, obs: Tensor) -> Tensor:
        """``V(s)``: ``(G, ..., observation_size) -> (G, ...)``."""
        return self.critic(self._features(obs)).squeeze(-1)

    def policy(self, obs: Tensor) -> Tensor:
        """Logits ``(G, ..., n_actions)`` (discrete) or means ``(G, ..., action_size)`` (continuous)."""
        return self.actor(self._features(obs))

    def _std(self, like: Tensor) -> Tensor:
        return self.log_std.exp().reshape(self.n_agents, *([1] * (like.ndim - 2)), -1).expand_as(like)

    def log_prob_entropy(self, obs: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(log π(a|s), entropy of π(·|s), V(s))``, each ``(G, ...)``.

        ``actions`` is long ``(G, ...)`` (discrete) or float ``(G, ..., action_size)``.
        """
        h = self._features(obs)
        out = self.actor(h)
        value = self.critic(h).squeeze(-1)
        if self.discrete:
            logp = torch.log_softmax(out, dim=-1)
            chosen = logp.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
            return chosen, -(logp.exp() * logp).sum(-1), value
        dist = _normal(out, self._std(out))
        return dist.log_prob(actions).sum(-1), dist.entropy().sum(-1), value

    @torch.no_grad()
    def act(self, obs: Tensor, *, generator: torch.Generator, greedy: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """Sample actions: ``(actions, log π(a|s), V(s))``.

        With ``greedy`` the most likely action (the mean, for a Gaussian) is taken. The generator
        makes sampling reproducible (``torch.distributions`` takes none).
        """
        h = self._features(obs)
        out = self.actor(h)
        value = self.critic(h).squeeze(-1)
        if self.discrete:
            logp = torch.log_softmax(out, dim=-1)
            if greedy:
                actions = out.argmax(-1)
            else:  # inverse-CDF sampling, one uniform per decision
                u = torch.rand(out.shape[:-1], generator=generator, device=out.device, dtype=out.dtype)
                cdf = logp.exp().cumsum(-1)
                actions = (cdf < u.unsqueeze(-1)).sum(-1).clamp_max(out.shape[-1] - 1)
            return actions, logp.gather(-1, actions.unsqueeze(-1)).squeeze(-1), value
        std = self._std(out)
        noise = torch.randn(out.shape, generator=generator, device=out.device, dtype=out.dtype)
        actions = out if greedy else out + std * noise
        return actions, _normal(out, std).log_prob(actions).sum(-1), value


def _normal(mean: Tensor, std: Tensor) -> torch.distributions.Normal:
    """The Gaussian policy, without argument checks: validating them reads from the device three times a call."""
    return torch.distributions.Normal(mean, std, validate_args=False)
