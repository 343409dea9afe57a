"""PPO for a language model on a verifiable task: the token-level MDP of :mod:`gaebook.lm.token_mdp`.

One iteration of :func:`finetune`, top to bottom, as in CleanRL's ``ppo.py``:

1. **sample** a batch of prompts (``group_size`` responses each) and their responses;
2. **score** every response, exactly by the task or by a :data:`Scorer` such as a learned reward
   model, penalise those that never emitted EOS, and build per-token
   rewards: ``−β·KL`` to the frozen reference on every token, the score on the last one (a task
   with process rewards, :meth:`~gaebook.lm.tasks.Task.step_rewards`, rewards each step on its
   own token instead) (steps 1 and 2 are :func:`sample_and_score`, which returns :class:`ScoredResponses`); ``β``
   is fixed, or follows Ziegler et al.'s adaptive controller (``kl_target``);
3. **advantages** by the estimator that ``LMPPOConfig.advantage`` names in
   :data:`ADVANTAGE_ESTIMATORS`: GAE over the response mask with ``γ = 1`` and a critic, or one
   of the estimators without a critic;
4. **update**: a few epochs of minibatch steps on :func:`gaebook.ppo.ppo_loss` (clipped
   surrogate, clipped value loss weighted by ``vf_coef``), with the policy and the critic as
   separate networks; the per-token losses are aggregated over the minibatch as
   ``loss_agg_mode`` says (:func:`aggregate_loss`), and an optional KL term to the reference
   joins the loss (``kl_loss_coef``, GRPO's way).

Options the book compares: ``lam_actor`` and ``lam_critic`` set separately (decoupled GAE,
VC-PPO; Yuan et al., 2025), a λ per response from its length (``adaptive_lam_alpha``, VAPO;
Yue et al., 2025), value pretraining on Monte Carlo returns before PPO starts
(``value_pretrain_steps``, VC-PPO), the KL in the reward or in the loss, the loss aggregation
(GRPO's, DAPO's, Dr. GRPO's), DAPO's overlong filtering (``mask_truncated``). :func:`answer_prompts`
scores a policy's answers to given prompts.

The policy is any :class:`~gaebook.lm.tinygpt.Policy`: a :class:`~gaebook.lm.tinygpt.TinyGPT`, or
a Hugging Face causal LM (Llama, Qwen2, GPT-2, … built from a config) wrapped in
:class:`~gaebook.lm.hf_policy.HFPolicy`; the critic is the policy's ``new_critic()`` (a copy of its
trunk with a value head that starts at 0) unless one is passed, and the reference a frozen copy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from functools import partial
from typing import Literal, NamedTuple, get_args

import torch
from torch import Tensor
from tqdm import tqdm

from gaebook.advantages import discounted_returns, gae, next_valid_values
from gaebook.lm import distributed
from gaebook.lm.tasks import Task
from gaebook.lm.tinygpt import (
    CharTokenizer,
    Critic,
    Policy,
    Samples,
    frozen_copy,
    response_values,
    sample,
    sequence_log_probs,
)
from gaebook.lm.token_mdp import (
    KL_ESTIMATORS,
    KLEstimator,
    adaptive_lam,
    grpo_advantages,
    kl_penalty,
    reinforce_pp_advantages,
    rloo_advantages,
    token_rewards,
    truncation_penalty,
)
from gaebook.ppo import ppo_loss
from gaebook.reductions import explained_variance, masked_mean
from gaebook.training import (
    RunningMeans,
    check_choice,
    check_non_negative,
    check_positive_int,
    check_unit_interval,
)

__all__ = [
    "ADVANTAGE_ESTIMATORS",
    "LOSS_AGG_MODES",
    "AdvantageEstimator",
    "LMHistory",
    "LMPPOConfig",
    "LossAggMode",
    "ScoredResponses",
    "Scorer",
    "TokenAdvantages",
    "adaptive_kl_coef",
    "advantage_estimator",
    "aggregate_loss",
    "answer_prompts",
    "finetune",
    "register_advantage_estimator",
    "sample_and_score",
]


LossAggMode = Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"]
"""The loss aggregations of :func:`aggregate_loss`, by verl's names (``actor.loss_agg_mode``)."""

LOSS_AGG_MODES: tuple[str, ...] = get_args(LossAggMode)

Scorer = Callable[[Tensor, Samples], Tensor]
"""A score for whole responses in place of the task's exact one: ``scorer(prompts, samples)``.

``prompts`` is long ``(B, P)``, left-padded, ``samples`` the :class:`~gaebook.lm.tinygpt.Samples`
``(B, T)`` of the responses; it returns float ``(B,)`` on their device, without a gradient. A
learned reward model is one (:class:`gaebook.lm.reward_model.RewardModelScorer`).
"""


