"""Proximal Policy Optimization with GAE, for one agent or many trained side by side.

The training loop reads top to bottom like CleanRL's ``ppo.py``: collect a rollout, compute
advantages and returns with :func:`gaebook.gae`, then several epochs of clipped-surrogate
minibatch updates. Everything carries a leading agent dimension ``G`` (see
:mod:`gaebook.networks`), so a λ sweep over many seeds is one call with ``lam`` a tensor of
shape ``(G,)``.

An environment (a :class:`gaebook.envs.VectorEnv`) has ``reset() -> obs`` and
``step(actions) -> (next_obs, rewards, terminated, truncated, final_obs)`` on tensors of shape
``(G, n_envs, ...)``, with same-step autoreset: ``next_obs`` is already the reset observation
where an episode ended, and ``final_obs`` the observation the step reached, which a truncated
episode bootstraps from. :class:`gaebook.envs.CartPole` is one;
:class:`gaebook.envs.GymnasiumVectorEnv` adapts Gymnasium's vector environments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor
from tqdm import tqdm

from gaebook.advantages import discounted_returns, gae
from gaebook.envs import VectorEnv
from gaebook.networks import ActorCritic

__all__ = ["History", "PPOConfig", "evaluate", "ppo_loss", "train"]


@dataclass(frozen=True)
class PPOConfig:
    """Hyperparameters; the defaults are CleanRL's for classic control.

    ``lam`` may be a tensor of shape ``(G,)``: one λ per agent. ``critic_target`` chooses what the
    critic regresses on: the λ-return (``advantages + values``, the consistent choice) or the
    Monte Carlo return without bootstrap (what seed 003's ``compute_returns`` does).
    """

    n_envs: int = 4
    n_steps: int = 128
    total_steps: int = 100_000
    gamma: float = 0.99
    lam: float | Tensor = 0.95
    lr: float = 2.5e-4
    anneal_lr: bool = True
    n_epochs: int = 4
    n_minibatches: int = 4
    clip_coef: float = 0.2
    clip_vloss: bool = True
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    norm_adv: bool = True
    critic_target: Literal["lambda_return", "monte_carlo"] = "lambda_return"

    def __post_init__(self) -> None:
        for name in ("n_envs", "n_steps", "total_steps", "n_epochs", "n_minibatches"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int; got {value!r}")
        if self.total_steps < self.n_envs * self.n_steps:
            raise ValueError("total_steps must cover at least one rollout of n_envs * n_steps steps")
        if (self.n_envs * self.n_steps) % self.n_minibatches:
            raise ValueError("n_minibatches must divide n_envs * n_steps")
        if self.critic_target not in ("lambda_return", "monte_carlo"):
            raise ValueError(f"critic_target must be 'lambda_return' or 'monte_carlo'; got {self.critic_target!r}")

    @property
    def n_iterations(self) -> int:
        return self.total_steps // (self.n_envs * self.n_steps)


@dataclass
class History:
    """What :func:`train` measured, one column per iteration; every tensor is on the CPU.

    ``episode_return`` is the mean return of the episodes that ended during the iteration
    (NaN if none did); the loss statistics are means over the iteration's minibatches.
    All per-agent fields have shape ``(G, n_iterations)``; ``env_steps`` is ``(n_iterations,)``,
    the environment steps per agent so far.
    """

    env_steps: Tensor
    episode_return: Tensor
    policy_loss: Tensor
    value_loss: Tensor
    entropy: Tensor
    approx_kl: Tensor
    clip_fraction: Tensor
    explained_variance: Tensor
    extra: dict[str, Tensor] = field(default_factory=dict)


def _mean(x: Tensor, mask: Tensor | None) -> Tensor:
    """Mean over every dimension but the first (the agents); a masked mean with ``mask``."""
    dims = tuple(range(1, x.ndim))
    if mask is None:
        return x.mean(dim=dims)
    return (x * mask).sum(dim=dims) / mask.sum(dim=dims).clamp_min(1)


def ppo_loss(
    log_probs: Tensor,
    old_log_probs: Tensor,
    advantages: Tensor,
    values: Tensor,
    old_values: Tensor,
    returns: Tensor,
    entropy: Tensor,
    *,
    clip_coef: float,
    clip_vloss: bool,
    vf_coef: float,
    ent_coef: float,
    mask: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The PPO objective per agent: clipped surrogate, (clipped) value loss and entropy bonus.

    Every input has shape ``(G, ...)``; ``mask`` (bool, same shape) restricts the means to valid
    positions, as for the tokens of a response. Returns ``(loss, stats)`` where ``loss`` is
    ``(G,)`` (minimise its sum: agents share no parameters) and ``stats`` holds the ``(G,)``
    detached ``policy_loss``, ``value_loss``, ``entropy``, ``approx_kl`` (the ``k3`` estimator
    ``E[(r − 1) − log r]``) and ``clip_fraction``.
    """
    log_ratio = log_probs - old_log_probs
    ratio = log_ratio.exp()
    surrogate = torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - clip_coef, 1 + clip_coef))
    policy_loss = _mean(surrogate, mask)
    value_error = (values - returns) ** 2
    if clip_vloss:
        clipped = old_values + (values - old_values).clamp(-clip_coef, clip_coef)
        value_error = torch.max(value_error, (clipped - returns) ** 2)
    value_loss = 0.5 * _mean(value_error, mask)
    entropy_mean = _mean(entropy, mask)
    loss = policy_loss + vf_coef * value_loss - ent_coef * entropy_mean
    with torch.no_grad():
        stats = {
            "policy_loss": policy_loss.detach(),
            "value_loss": value_loss.detach(),
            "entropy": entropy_mean.detach(),
            "approx_kl": _mean((ratio - 1) - log_ratio, mask),
            "clip_fraction": _mean(((ratio - 1).abs() > clip_coef).to(ratio.dtype), mask),
        }
    return loss, stats


