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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Literal, NamedTuple, get_args

import torch
from torch import Tensor
from tqdm import tqdm

from gaebook.advantages import discounted_returns, gae
from gaebook.envs import VectorEnv
from gaebook.networks import ActorCritic
from gaebook.reductions import explained_variance_per_agent, mean_per_agent
from gaebook.training import RunningMeans, check_choice, check_non_negative, check_positive_int, check_unit_interval

__all__ = [
    "EVAL_CHECK_EVERY",
    "History",
    "Minibatch",
    "PPOConfig",
    "Transitions",
    "clipped_surrogate",
    "evaluate",
    "ppo_loss",
    "train",
]


CriticTarget = Literal["lambda_return", "monte_carlo"]
CRITIC_TARGETS: tuple[str, ...] = get_args(CriticTarget)


@dataclass(frozen=True)
class PPOConfig:
    """Hyperparameters; the defaults are CleanRL's for classic control.

    ``lam`` may be a tensor of shape ``(G,)``: one λ per agent. ``critic_target`` chooses what the
    critic regresses on: the λ-return (``advantages + values``, the consistent choice) or
    ``"monte_carlo"``, the discounted sum of the rewards in the batch, cut without bootstrap at
    every episode end and at the end of the rollout (:func:`gaebook.discounted_returns`), a
    target that chapter 5 shows to be biased low.
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
    critic_target: CriticTarget = "lambda_return"

    def __post_init__(self) -> None:
        for name in ("n_envs", "n_steps", "total_steps", "n_epochs", "n_minibatches"):
            check_positive_int(name, getattr(self, name))
        for name in ("lr", "clip_coef", "ent_coef", "vf_coef", "max_grad_norm"):
            check_non_negative(name, getattr(self, name))
        check_unit_interval("gamma", self.gamma)
        if not isinstance(self.lam, Tensor):
            check_unit_interval("lam", self.lam)
        elif self.lam.ndim != 1:
            raise ValueError(
                f"lam must be a number or a (G,) tensor, one λ per agent; got shape {tuple(self.lam.shape)}"
            )
        elif not bool(((self.lam >= 0) & (self.lam <= 1)).all()):
            raise ValueError(
                f"lam must lie in [0, 1]; got a tensor from {self.lam.min().item()} to {self.lam.max().item()}"
            )
        check_choice("critic_target", self.critic_target, CRITIC_TARGETS)
        if self.total_steps < self.n_envs * self.n_steps:
            raise ValueError("total_steps must cover at least one rollout of n_envs * n_steps steps")
        if (self.n_envs * self.n_steps) % self.n_minibatches:
            raise ValueError("n_minibatches must divide n_envs * n_steps")

    @property
    def n_iterations(self) -> int:
        return self.total_steps // (self.n_envs * self.n_steps)


@dataclass
class History:
    """What :func:`train` measured, one column per iteration; every tensor is on the CPU.

    ``episode_return`` is the mean return of the episodes that ended during the iteration
    (NaN if none did); the loss statistics are means over the iteration's minibatches.
    All per-agent fields have shape ``(G, n_iterations)``; ``env_steps`` is ``(n_iterations,)``,
    the environment steps per agent so far. ``explained_variance`` is each agent's
    :func:`gaebook.reductions.explained_variance_per_agent` of the critic's targets by its values
    before the update (NaN for an agent whose targets did not vary).
    """

    env_steps: Tensor
    episode_return: Tensor
    policy_loss: Tensor
    value_loss: Tensor
    entropy: Tensor
    approx_kl: Tensor
    clip_fraction: Tensor
    explained_variance: Tensor


class Transitions(NamedTuple):
    """The experience of one iteration: every field ``(G, n_envs, n_steps, ...)``, time third.

    ``obs`` the observations the actions were taken in, ``final_obs`` the observations the steps
    reached (before any reset: what a truncated episode bootstraps from); ``actions``,
    ``log_probs`` and ``values`` the agent's when it acted.
    """

    obs: Tensor
    actions: Tensor
    log_probs: Tensor
    values: Tensor
    rewards: Tensor
    terminated: Tensor
    truncated: Tensor
    final_obs: Tensor


class Minibatch(NamedTuple):
    """What one gradient step uses: every field ``(G, n, ...)``, ``n`` samples per agent."""

    obs: Tensor
    actions: Tensor
    log_probs: Tensor
    values: Tensor
    advantages: Tensor
    returns: Tensor

    def select(self, index: Tensor) -> Minibatch:
        """The samples ``index`` (long ``(n,)``) of every agent."""
        return Minibatch(*(x[:, index] for x in self))


def clipped_surrogate(log_probs: Tensor, old_log_probs: Tensor, advantages: Tensor, *, clip_coef: float) -> Tensor:
    """PPO's clipped surrogate as a loss, per sample: ``max(−A·ρ, −A·clip(ρ, 1 − ε, 1 + ε))``.

    ``ρ = exp(log_probs − old_log_probs)`` is the probability ratio of the action taken, ``A`` its
    advantage and ``ε = clip_coef``. The three inputs have one shape (any); so has the result, the
    negative of the clipped objective ``min(ρA, clip(ρ)A)`` of Schulman et al. (2017), to be
    minimised after a reduction (:func:`ppo_loss` takes the mean per agent). Its gradient in
    ``log_probs`` vanishes exactly where the clip is active: ``ρ > 1 + ε`` with ``A > 0``, ``ρ < 1 − ε``
    with ``A < 0``.
    """
    for name, x in (("log_probs", log_probs), ("old_log_probs", old_log_probs), ("advantages", advantages)):
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a tensor; got {type(x).__name__}")
        if x.shape != log_probs.shape:
            raise ValueError(f"{name} must have the shape of log_probs, {tuple(log_probs.shape)}; got {tuple(x.shape)}")
    check_non_negative("clip_coef", clip_coef)
    ratio = (log_probs - old_log_probs).exp()
    return torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - clip_coef, 1 + clip_coef))


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
    reduce: Callable[[Tensor, Tensor | None], Tensor] = mean_per_agent,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The PPO objective per agent: clipped surrogate (:func:`clipped_surrogate`), (clipped) value
    loss and entropy bonus.

    Every input has shape ``(G, ...)``; ``mask`` (bool, same shape) restricts the means to valid
    positions, as for the tokens of a response. Returns ``(loss, stats)`` where ``loss`` is
    ``(G,)`` (minimise its sum: agents share no parameters) and ``stats`` holds the ``(G,)``
    detached ``policy_loss``, ``value_loss``, ``entropy``, ``approx_kl`` (the ``k3`` estimator
    ``E[(r − 1) − log r]``) and ``clip_fraction``.

    ``reduce(x, mask)`` turns each per-sample term ``(G, ...)`` of the loss (the surrogate, the
    squared value error, the entropy) into ``(G,)``: by default
    :func:`~gaebook.reductions.mean_per_agent`, the mean over the valid positions; the
    language-model trainer passes its loss aggregation (:func:`gaebook.lm.ppo.aggregate_loss`).
    ``approx_kl`` and ``clip_fraction`` are means over the valid positions whatever ``reduce``.
    """
    policy_loss = reduce(clipped_surrogate(log_probs, old_log_probs, advantages, clip_coef=clip_coef), mask)
    value_error = (values - returns) ** 2
    if clip_vloss:
        clipped = old_values + (values - old_values).clamp(-clip_coef, clip_coef)
        value_error = torch.max(value_error, (clipped - returns) ** 2)
    value_loss = 0.5 * reduce(value_error, mask)
    entropy_mean = reduce(entropy, mask)
    loss = policy_loss + vf_coef * value_loss - ent_coef * entropy_mean
    with torch.no_grad():
        log_ratio = log_probs - old_log_probs
        ratio = log_ratio.exp()
        stats = {
            "policy_loss": policy_loss.detach(),
            "value_loss": value_loss.detach(),
            "entropy": entropy_mean.detach(),
            "approx_kl": mean_per_agent((ratio - 1) - log_ratio, mask),
            "clip_fraction": mean_per_agent(((ratio - 1).abs() > clip_coef).to(ratio.dtype), mask),
        }
    return loss, stats