def aggregate_loss(loss: Tensor, mask: Tensor | None, mode: LossAggMode = "token-mean") -> Tensor:
    """A per-token loss ``(..., B, T)`` over ``B`` responses of ``T`` tokens made one number per leading index.

    With ``ℓ_it`` the loss of token ``t`` of response ``i``, ``n_i`` the valid tokens of response
    ``i`` and ``B'`` the responses with at least one (as verl's ``agg_loss``, which it equals):

    * ``"token-mean"``: ``Σ_i Σ_t ℓ_it / Σ_i n_i``, every token weighs the same (DAPO's
      token-level loss; the book's default);
    * ``"seq-mean-token-mean"``: ``(1/B') Σ_i (1/n_i) Σ_t ℓ_it``, every response weighs the same
      and shares it among its tokens (the GRPO paper's ``1/|o_i|``): a token of a short response
      weighs more than one of a long response;
    * ``"seq-mean-token-sum"``: ``(1/B') Σ_i Σ_t ℓ_it``;
    * ``"seq-mean-token-sum-norm"``: ``(1/(B'·T)) Σ_i Σ_t ℓ_it``, a constant normaliser, the
      width ``T`` (in :func:`finetune` the token budget: responses are always sampled that wide;
      Dr. GRPO, Liu et al., 2025).

    Args:
        loss: floating ``(..., B, T)``, e.g. ``(1, B, T)`` from :func:`gaebook.ppo.ppo_loss`.
        mask: bool of ``loss``'s shape, ``True`` at valid tokens; ``None``: every token is valid.
        mode: one of :data:`LOSS_AGG_MODES`.

    Returns:
        ``(...)`` (0 where no token is valid); no host read.
    """
    check_choice("mode", mode, LOSS_AGG_MODES)
    if not isinstance(loss, Tensor) or not loss.dtype.is_floating_point or loss.ndim < 2:
        got = f"{loss.dtype} {tuple(loss.shape)}" if isinstance(loss, Tensor) else type(loss).__name__
        raise TypeError(f"loss must be a floating tensor (..., B, T); got {got}")
    if mask is None:
        mask = torch.ones_like(loss, dtype=torch.bool)
    elif not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.shape != loss.shape:
        got = f"{mask.dtype} {tuple(mask.shape)}" if isinstance(mask, Tensor) else type(mask).__name__
        raise ValueError(f"mask must be a bool tensor of loss's shape {tuple(loss.shape)}; got {got}")
    if mode == "token-mean":
        return (loss * mask).sum(dim=(-2, -1)) / mask.sum(dim=(-2, -1)).clamp_min(1)
    token_sums = (loss * mask).sum(dim=-1)
    n_tokens = mask.sum(dim=-1)
    n_responses = (n_tokens > 0).sum(dim=-1).clamp_min(1)
    if mode == "seq-mean-token-mean":
        return (token_sums / n_tokens.clamp_min(1)).sum(dim=-1) / n_responses
    total = token_sums.sum(dim=-1) / n_responses
    return total if mode == "seq-mean-token-sum" else total / loss.shape[-1]


def adaptive_kl_coef(kl_coef: Tensor, kl: Tensor, *, target: float, horizon: int, n_steps: int) -> Tensor:
    """One step of the adaptive KL controller of Ziegler et al. (2019): the next ``β``.

    ``β ← β · (1 + clip(KL/target − 1, −0.2, 0.2) · n_steps/horizon)``: ``β`` grows when the
    measured KL exceeds the target and shrinks below it, by at most ``0.2 · n_steps/horizon``
    per step. As in TRL's (and OpenRLHF's and verl's) ``AdaptiveKLController``, ``kl`` is the
    batch's sequence-level KL (the mean over responses of ``Σ_t k1_t``) and ``n_steps`` the
    number of responses in the batch.

    Args:
        kl_coef: ``β``, a floating 0-d tensor (on any device; never read back).
        kl: the measured KL, a 0-d tensor on ``kl_coef``'s device.
        target: the target KL, positive.
        horizon: positive; ``n_steps/horizon`` must stay below 5 so that ``β`` stays positive.
        n_steps: responses in the batch, a positive int.

    Returns:
        the next ``β``, a 0-d tensor of ``kl_coef``'s dtype.
    """
    for name, x in (("kl_coef", kl_coef), ("kl", kl)):
        if not isinstance(x, Tensor) or not x.dtype.is_floating_point or x.ndim != 0:
            got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{name} must be a floating 0-d tensor; got {got}")
    if isinstance(target, bool) or not isinstance(target, int | float) or not target > 0:
        raise ValueError(f"target must be a positive number; got {target!r}")
    check_positive_int("horizon", horizon)
    check_positive_int("n_steps", n_steps)
    if n_steps >= 5 * horizon:
        raise ValueError(f"n_steps/horizon must be below 5 (β would reach 0 or change sign); got {n_steps}/{horizon}")
    error = (kl.to(kl_coef.dtype) / target - 1).clamp(-0.2, 0.2)
    return kl_coef * (1 + error * (n_steps / horizon))