def _clip_grad_norm_per_agent(params: list[Tensor], max_norm: float) -> None:
    """Scale each agent's gradient (the slices ``[g]`` of every parameter) to norm ``≤ max_norm``."""
    grads = [p.grad for p in params if p.grad is not None]
    sq = torch.stack([g.flatten(1).square().sum(1) for g in grads]).sum(0)
    scale = (max_norm / (sq.sqrt() + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.view(-1, *([1] * (g.ndim - 1))))


def train(
    env: VectorEnv,
    agent: ActorCritic,
    config: PPOConfig,
    *,
    generator: torch.Generator,
    progress: bool = True,
    stop: Callable[[int], bool] | None = None,
) -> History:
    """Train ``agent`` with PPO-GAE on ``env`` for ``config.total_steps`` steps per agent.

    ``env`` must hold ``config.n_envs`` environments for each of the agent's ``G`` agents.
    ``stop``, if given, is called after every iteration with the number of iterations done and
    ends training early when it returns ``True`` (to measure time to solve, say). Returns the
    :class:`History` of the run, one column per iteration done.
    """
    obs = env.reset()
    n_agents = agent.n_agents
    if obs.shape[:2] != (n_agents, config.n_envs):
        raise ValueError(
            f"env must hold (n_agents, n_envs) = ({n_agents}, {config.n_envs}) environments; "
            f"its observations have shape {tuple(obs.shape)}"
        )
    device = obs.device
    lam = config.lam.to(device).unsqueeze(-1) if isinstance(config.lam, Tensor) else config.lam
    params = list(agent.parameters())
    # The fused kernel updates every parameter in one op: with networks this small, Adam's
    # per-parameter loop otherwise costs more than the arithmetic.
    optimizer = torch.optim.Adam(params, lr=config.lr, eps=1e-5, fused=device.type in ("cpu", "cuda"))
    batch = config.n_envs * config.n_steps
    minibatch = batch // config.n_minibatches
    episode_return = torch.zeros(n_agents, config.n_envs, device=device)
    columns: dict[str, list[Tensor]] = {k: [] for k in History.__dataclass_fields__ if k not in ("env_steps", "extra")}

    bar = tqdm(range(config.n_iterations), desc="PPO", disable=not progress, unit="it")
    for iteration in bar:
        if config.anneal_lr:
            optimizer.param_groups[0]["lr"] = config.lr * (1 - iteration / config.n_iterations)

        # 1. collect: n_steps steps of every environment, time last
        steps: dict[str, list[Tensor]] = {
            k: [] for k in ("obs", "actions", "log_probs", "values", "rewards", "terminated", "truncated", "final_obs")
        }
        finished_sum = torch.zeros(n_agents, device=device)
        finished_count = torch.zeros(n_agents, device=device)
        for _ in range(config.n_steps):
            actions, log_probs, values = agent.act(obs, generator=generator)
            next_obs, rewards, terminated, truncated, final_obs = env.step(actions, check_actions=False)
            for key, value in zip(
                steps, (obs, actions, log_probs, values, rewards, terminated, truncated, final_obs), strict=True
            ):
                steps[key].append(value)
            episode_return += rewards
            done = terminated | truncated
            finished_sum += (episode_return * done).sum(-1)
            finished_count += done.sum(-1)
            episode_return = episode_return.masked_fill(done, 0.0)
            obs = next_obs
        r = {k: torch.stack(v, dim=2) for k, v in steps.items()}  # (G, n_envs, n_steps, ...)

        # 2. advantages and returns: bootstrap every step from the state it reached
        with torch.no_grad():
            next_values = agent.value(r["final_obs"])
            advantages, returns = gae(
                r["rewards"],
                r["values"],
                next_values,
                r["terminated"],
                r["truncated"],
                gamma=config.gamma,
                lam=lam,
                check_finite=False,
            )
            if config.critic_target == "monte_carlo":
                returns = discounted_returns(
                    r["rewards"], r["terminated"], r["truncated"], gamma=config.gamma, check_finite=False
                )

        # 3. update: n_epochs passes over the batch in shuffled minibatches
        flat = {k: v.flatten(1, 2) for k, v in r.items() if k != "final_obs"}
        flat["advantages"], flat["returns"] = advantages.flatten(1), returns.flatten(1)
        sums: dict[str, Tensor] = {}
        for _ in range(config.n_epochs):
            # one minibatch is the whole batch, whose gradient does not depend on the order
            order = torch.randperm(batch, generator=generator, device=device) if config.n_minibatches > 1 else None
            for start in range(0, batch, minibatch):
                mb = flat if order is None else {k: v[:, order[start : start + minibatch]] for k, v in flat.items()}
                log_probs, entropy, values = agent.log_prob_entropy(mb["obs"], mb["actions"])
                adv = mb["advantages"]
                if config.norm_adv:
                    adv = (adv - adv.mean(1, keepdim=True)) / (adv.std(1, keepdim=True) + 1e-8)
                loss, stats = ppo_loss(
                    log_probs,
                    mb["log_probs"],
                    adv,
                    values,
                    mb["values"],
                    mb["returns"],
                    entropy,
                    clip_coef=config.clip_coef,
                    clip_vloss=config.clip_vloss,
                    vf_coef=config.vf_coef,
                    ent_coef=config.ent_coef,
                )
                optimizer.zero_grad()
                loss.sum().backward()
                _clip_grad_norm_per_agent(params, config.max_grad_norm)
                optimizer.step()
                for k, v in stats.items():
                    sums[k] = sums.get(k, 0) + v
        n_updates = config.n_epochs * config.n_minibatches
        for k, v in sums.items():
            columns[k].append(v / n_updates)
        residual = flat["returns"] - flat["values"]
        columns["explained_variance"].append(1 - residual.var(1) / flat["returns"].var(1).clamp_min(1e-8))
        columns["episode_return"].append(finished_sum / finished_count)  # NaN when no episode ended
        if progress and iteration % 10 == 0:
            bar.set_postfix(ret=f"{columns['episode_return'][-1].nanmean().item():.1f}")
        if stop is not None and stop(iteration + 1):
            break

    env_steps = torch.arange(1, len(columns["episode_return"]) + 1) * batch
    return History(env_steps=env_steps, **{k: torch.stack(v, dim=1).cpu() for k, v in columns.items()})


@torch.no_grad()
def evaluate(
    env: VectorEnv, agent: ActorCritic, *, max_steps: int, generator: torch.Generator, greedy: bool = True
) -> Tensor:
    """Return of the first episode of every environment in ``env``: ``(G, n_envs)``.

    Runs until every environment has finished one episode or ``max_steps`` have passed; with
    ``greedy`` the policy takes its most likely action (its mean, for continuous actions).
    """
    obs = env.reset()
    total = torch.zeros(obs.shape[:2], device=obs.device)
    running = torch.ones(obs.shape[:2], dtype=torch.bool, device=obs.device)
    for step in range(max_steps):
        actions, _, _ = agent.act(obs, generator=generator, greedy=greedy)
        obs, rewards, terminated, truncated, _ = env.step(actions, check_actions=False)
        total += rewards * running
        running &= ~(terminated | truncated)
        if step % 50 == 49 and not bool(running.any()):
            break
    return total