def _clip_grad_norm_per_agent(params: Sequence[Tensor], max_norm: float) -> None:
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
    columns: dict[str, list[Tensor]] = {f.name: [] for f in fields(History) if f.name != "env_steps"}

    bar = tqdm(range(config.n_iterations), desc="PPO", disable=not progress, unit="it")
    for iteration in bar:
        if config.anneal_lr:
            optimizer.param_groups[0]["lr"] = config.lr * (1 - iteration / config.n_iterations)

        # 1. collect: n_steps steps of every environment, time last
        steps: list[Transitions] = []
        finished_sum = torch.zeros(n_agents, device=device)
        finished_count = torch.zeros(n_agents, device=device)
        for _ in range(config.n_steps):
            actions, log_probs, values = agent.act(obs, generator=generator)
            next_obs, rewards, terminated, truncated, final_obs = env.step(actions, check_actions=False)
            steps.append(Transitions(obs, actions, log_probs, values, rewards, terminated, truncated, final_obs))
            episode_return += rewards
            done = terminated | truncated
            finished_sum += (episode_return * done).sum(-1)
            finished_count += done.sum(-1)
            episode_return = episode_return.masked_fill(done, 0.0)
            obs = next_obs
        r = Transitions(*(torch.stack(xs, dim=2) for xs in zip(*steps, strict=True)))

        # 2. advantages and returns: bootstrap every step from the state it reached
        with torch.no_grad():
            next_values = agent.value(r.final_obs)
            advantages, returns = gae(
                r.rewards,
                r.values,
                next_values,
                r.terminated,
                r.truncated,
                gamma=config.gamma,
                lam=lam,
                check_finite=False,
            )
            if config.critic_target == "monte_carlo":
                returns = discounted_returns(
                    r.rewards, r.terminated, r.truncated, gamma=config.gamma, check_finite=False
                )

        # 3. update: n_epochs passes over the batch in shuffled minibatches
        flat = Minibatch(
            obs=r.obs.flatten(1, 2),
            actions=r.actions.flatten(1, 2),
            log_probs=r.log_probs.flatten(1, 2),
            values=r.values.flatten(1, 2),
            advantages=advantages.flatten(1),
            returns=returns.flatten(1),
        )
        stats = RunningMeans()
        for _ in range(config.n_epochs):
            # one minibatch is the whole batch, whose gradient does not depend on the order
            order = torch.randperm(batch, generator=generator, device=device) if config.n_minibatches > 1 else None
            for start in range(0, batch, minibatch):
                mb = flat if order is None else flat.select(order[start : start + minibatch])
                log_probs, entropy, values = agent.log_prob_entropy(mb.obs, mb.actions)
                adv = mb.advantages
                if config.norm_adv:
                    adv = (adv - adv.mean(1, keepdim=True)) / (adv.std(1, keepdim=True) + 1e-8)
                loss, update_stats = ppo_loss(
                    log_probs,
                    mb.log_probs,
                    adv,
                    values,
                    mb.values,
                    mb.returns,
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
                stats.add(update_stats)
        for k, v in stats.means().items():
            columns[k].append(v)
        columns["explained_variance"].append(explained_variance_per_agent(flat.values, flat.returns))
        columns["episode_return"].append(finished_sum / finished_count)  # NaN when no episode ended
        if progress and iteration % 10 == 0:
            bar.set_postfix(ret=f"{columns['episode_return'][-1].nanmean().item():.1f}")
        if stop is not None and stop(iteration + 1):
            break

    env_steps = torch.arange(1, len(columns["episode_return"]) + 1) * batch
    return History(env_steps=env_steps, **{k: torch.stack(v, dim=1).cpu() for k, v in columns.items()})


EVAL_CHECK_EVERY = 50
"""How many steps :func:`evaluate` runs between two checks of whether every episode has ended."""


@torch.no_grad()
def evaluate(
    env: VectorEnv,
    agent: ActorCritic,
    *,
    max_steps: int,
    generator: torch.Generator,
    greedy: bool = True,
    check_every: int = EVAL_CHECK_EVERY,
) -> Tensor:
    """Return of the first episode of every environment in ``env``: ``(G, n_envs)``.

    Runs until every environment has finished one episode or ``max_steps`` have passed; with
    ``greedy`` the policy takes its most likely action (its mean, for continuous actions).
    Whether an episode is still running lives on the environments' device: every
    ``check_every`` steps the host reads it (one synchronisation) and stops once none is, so
    ``evaluate`` runs at most ``check_every − 1`` steps more than needed and never syncs in
    between.
    """
    check_positive_int("max_steps", max_steps)
    check_positive_int("check_every", check_every)
    obs = env.reset()
    total = torch.zeros(obs.shape[:2], device=obs.device)
    running = torch.ones(obs.shape[:2], dtype=torch.bool, device=obs.device)
    for step in range(1, max_steps + 1):
        actions, _, _ = agent.act(obs, generator=generator, greedy=greedy)
        obs, rewards, terminated, truncated, _ = env.step(actions, check_actions=False)
        total += rewards * running
        running &= ~(terminated | truncated)
        if step % check_every == 0 and not bool(running.any()):
            break
    return total