@dataclass(frozen=True)
class LMPPOConfig:
    """Hyperparameters of :func:`finetune`; the defaults suit the book's tasks on a CPU.

    A batch holds ``n_prompts × group_size`` responses (the responses to one prompt are
    adjacent). ``advantage`` names an estimator of :data:`ADVANTAGE_ESTIMATORS` (listed at the
    end). ``lam_critic=None`` uses ``lam_actor`` for the critic's targets too;
    ``adaptive_lam_alpha`` replaces ``lam_actor`` by ``1 − 1/(α·length)`` per response.
    ``max_new_tokens=None`` takes the task's budget. ``whiten_advantages`` whitens the GAE
    advantages over the batch's valid tokens (the estimators without a critic normalise in their
    own way). The estimators without a critic ignore every critic setting; those that compare the
    responses to one prompt use the sequence return ``score − β·Σ_t KL_t``, so the KL penalty
    sits in the reward for every estimator. ``lr`` and
    ``critic_lr`` are Adam step sizes of the two networks; ``clip_coef`` clips both the ratio and
    the value change (as CleanRL); ``vf_coef`` weights the value loss against the policy loss.

    **The KL to the reference**, two ways (:func:`gaebook.lm.token_mdp.kl_penalty` derives which
    estimator each needs):

    * *in the reward*, ``−β·k1`` on every token, ``β = kl_coef``. ``kl_estimator`` must be
      ``"k1"``: the policy gradient of a KL estimate put in the reward is the KL's gradient for
      k1 only (k3 there, as verl's ``low_var_kl``, biases it). ``kl_target`` turns on the adaptive
      controller of Ziegler et al. (2019), as TRL's ``AdaptiveKLController``: after each
      iteration ``β ← β·(1 + clip(KL/kl_target − 1, ±0.2)·batch_size/kl_horizon)``, with KL the
      batch's mean over responses of ``Σ_t k1_t`` (``LMHistory.kl``;
      :func:`adaptive_kl_coef`); ``LMHistory.kl_coef`` records each
      iteration's ``β``;
    * *as a loss term*, ``+ kl_loss_coef · aggregate(k)`` on the policy's log-probs (GRPO;
      verl's ``use_kl_loss``), aggregated as the rest of the loss. The default
      ``kl_loss_estimator="k2"`` is the estimator whose gradient as a loss is the KL's; ``"k3"``
      (GRPO's, verl's default) follows the gradient of the reverse KL ``KL(π_ref ‖ π)``; ``"k1"``
      is refused (its expected gradient is 0). ``kl_target`` adapts ``kl_coef`` only.

    **Loss aggregation** (``loss_agg_mode``, verl's names; :func:`aggregate_loss`): how the
    per-token policy loss, value loss, entropy and KL term of a minibatch become one number:
    ``"token-mean"`` (every token weighs the same: the default, DAPO's token-level loss),
    ``"seq-mean-token-mean"`` (every response weighs the same: GRPO's ``1/|o_i|``),
    ``"seq-mean-token-sum"``, ``"seq-mean-token-sum-norm"`` (each response's token-sum over the
    token budget, a constant: Dr. GRPO). Under ``torch.distributed`` only ``"token-mean"`` is
    accepted (:func:`gaebook.lm.distributed.token_mean_share` rescales token-means). The
    critic's value pretraining always takes the token-mean.

    ``mask_truncated`` is DAPO's overlong filtering (Yu et al., 2025): the responses cut at the
    token budget (no EOS) leave the loss (policy, value, entropy and KL terms); they still count
    in the advantages (a group's baseline, the whitening) and in the history.
    """

    iterations: int = 40
    n_prompts: int = 64
    group_size: int = 1
    max_new_tokens: int | None = None
    advantage: str = "gae"
    gamma: float = 1.0
    lam_actor: float = 0.95
    lam_critic: float | None = None
    adaptive_lam_alpha: float | None = None
    kl_coef: float = 0.01
    kl_estimator: KLEstimator = "k1"
    truncation_penalty: float = 1.0
    whiten_advantages: bool = True
    lr: float = 3e-4
    critic_lr: float = 1e-3
    n_epochs: int = 2
    n_minibatches: int = 2
    clip_coef: float = 0.2
    clip_vloss: bool = True
    vf_coef: float = 1.0
    ent_coef: float = 0.0
    max_grad_norm: float = 1.0
    value_pretrain_steps: int = 0
    temperature: float = 1.0
    kl_target: float | None = None
    kl_horizon: int = 10000
    kl_loss_coef: float = 0.0
    kl_loss_estimator: KLEstimator = "k2"
    loss_agg_mode: LossAggMode = "token-mean"
    mask_truncated: bool = False

    def __post_init__(self) -> None:
        for name in ("iterations", "n_prompts", "group_size", "n_epochs", "n_minibatches"):
            check_positive_int(name, getattr(self, name))
        estimator = advantage_estimator(self.advantage)
        if self.group_size < estimator.min_group_size:
            raise ValueError(
                f"advantage={self.advantage!r} needs group_size >= {estimator.min_group_size}; got {self.group_size}"
            )
        if (self.n_prompts * self.group_size) % self.n_minibatches:
            raise ValueError("n_minibatches must divide n_prompts * group_size")
        for name in ("gamma", "lam_actor", "lam_critic"):
            value = getattr(self, name)
            if value is not None:
                check_unit_interval(name, value)
        if self.adaptive_lam_alpha is not None and not self.adaptive_lam_alpha > 0:
            raise ValueError(f"adaptive_lam_alpha must be positive; got {self.adaptive_lam_alpha}")
        for name in ("kl_coef", "vf_coef", "ent_coef", "value_pretrain_steps", "kl_loss_coef"):
            check_non_negative(name, getattr(self, name))
        self._check_kl()
        check_choice("loss_agg_mode", self.loss_agg_mode, LOSS_AGG_MODES)
        if not isinstance(self.mask_truncated, bool):
            raise TypeError(f"mask_truncated must be a bool; got {self.mask_truncated!r}")
        if self.max_new_tokens is not None:
            check_positive_int("max_new_tokens", self.max_new_tokens)

    def _check_kl(self) -> None:
        check_choice("kl_estimator", self.kl_estimator, KL_ESTIMATORS)
        if self.kl_estimator != "k1":
            raise ValueError(
                f"kl_estimator={self.kl_estimator!r} cannot go in the reward: the policy gradient of a reward "
                "−β·k is −β·E[k·∇log π], the gradient of KL(π ‖ π_ref) only for k = k1 (see "
                "gaebook.lm.token_mdp.kl_penalty). To use it as GRPO does, make it a loss term: "
                f"kl_loss_coef > 0 with kl_loss_estimator={self.kl_estimator!r} (and kl_coef=0 to drop the reward's KL)"
            )
        check_choice("kl_loss_estimator", self.kl_loss_estimator, KL_ESTIMATORS)
        if self.kl_loss_estimator == "k1":
            raise ValueError(
                "kl_loss_estimator='k1' has no gradient as a loss term: E_π[∇k1] = E_π[∇log π] = 0. "
                "Use 'k2' (its gradient is the KL's) or 'k3' (GRPO's: the gradient of KL(π_ref ‖ π))"
            )
        check_positive_int("kl_horizon", self.kl_horizon)
        if self.kl_target is not None:
            target = self.kl_target
            if isinstance(target, bool) or not isinstance(target, int | float) or not target > 0:
                raise ValueError(f"kl_target must be a positive number or None; got {target!r}")
            if not self.kl_coef > 0:
                raise ValueError("kl_target needs kl_coef > 0: the adaptive controller multiplies β, and 0 stays 0")
            if self.batch_size >= 5 * self.kl_horizon:
                raise ValueError(
                    f"kl_horizon must exceed n_prompts * group_size / 5 ({self.batch_size / 5:g}) so that the "
                    f"adaptive β stays positive; got {self.kl_horizon}"
                )

    @property
    def batch_size(self) -> int:
        return self.n_prompts * self.group_size


