"""PPO for a language model on a verifiable task: the token-level MDP of :mod:`gaebook.token_mdp`.

One iteration, top to bottom, as in CleanRL's ``ppo.py``:

1. **sample** a batch of prompts (``group_size`` responses each) and their responses;
2. **score** every response exactly, penalise those that never emitted EOS, and build per-token
   rewards: ``−β·KL`` to the frozen reference on every token, the score on the last one;
3. **advantages**: GAE over the response mask with ``γ = 1`` (``"gae"``, with a critic), or one
   of the critic-free estimators (``"grpo"``, ``"rloo"``, ``"reinforce++"``);
4. **update**: a few epochs of minibatch steps on :func:`gaebook.ppo.ppo_loss` (clipped
   surrogate, clipped value loss), with the policy and the critic as separate networks.

Options the book compares: ``lam_actor`` and ``lam_critic`` set separately (decoupled GAE,
VC-PPO; Yuan et al., 2025), a λ per response from its length (``adaptive_lam_alpha``, VAPO;
Yue et al., 2025), value pretraining on Monte Carlo returns before PPO starts
(``value_pretrain_steps``, VC-PPO), the KL coefficient and estimator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Literal

import torch
from torch import Tensor
from tqdm import tqdm

from gaebook.advantages import discounted_returns, gae, next_valid_values
from gaebook.lm import (
    CharTokenizer,
    Samples,
    TinyGPT,
    ValueModel,
    frozen_copy,
    response_values,
    sample,
    sequence_log_probs,
)
from gaebook.ppo import ppo_loss
from gaebook.tasks import Task
from gaebook.token_mdp import (
    adaptive_lam,
    grpo_advantages,
    kl_penalty,
    masked_mean,
    masked_whiten,
    reinforce_pp_advantages,
    rloo_advantages,
    token_rewards,
    truncation_penalty,
)

__all__ = ["LMHistory", "LMPPOConfig", "Rollout", "evaluate", "rollout", "train"]

Advantage = Literal["gae", "grpo", "rloo", "reinforce++"]


@dataclass(frozen=True)
class LMPPOConfig:
    """Hyperparameters of :func:`train`; the defaults suit the book's tasks on a CPU.

    A batch holds ``n_prompts × group_size`` responses (the responses to one prompt are
    adjacent). ``lam_critic=None`` uses ``lam_actor`` for the critic's targets too;
    ``adaptive_lam_alpha`` replaces ``lam_actor`` by ``1 − 1/(α·length)`` per response.
    ``max_new_tokens=None`` takes the task's budget. ``whiten_advantages`` whitens the GAE
    advantages over the batch's valid tokens (the critic-free estimators normalise in their own
    way). The critic-free estimators ignore every critic setting; ``"grpo"`` and ``"rloo"`` need
    ``group_size ≥ 2`` and use the sequence return ``score − β·Σ_t KL_t``, so the KL penalty sits
    in the reward for every estimator. ``lr`` and ``critic_lr`` are Adam step sizes of the two
    networks; ``clip_coef`` clips both the ratio and the value change (as CleanRL).
    """

    iterations: int = 40
    n_prompts: int = 64
    group_size: int = 1
    max_new_tokens: int | None = None
    advantage: Advantage = "gae"
    gamma: float = 1.0
    lam_actor: float = 0.95
    lam_critic: float | None = None
    adaptive_lam_alpha: float | None = None
    kl_coef: float = 0.01
    kl_estimator: Literal["k1", "k3"] = "k1"
    truncation_penalty: float = 1.0
    whiten_advantages: bool = True
    lr: float = 3e-4
    critic_lr: float = 1e-3
    n_epochs: int = 2
    n_minibatches: int = 2
    clip_coef: float = 0.2
    clip_vloss: bool = True
    ent_coef: float = 0.0
    max_grad_norm: float = 1.0
    value_pretrain_steps: int = 0
    temperature: float = 1.0

    def __post_init__(self) -> None:
        for name in ("iterations", "n_prompts", "group_size", "n_epochs", "n_minibatches"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int; got {value!r}")
        if self.advantage not in ("gae", "grpo", "rloo", "reinforce++"):
            raise ValueError(f"advantage must be 'gae', 'grpo', 'rloo' or 'reinforce++'; got {self.advantage!r}")
        if self.advantage in ("grpo", "rloo") and self.group_size < 2:
            raise ValueError(f"advantage={self.advantage!r} needs group_size >= 2; got {self.group_size}")
        if (self.n_prompts * self.group_size) % self.n_minibatches:
            raise ValueError("n_minibatches must divide n_prompts * group_size")
        for name in ("gamma", "lam_actor", "lam_critic"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1]; got {value}")
        if self.adaptive_lam_alpha is not None and not self.adaptive_lam_alpha > 0:
            raise ValueError(f"adaptive_lam_alpha must be positive; got {self.adaptive_lam_alpha}")
        if self.kl_coef < 0:
            raise ValueError(f"kl_coef must be non-negative; got {self.kl_coef}")
        if self.kl_estimator not in ("k1", "k3"):
            raise ValueError(f"kl_estimator must be 'k1' or 'k3'; got {self.kl_estimator!r}")
        if self.value_pretrain_steps < 0:
            raise ValueError(f"value_pretrain_steps must be non-negative; got {self.value_pretrain_steps}")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be positive; got {self.max_new_tokens}")

    @property
    def batch_size(self) -> int:
        return self.n_prompts * self.group_size


@dataclass
class LMHistory:
    """What :func:`train` measured, one entry per iteration; float ``(iterations,)`` CPU tensors.

    ``reward`` is the mean score (exact match minus the truncation penalty), ``accuracy`` the
    fraction of exact matches, ``kl`` the mean over responses of ``Σ_t k1_t`` (an unbiased
    estimate of the sequence-level ``KL(π ‖ π_ref)``), ``length`` the mean number of valid
    tokens, ``truncated`` the fraction of responses without EOS. The loss statistics are means
    over the iteration's minibatches; ``value_loss`` and ``explained_variance`` (of the critic's
    targets, before the update) are NaN without a critic.
    """

    reward: Tensor
    accuracy: Tensor
    kl: Tensor
    length: Tensor
    truncated: Tensor
    policy_loss: Tensor
    value_loss: Tensor
    entropy: Tensor
    approx_kl: Tensor
    clip_fraction: Tensor
    explained_variance: Tensor


@dataclass(frozen=True)
class Rollout:
    """One batch of prompts, responses and their rewards; tensors on the policy's device.

    ``prompts`` long ``(B, P)`` (left-padded), ``samples`` the :class:`~gaebook.lm.Samples`
    ``(B, T)``, ``correct`` float ``(B,)`` exact matches, ``scores`` ``(B,)`` after the
    truncation penalty, ``ref_log_probs`` ``(B, T)`` the reference's log-probs of the sampled
    tokens, ``rewards`` ``(B, T)`` the token rewards; ``texts`` the prompts and ``responses`` the
    decoded responses.
    """

    texts: list[str]
    responses: list[str]
    prompts: Tensor
    samples: Samples
    correct: Tensor
    scores: Tensor
    ref_log_probs: Tensor
    rewards: Tensor


@torch.no_grad()
def rollout(
    policy: TinyGPT,
    reference: TinyGPT,
    task: Task,
    tok: CharTokenizer,
    config: LMPPOConfig,
    *,
    generator: torch.Generator,
) -> Rollout:
    """Steps 1 and 2 of an iteration: sample ``config.batch_size`` responses and reward them."""
    device = policy.head.weight.device
    texts = [p for p in task.prompts(config.n_prompts, generator=generator) for _ in range(config.group_size)]
    prompts = tok.batch(texts, eos=False, pad="left").to(device)
    max_new = config.max_new_tokens or task.max_new_tokens
    s = sample(policy, prompts, max_new_tokens=max_new, generator=generator, temperature=config.temperature)
    responses = [tok.decode(t) for t in s.tokens.cpu()]
    correct = task.reward(texts, responses).to(device)
    scores = truncation_penalty(correct, s.truncated, config.truncation_penalty)
    ref_log_probs, _ = sequence_log_probs(reference, prompts, s.tokens, temperature=config.temperature)
    kl = kl_penalty(s.log_probs, ref_log_probs, estimator=config.kl_estimator).masked_fill(~s.mask, 0.0)
    rewards = token_rewards(scores, s.mask, kl, kl_coef=config.kl_coef)
    return Rollout(texts, responses, prompts, s, correct, scores, ref_log_probs, rewards)


def _pretrain_critic(
    policy: TinyGPT,
    reference: TinyGPT,
    critic: ValueModel,
    optimizer: torch.optim.Optimizer,
    task: Task,
    tok: CharTokenizer,
    config: LMPPOConfig,
    generator: torch.Generator,
) -> None:
    """Fit the critic to Monte Carlo returns of the initial policy (VC-PPO's value pretraining)."""
    for _ in range(config.value_pretrain_steps):
        r = rollout(policy, reference, task, tok, config, generator=generator)
        mask = r.samples.mask
        returns = discounted_returns(r.rewards, torch.zeros_like(mask), gamma=config.gamma, check_finite=False)
        order = torch.randperm(config.batch_size, generator=generator, device=generator.device).to(mask.device)
        for idx in order.chunk(config.n_minibatches):
            values = response_values(critic, r.prompts[idx], r.samples.tokens[idx])
            loss = 0.5 * masked_mean((values - returns[idx]) ** 2, mask[idx])
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(critic.parameters(), config.max_grad_norm)
            optimizer.step()


def train(
    policy: TinyGPT,
    task: Task,
    tok: CharTokenizer,
    config: LMPPOConfig,
    *,
    generator: torch.Generator,
    critic: ValueModel | None = None,
    reference: TinyGPT | None = None,
    progress: bool = True,
) -> LMHistory:
    """Fine-tune ``policy`` in place with PPO on ``task``; return the :class:`LMHistory`.

    Args:
        policy: the pretrained policy (trained in place; copy it first to keep the original).
        task: prompts and exact rewards.
        tok: the tokenizer of ``task.alphabet``.
        config: :class:`LMPPOConfig`.
        generator: all the randomness (prompts, sampling, minibatch order).
        critic: for ``advantage="gae"``; ``None`` makes :meth:`ValueModel.from_policy` of ``policy``.
            Trained in place.
        reference: the frozen reference policy of the KL penalty; ``None`` freezes a copy of
            ``policy`` as it is now.
        progress: show a tqdm bar.
    """
    uses_critic = config.advantage == "gae"
    reference = frozen_copy(policy) if reference is None else reference
    if uses_critic and critic is None:
        critic = ValueModel.from_policy(policy)
    groups = [{"params": list(policy.parameters()), "lr": config.lr}]
    if uses_critic:
        groups.append({"params": list(critic.parameters()), "lr": config.critic_lr})
    optimizer = torch.optim.Adam(groups, eps=1e-5)
    if uses_critic and config.value_pretrain_steps:
        _pretrain_critic(policy, reference, critic, optimizer, task, tok, config, generator)
    lam_critic = config.lam_actor if config.lam_critic is None else config.lam_critic
    columns: dict[str, list[Tensor]] = {f.name: [] for f in fields(LMHistory)}
    nan = torch.tensor(math.nan)

    bar = tqdm(range(config.iterations), desc=f"PPO ({config.advantage})", disable=not progress, unit="it")
    for _ in bar:
        # 1-2. sample responses, score them, per-token rewards (−β·KL, score on the last token)
        r = rollout(policy, reference, task, tok, config, generator=generator)
        s, mask = r.samples, r.samples.mask

        # 3. advantages (and the critic's targets)
        with torch.no_grad():
            if uses_critic:
                values = response_values(critic, r.prompts, s.tokens)
                next_values = next_valid_values(values, mask)  # 0 after the last token: EOS is terminal
                terminated = torch.zeros_like(mask)
                lam = (
                    config.lam_actor
                    if config.adaptive_lam_alpha is None
                    else adaptive_lam(s.lengths, config.adaptive_lam_alpha)
                )
                advantages, returns = gae(
                    r.rewards,
                    values,
                    next_values,
                    terminated,
                    gamma=config.gamma,
                    lam=lam,
                    mask=mask,
                    check_finite=False,
                )
                if not (isinstance(lam, float) and lam == lam_critic):
                    _, returns = gae(
                        r.rewards,
                        values,
                        next_values,
                        terminated,
                        gamma=config.gamma,
                        lam=lam_critic,
                        mask=mask,
                        check_finite=False,
                    )
                if config.whiten_advantages:
                    advantages = masked_whiten(advantages, mask)
            else:
                values = returns = torch.zeros_like(r.rewards)
                if config.advantage == "reinforce++":
                    advantages = reinforce_pp_advantages(r.rewards, mask)
                else:  # one number per response (score − β·ΣKL), broadcast over its tokens
                    estimator = grpo_advantages if config.advantage == "grpo" else rloo_advantages
                    advantages = estimator(r.rewards.sum(1), config.group_size).unsqueeze(1) * mask

        # 4. update: n_epochs passes over the responses in shuffled minibatches
        sums: dict[str, Tensor] = {}
        for _ in range(config.n_epochs):
            order = torch.randperm(config.batch_size, generator=generator, device=generator.device).to(mask.device)
            for idx in order.chunk(config.n_minibatches):
                log_probs, entropy = sequence_log_probs(
                    policy, r.prompts[idx], s.tokens[idx], temperature=config.temperature
                )
                new_values = response_values(critic, r.prompts[idx], s.tokens[idx]) if uses_critic else values[idx]
                loss, stats = ppo_loss(
                    *(
                        x.unsqueeze(0)
                        for x in (
                            log_probs,
                            s.log_probs[idx],
                            advantages[idx],
                            new_values,
                            values[idx],
                            returns[idx],
                            entropy,
                        )
                    ),
                    clip_coef=config.clip_coef,
                    clip_vloss=config.clip_vloss,
                    vf_coef=1.0,
                    ent_coef=config.ent_coef,
                    mask=mask[idx].unsqueeze(0),
                )
                optimizer.zero_grad()
                loss.sum().backward()
                for group in optimizer.param_groups:
                    torch.nn.utils.clip_grad_norm_(group["params"], config.max_grad_norm)
                optimizer.step()
                for k, v in stats.items():
                    sums[k] = sums.get(k, 0) + v.squeeze(0)

        # 5. history
        n_updates = config.n_epochs * config.n_minibatches
        for k, v in sums.items():
            columns[k].append(v / n_updates)
        if uses_critic:
            residual_var = masked_mean((returns - values - masked_mean(returns - values, mask)) ** 2, mask)
            returns_var = masked_mean((returns - masked_mean(returns, mask)) ** 2, mask)
            columns["explained_variance"].append(1 - residual_var / returns_var.clamp_min(1e-8))
        else:
            columns["value_loss"][-1] = nan
            columns["explained_variance"].append(nan)
        columns["reward"].append(r.scores.mean())
        columns["accuracy"].append(r.correct.mean())
        columns["kl"].append(((s.log_probs - r.ref_log_probs) * mask).sum(1).mean())
        columns["length"].append(s.lengths.float().mean())
        columns["truncated"].append(s.truncated.float().mean())
        if progress:
            bar.set_postfix(reward=f"{columns['reward'][-1].item():.2f}", kl=f"{columns['kl'][-1].item():.2f}")

    return LMHistory(**{k: torch.stack([v.detach().float().cpu() for v in vs]) for k, vs in columns.items()})


@torch.no_grad()
def evaluate(
    policy: TinyGPT,
    task: Task,
    tok: CharTokenizer,
    prompts: Sequence[str],
    *,
    generator: torch.Generator,
    greedy: bool = False,
    max_new_tokens: int | None = None,
) -> tuple[Tensor, list[str]]:
    """Answer ``prompts`` once each: the exact-match rewards float ``(B,)`` (on the CPU) and the responses.

    ``greedy`` takes the most likely token at every step; otherwise responses are sampled.
    ``max_new_tokens=None`` takes the task's budget.
    """
    device = policy.head.weight.device
    batch = tok.batch(list(prompts), eos=False, pad="left").to(device)
    s = sample(policy, batch, max_new_tokens=max_new_tokens or task.max_new_tokens, generator=generator, greedy=greedy)
    responses = [tok.decode(t) for t in s.tokens.cpu()]
    return task.reward(prompts, responses), responses