@dataclass
class LMHistory:
    """What :func:`finetune` measured, one entry per iteration; float ``(iterations,)`` CPU tensors.

    ``reward`` is the mean score (exact match, the ``scorer``'s score, or the sum of a process
    task's step rewards, minus the truncation penalty), ``accuracy`` the fraction of exact matches,
    ``kl`` the mean over responses of ``Σ_t k1_t`` (an unbiased
    estimate of the sequence-level ``KL(π ‖ π_ref)``), ``length`` the mean number of valid
    tokens, ``truncated`` the fraction of responses without EOS. The loss statistics are means
    over the iteration's minibatches. ``explained_variance`` is
    :func:`gaebook.reductions.explained_variance` of the critic's targets by its values over the
    batch's valid tokens, before the update (NaN if the targets did not vary). ``value_loss`` and
    ``explained_variance`` are NaN without a critic. ``kl_coef`` is the ``β`` of the iteration's
    rewards: ``LMPPOConfig.kl_coef`` throughout, unless ``kl_target`` adapts it.
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
    kl_coef: Tensor


@dataclass(frozen=True)
class ScoredResponses:
    """One batch of prompts, the policy's sampled responses, their scores and token rewards.

    Tensors are on the policy's device: ``prompts`` long ``(B, P)`` (left-padded), ``samples``
    the :class:`~gaebook.lm.tinygpt.Samples` ``(B, T)``, ``correct`` float ``(B,)`` exact matches,
    ``scores`` ``(B,)`` after the truncation penalty (the exact matches, a scorer's scores, or for a
    task with process rewards the sum of its step rewards), ``ref_log_probs`` ``(B, T)`` the
    reference's log-probs of the sampled tokens, ``rewards`` ``(B, T)`` the token rewards;
    ``texts`` are the prompts and ``responses`` the decoded responses.
    """

    texts: list[str]
    responses: list[str]
    prompts: Tensor
    samples: Samples
    correct: Tensor
    scores: Tensor
    ref_log_probs: Tensor
    rewards: Tensor


class TokenAdvantages(NamedTuple):
    """What an advantage estimator returns: ``advantages`` float ``(B, T)``, 0 at masked positions,
    and ``returns`` ``(B, T)``, the critic's targets, or ``None`` for an estimator without a critic."""

    advantages: Tensor
    returns: Tensor | None


AdvantageFn = Callable[[ScoredResponses, Tensor | None, LMPPOConfig], TokenAdvantages]
"""``fn(batch, values, config)``: ``values`` are the critic's ``(B, T)``, ``None`` without a critic."""


@dataclass(frozen=True)
class AdvantageEstimator:
    """An entry of :data:`ADVANTAGE_ESTIMATORS`: how to compute step 3 of :func:`finetune`.

    ``uses_critic`` says whether :func:`finetune` trains a critic and passes its values to
    ``fn``; ``min_group_size`` is the least ``group_size`` the estimator accepts; ``summary`` is
    one line for the documentation.
    """

    name: str
    fn: AdvantageFn
    uses_critic: bool
    min_group_size: int
    summary: str


ADVANTAGE_ESTIMATORS: dict[str, AdvantageEstimator] = {}
"""The advantage estimators :class:`LMPPOConfig` accepts, by name; the configuration's check, the
documentation and :func:`finetune` all read this table. Add one with
:func:`register_advantage_estimator`."""


def register_advantage_estimator(
    name: str, *, summary: str, uses_critic: bool = False, min_group_size: int = 1
) -> Callable[[AdvantageFn], AdvantageFn]:
    """Decorator: add ``fn`` to :data:`ADVANTAGE_ESTIMATORS` under ``name`` (see :class:`AdvantageEstimator`)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string; got {name!r}")
    if name in ADVANTAGE_ESTIMATORS:
        raise ValueError(f"name {name!r} is already registered")
    check_positive_int("min_group_size", min_group_size)

    def register(fn: AdvantageFn) -> AdvantageFn:
        ADVANTAGE_ESTIMATORS[name] = AdvantageEstimator(name, fn, uses_critic, min_group_size, summary)
        return fn

    return register


def advantage_estimator(advantage: str) -> AdvantageEstimator:
    """The entry of :data:`ADVANTAGE_ESTIMATORS` named ``advantage``; ``ValueError`` if there is none."""
    check_choice("advantage", advantage, ADVANTAGE_ESTIMATORS)
    return ADVANTAGE_ESTIMATORS[advantage]


@register_advantage_estimator(
    "gae",
    uses_critic=True,
    summary="GAE over the response mask with the critic's values: λ = ``lam_actor`` (or the length-adaptive λ) "
    "for the advantages, ``lam_critic`` for the critic's λ-return targets.",
)
def _gae(batch: ScoredResponses, values: Tensor | None, config: LMPPOConfig) -> TokenAdvantages:
    if values is None:
        raise ValueError("values must be the critic's values (B, T) for advantage='gae'; got None")
    s, mask = batch.samples, batch.samples.mask
    next_values = next_valid_values(values, mask)  # 0 after the last token: EOS is terminal
    terminated = torch.zeros_like(mask)
    lam = config.lam_actor if config.adaptive_lam_alpha is None else adaptive_lam(s.lengths, config.adaptive_lam_alpha)
    lam_critic = config.lam_actor if config.lam_critic is None else config.lam_critic
    advantages, returns = gae(
        batch.rewards, values, next_values, terminated, gamma=config.gamma, lam=lam, mask=mask, check_finite=False
    )
    if not (isinstance(lam, float) and lam == lam_critic):
        _, returns = gae(
            batch.rewards,
            values,
            next_values,
            terminated,
            gamma=config.gamma,
            lam=lam_critic,
            mask=mask,
            check_finite=False,
        )
    if config.whiten_advantages:
        advantages = distributed.masked_whiten(advantages, mask)  # over every rank's tokens
    return TokenAdvantages(advantages, returns)


@register_advantage_estimator(
    "grpo",
    min_group_size=2,
    summary="GRPO: each response's return minus its group's mean, over the group's standard deviation, "
    "on every token (:func:`gaebook.lm.token_mdp.grpo_advantages`).",
)
def _grpo(batch: ScoredResponses, values: Tensor | None, config: LMPPOConfig) -> TokenAdvantages:
    # one number per response (score − β·ΣKL), broadcast over its tokens
    per_response = grpo_advantages(batch.rewards.sum(1), config.group_size)
    return TokenAdvantages(per_response.unsqueeze(1) * batch.samples.mask, None)


@register_advantage_estimator(
    "rloo",
    min_group_size=2,
    summary="REINFORCE leave-one-out: each response's return minus the mean of the others in its group, "
    "on every token (:func:`gaebook.lm.token_mdp.rloo_advantages`).",
)
def _rloo(batch: ScoredResponses, values: Tensor | None, config: LMPPOConfig) -> TokenAdvantages:
    per_response = rloo_advantages(batch.rewards.sum(1), config.group_size)
    return TokenAdvantages(per_response.unsqueeze(1) * batch.samples.mask, None)


@register_advantage_estimator(
    "reinforce++",
    summary="REINFORCE++: the token-level return-to-go, whitened over the batch "
    "(:func:`gaebook.lm.token_mdp.reinforce_pp_advantages`).",
)
def _reinforce_pp(batch: ScoredResponses, values: Tensor | None, config: LMPPOConfig) -> TokenAdvantages:
    if distributed.world()[1] > 1:
        raise ValueError(
            "advantage='reinforce++' whitens over one process's responses (gaebook.lm.token_mdp); "
            "under torch.distributed use 'gae', 'grpo' or 'rloo'"
        )
    return TokenAdvantages(reinforce_pp_advantages(batch.rewards, batch.samples.mask), None)


def _estimators_doc() -> str:
    """The list of :data:`ADVANTAGE_ESTIMATORS` that ends :class:`LMPPOConfig`'s documentation."""
    lines = []
    for e in ADVANTAGE_ESTIMATORS.values():
        notes = [
            *(["trains a critic"] if e.uses_critic else []),
            *([f"group_size ≥ {e.min_group_size}"] if e.min_group_size > 1 else []),
        ]
        lines.append(f"    * ``{e.name!r}``{' (' + '; '.join(notes) + ')' if notes else ''}: {e.summary}")
    return "\n    The advantage estimators of :data:`ADVANTAGE_ESTIMATORS`:\n\n" + "\n".join(lines) + "\n"


LMPPOConfig.__doc__ = (LMPPOConfig.__doc__ or "") + _estimators_doc()


def _device(model: Policy) -> torch.device:
    return next(model.parameters()).device


def _check_policy(name: str, policy: object, tok: CharTokenizer) -> None:
    """``policy`` is a :class:`~gaebook.lm.tinygpt.Policy` over ``tok``'s ids."""
    if not isinstance(policy, Policy):
        raise TypeError(
            f"{name} must be a Policy (a TinyGPT, or a Hugging Face model in gaebook.lm.hf_policy.HFPolicy); "
            f"got {type(policy).__name__}"
        )
    if policy.vocab_size != tok.vocab_size:
        raise ValueError(f"tok has {tok.vocab_size} token ids but {name}'s vocabulary has {policy.vocab_size}")


@torch.no_grad()
def sample_and_score(
    policy: Policy,
    reference: Policy,
    task: Task,
    tok: CharTokenizer,
    config: LMPPOConfig,
    *,
    generator: torch.Generator,
    sampling_generator: torch.Generator | None = None,
    kl_coef: float | Tensor | None = None,
    scorer: Scorer | None = None,
) -> ScoredResponses:
    """Steps 1 and 2 of an iteration: sample ``config.batch_size`` responses, score and reward them.

    An outcome task's exact match goes on each response's last token; a task with process rewards
    (:meth:`~gaebook.lm.tasks.Task.step_rewards` not ``None``) puts each step's reward on the token
    of that step instead, and its exact match only counts as ``correct``.

    ``generator`` draws the prompts, ``sampling_generator`` (``generator`` if ``None``) the
    responses. ``kl_coef`` is the ``β`` of the rewards: ``config.kl_coef`` if ``None``, or a
    floating 0-d tensor on the policy's device (the adaptive controller's). ``scorer`` (a
    :data:`Scorer`) scores the responses in place of the task's exact match, which ``correct``
    still records; the truncation penalty applies to either. Under
    ``torch.distributed`` this rank keeps its block of the prompts and their responses
    (:func:`gaebook.lm.distributed.shard`).
    """
    device = _device(policy)
    drawn = distributed.shard(task.prompts(config.n_prompts, generator=generator), name="n_prompts")
    texts = [p for p in drawn for _ in range(config.group_size)]
    prompts = tok.batch(texts, eos=False, pad="left").to(device)
    max_new = config.max_new_tokens or task.max_new_tokens
    sampler = generator if sampling_generator is None else sampling_generator
    s = sample(policy, prompts, max_new_tokens=max_new, generator=sampler, temperature=config.temperature)
    host_tokens = s.tokens.cpu()  # one read back: the task scores text
    responses = [tok.decode(t) for t in host_tokens]
    correct = task.reward(texts, responses).to(device)
    host_steps = _step_rewards(task, texts, host_tokens, tok)
    if host_steps is not None and scorer is not None:
        raise ValueError(f"scorer replaces an outcome task's exact match; {type(task).__name__} has process rewards")
    steps = None if host_steps is None else host_steps.to(device)
    # an outcome task's score goes on the last token; a process task's rewards on the tokens they reward
    score = correct if scorer is None else scorer(prompts, s)
    outcome = score if steps is None else torch.zeros_like(correct)
    scores = truncation_penalty(outcome, s.truncated, config.truncation_penalty)
    ref_log_probs, _ = sequence_log_probs(reference, prompts, s.tokens, temperature=config.temperature)
    kl = kl_penalty(s.log_probs, ref_log_probs, estimator=config.kl_estimator).masked_fill(~s.mask, 0.0)
    beta = config.kl_coef if kl_coef is None else kl_coef
    rewards = token_rewards(scores, s.mask, kl, kl_coef=beta, step_rewards=steps)
    if steps is not None:
        scores = scores + steps.sum(1)
    return ScoredResponses(texts, responses, prompts, s, correct, scores, ref_log_probs, rewards)


def _step_rewards(task: Task, texts: Sequence[str], tokens: Tensor, tok: CharTokenizer) -> Tensor | None:
    """The task's process rewards as float ``(B, T)`` on the CPU, each on its token; ``None`` if it has none.

    ``tokens`` are the sampled responses, long ``(B, T)`` on the CPU; a response's steps are its
    tokens before its first EOS.
    """
    rows = tokens.tolist()
    steps = [[tok.token_name(i) for i in row[: row.index(tok.EOS) if tok.EOS in row else len(row)]] for row in rows]
    rewards = task.step_rewards(texts, steps)
    if rewards is None:
        return None
    if len(rewards) != len(steps) or any(len(r) != len(st) for r, st in zip(rewards, steps, strict=False)):
        raise ValueError(
            f"{type(task).__name__}.step_rewards must return one list per response and one reward per step "
            f"(token before EOS); got lengths {[len(r) for r in rewards]} for {[len(st) for st in steps]}"
        )
    out = torch.zeros(tokens.shape, dtype=torch.float32)
    for i, r in enumerate(rewards):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.float32)
    return out


def _pretrain_critic(
    policy: Policy,
    reference: Policy,
    critic: Critic,
    optimizer: torch.optim.Optimizer,
    task: Task,
    tok: CharTokenizer,
    config: LMPPOConfig,
    generator: torch.Generator,
    sampler: torch.Generator,
    scorer: Scorer | None,
) -> None:
    """Fit the critic to Monte Carlo returns of the initial policy (VC-PPO's value pretraining)."""
    for _ in range(config.value_pretrain_steps):
        batch = sample_and_score(
            policy, reference, task, tok, config, generator=generator, sampling_generator=sampler, scorer=scorer
        )
        mask = batch.samples.mask
        returns = discounted_returns(batch.rewards, torch.zeros_like(mask), gamma=config.gamma, check_finite=False)
        order = torch.randperm(config.batch_size, generator=generator, device=generator.device).to(mask.device)
        for idx in distributed.minibatches(order, config.n_minibatches):
            values = response_values(critic, batch.prompts[idx], batch.samples.tokens[idx])
            loss = 0.5 * masked_mean((values - returns[idx]) ** 2, mask[idx])
            loss, _ = distributed.token_mean_share(loss, {}, mask[idx])
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(critic.parameters(), config.max_grad_norm)
            optimizer.step()


def finetune(
    policy: Policy,
    task: Task,
    tok: CharTokenizer,
    config: LMPPOConfig,
    *,
    generator: torch.Generator,
    critic: Critic | None = None,
    reference: Policy | None = None,
    scorer: Scorer | None = None,
    progress: bool = True,
) -> LMHistory:
    """Fine-tune ``policy`` in place with PPO on ``task``; return the :class:`LMHistory`.

    Args:
        policy: the pretrained policy, a :class:`~gaebook.lm.tinygpt.Policy`: a
            :class:`~gaebook.lm.tinygpt.TinyGPT` or a Hugging Face causal LM in
            :class:`~gaebook.lm.hf_policy.HFPolicy` (trained in place; copy it first to keep the original).
        task: prompts and exact rewards.
        tok: the tokenizer of ``task.alphabet`` (its ids must be the policy's vocabulary).
        config: :class:`LMPPOConfig`.
        generator: all the randomness (prompts, sampling, minibatch order).
        critic: for an estimator that uses one (``advantage="gae"``); ``None`` makes
            ``policy.new_critic()`` (a copy of its trunk with a zero value head:
            :meth:`~gaebook.lm.tinygpt.ValueModel.from_policy` for a TinyGPT,
            :meth:`~gaebook.lm.hf_policy.HFCritic.from_policy` for an HFPolicy). Trained in place;
            ignored by the estimators without a critic.
        reference: the frozen reference policy of the KL penalty; ``None`` freezes a copy of
            ``policy`` as it is now.
        scorer: the score ``R`` of a response, a :data:`Scorer` such as a learned reward model
            (:class:`gaebook.lm.reward_model.RewardModelScorer`); ``None`` takes the task's exact
            match. ``LMHistory.reward`` then records the scorer's mean and ``LMHistory.accuracy``
            the task's exact match, the true score it stands in for.
        progress: show a tqdm bar.

    Under ``torch.distributed`` (launched by ``torchrun``) every rank calls ``finetune`` with the
    same arguments and seed, and the ranks share each iteration's batch: see
    :mod:`gaebook.lm.distributed`. ``config.n_prompts`` must then be divisible by the number of
    processes, and each rank samples with a generator seeded from ``generator``.
    """
    estimator = advantage_estimator(config.advantage)
    if config.loss_agg_mode != "token-mean" and distributed.world()[1] > 1:
        raise ValueError(
            f"loss_agg_mode={config.loss_agg_mode!r} is not supported under torch.distributed: each rank's loss is "
            "rescaled as a token-mean (gaebook.lm.distributed.token_mean_share); use loss_agg_mode='token-mean'"
        )
    _check_policy("policy", policy, tok)
    train_policy = distributed.wrap(policy)  # under torch.distributed: rank 0's weights on every rank
    frozen = frozen_copy(policy) if reference is None else reference
    _check_policy("reference", frozen, tok)
    if not estimator.uses_critic:
        critic = None
    elif critic is None:
        critic = policy.new_critic()
    elif not isinstance(critic, Critic):
        raise TypeError(f"critic must be a Critic (a ValueModel or an HFCritic); got {type(critic).__name__}")
    train_critic = None if critic is None else distributed.wrap(critic)
    sampler = distributed.rank_generator(generator)  # this rank's sampling; generator itself in one process
    groups = [{"params": list(policy.parameters()), "lr": config.lr}]
    if critic is not None:
        groups.append({"params": list(critic.parameters()), "lr": config.critic_lr})
    optimizer = torch.optim.Adam(groups, eps=1e-5)
    if train_critic is not None and config.value_pretrain_steps:
        _pretrain_critic(policy, frozen, train_critic, optimizer, task, tok, config, generator, sampler, scorer)
    columns: dict[str, list[Tensor]] = {f.name: [] for f in fields(LMHistory)}
    nan = torch.tensor(math.nan)
    kl_coef = torch.full((), config.kl_coef, device=_device(policy))  # β: kl_target adapts it on the device
    aggregate = partial(aggregate_loss, mode=config.loss_agg_mode)

    bar = tqdm(range(config.iterations), desc=f"PPO ({config.advantage})", disable=not progress, unit="it")
    for _ in bar:
        # 1-2. sample responses, score them, per-token rewards (−β·KL, score on the last token)
        batch = sample_and_score(
            policy,
            frozen,
            task,
            tok,
            config,
            generator=generator,
            sampling_generator=sampler,
            kl_coef=kl_coef,
            scorer=scorer,
        )
        s, mask = batch.samples, batch.samples.mask
        # the tokens the loss sees: without the responses cut at the budget under DAPO's overlong filtering
        loss_mask = mask & ~s.truncated.unsqueeze(1) if config.mask_truncated else mask

        # 3. advantages (and the critic's targets)
        with torch.no_grad():
            values = response_values(critic, batch.prompts, s.tokens) if critic is not None else None
            advantages, returns = estimator.fn(batch, values, config)
        # without a critic, ppo_loss regresses zeros on zeros: no gradient, and no value loss recorded
        old_values = torch.zeros_like(batch.rewards) if values is None else values
        targets = old_values if returns is None else returns

        # 4. update: n_epochs passes over the responses in shuffled minibatches
        stats = RunningMeans()
        for _ in range(config.n_epochs):
            order = torch.randperm(config.batch_size, generator=generator, device=generator.device).to(mask.device)
            for idx in distributed.minibatches(order, config.n_minibatches):  # this rank's part of each
                log_probs, entropy = sequence_log_probs(
                    train_policy, batch.prompts[idx], s.tokens[idx], temperature=config.temperature
                )
                new_values = (
                    response_values(train_critic, batch.prompts[idx], s.tokens[idx])
                    if train_critic is not None
                    else old_values[idx]
                )
                loss, update_stats = ppo_loss(
                    *(
                        x.unsqueeze(0)
                        for x in (
                            log_probs,
                            s.log_probs[idx],
                            advantages[idx],
                            new_values,
                            old_values[idx],
                            targets[idx],
                            entropy,
                        )
                    ),
                    clip_coef=config.clip_coef,
                    clip_vloss=config.clip_vloss,
                    vf_coef=config.vf_coef,
                    ent_coef=config.ent_coef,
                    mask=loss_mask[idx].unsqueeze(0),
                    reduce=aggregate,
                )
                if config.kl_loss_coef:  # the KL as a loss term, on the policy's log-probs (GRPO)
                    kl = kl_penalty(log_probs, batch.ref_log_probs[idx], estimator=config.kl_loss_estimator)
                    loss = loss + config.kl_loss_coef * aggregate(
                        kl.masked_fill(~loss_mask[idx], 0.0).unsqueeze(0), loss_mask[idx].unsqueeze(0)
                    )
                loss, update_stats = distributed.token_mean_share(loss, update_stats, loss_mask[idx])
                optimizer.zero_grad()
                loss.sum().backward()
                for group in optimizer.param_groups:
                    torch.nn.utils.clip_grad_norm_(group["params"], config.max_grad_norm)
                optimizer.step()
                stats.add({k: v.squeeze(0) for k, v in update_stats.items()})

        # 5. history, of the global batch under torch.distributed (gather is the identity otherwise)
        means = distributed.sum_over_ranks(stats.means())
        gather = distributed.gather
        row = {
            **means,
            "value_loss": means["value_loss"] if critic is not None else nan,
            "explained_variance": explained_variance(*map(gather, (old_values, targets, mask)))
            if critic is not None
            else nan,
            "reward": gather(batch.scores).mean(),
            "accuracy": gather(batch.correct).mean(),
            "kl": gather(((s.log_probs - batch.ref_log_probs) * mask).sum(1)).mean(),
            "length": gather(s.lengths).float().mean(),
            "truncated": gather(s.truncated).float().mean(),
            "kl_coef": kl_coef,
        }
        if config.kl_target is not None:  # Ziegler et al.'s controller: β for the next iteration
            kl_coef = adaptive_kl_coef(
                kl_coef, row["kl"], target=config.kl_target, horizon=config.kl_horizon, n_steps=config.batch_size
            )
        for k, v in row.items():
            columns[k].append(v)
        if progress:
            bar.set_postfix(reward=f"{columns['reward'][-1].item():.2f}", kl=f"{columns['kl'][-1].item():.2f}")

    return LMHistory(**{k: torch.stack([v.detach().float().cpu() for v in vs]) for k, vs in columns.items()})


@torch.no_grad()
def answer_prompts(
    policy: Policy,
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
    _check_policy("policy", policy, tok)
    batch = tok.batch(list(prompts), eos=False, pad="left").to(_device(policy))
    s = sample(policy, batch, max_new_tokens=max_new_tokens or task.max_new_tokens, generator=generator, greedy=greedy)
    responses = [tok.decode(t) for t in s.tokens.cpu()]
    return task.reward(prompts, responses), responses
