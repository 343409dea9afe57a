"""The token-level MDP of RL fine-tuning, and the advantage estimators that skip the critic.

A response of ``T`` tokens is an episode of ``T`` steps: the state is the prompt and the tokens
so far, the action is the next token, and the episode ends at EOS (or is cut at the budget).
Every function here takes and returns tensors, works on any device and never reads values back
to the host. Layout as in :mod:`gaebook.advantages`: time (the response position) is the last
dimension, ``(B, T)`` for a batch of ``B`` responses, with a bool ``mask`` ``(B, T)`` that is
``True`` at the policy's actions (up to and including EOS).

The reward of token ``t`` is (Ziegler et al., 2019; Stiennon et al., 2020; Ouyang et al., 2022)

    r_t = −β · KL_t  +  [t is the last valid token] · score,

where ``KL_t`` estimates ``KL(π(·|s_t) ‖ π_ref(·|s_t))`` from the sampled token
(:func:`kl_penalty`, estimator k1) and ``score`` is the task's verdict on the whole response
(:func:`token_rewards`). With ``γ = 1`` the return from the first token is
``score − β · Σ_t KL_t``, a sample estimate of the KL-regularised objective. The coefficient
``β`` may be fixed or follow the adaptive controller of Ziegler et al.
(:func:`gaebook.lm.ppo.adaptive_kl_coef`).
The other way to keep the policy near the reference, GRPO's, is a KL term in the loss rather
than in the reward: :func:`kl_penalty` says which estimator each way needs.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor

from gaebook.reductions import masked_whiten

__all__ = [
    "KL_ESTIMATORS",
    "KLEstimator",
    "adaptive_lam",
    "grpo_advantages",
    "kl_penalty",
    "last_valid_index",
    "reinforce_pp_advantages",
    "rloo_advantages",
    "token_rewards",
    "truncation_penalty",
]


def _check(name: str, x: object, *, ndim: int | None = None, dtype: str = "float") -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if dtype == "float" and not x.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating tensor; got {x.dtype}")
    if dtype == "bool" and x.dtype != torch.bool:
        raise TypeError(f"{name} must be a bool tensor; got {x.dtype}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions; got shape {tuple(x.shape)}")
    return x


def _check_same_shape(**tensors: Tensor) -> None:
    (first, ref), *rest = tensors.items()
    for name, x in rest:
        if x.shape != ref.shape:
            raise ValueError(f"{name} has shape {tuple(x.shape)} but {first} has {tuple(ref.shape)}")


KLEstimator = Literal["k1", "k2", "k3"]
"""The names of the per-token KL estimators of :func:`kl_penalty`."""

KL_ESTIMATORS: tuple[str, ...] = get_args(KLEstimator)


def kl_penalty(log_probs: Tensor, ref_log_probs: Tensor, *, estimator: KLEstimator = "k1") -> Tensor:
    """Per-token estimate of ``KL(π ‖ π_ref)`` from the log-probs of sampled tokens (Schulman, 2020).

    For a token ``a`` drawn from ``π``, with ``log r = log π_ref(a) − log π(a)`` (so
    ``r = π_ref(a)/π(a)``):

    * ``k1 = log π(a)/π_ref(a) = −log r``: unbiased for the KL, can be negative, high variance;
    * ``k2 = ½ (log π(a)/π_ref(a))² = ½ (log r)²``: biased (its mean is not the KL, though close
      to it when the policies are close), never negative;
    * ``k3 = (r − 1) − log r``: unbiased (``E_π[r] = 1``) and never negative, with lower variance
      than k1 when the policies are close.

    An unbiased *value* does not make an unbiased *gradient*, and the right estimator depends on
    where the KL goes (``∇`` is with respect to the policy's parameters, the samples ``a ~ π``
    held fixed; ``∇KL = E_π[log(π/π_ref) ∇log π]``):

    * **in the reward** (``r_t = −β·k_t``, as :func:`token_rewards`), the policy gradient is the
      score-function form ``E_π[k ∇log π]``: it is ``∇KL`` for **k1 only**. For k3 it is
      ``∇KL + E_π[(r − 1) ∇log π] = ∇KL + Σ_a (π_ref − π)(a) ∇log π(a)``, and for k2 it is
      ``E_π[½ (log π/π_ref)² ∇log π]``: neither is ``∇KL``;
    * **as a loss term** (``+ c·mean(k)`` minimised, differentiated through ``log π(a)``: the
      pathwise form ``E_π[∇k]``; GRPO, verl's ``use_kl_loss``): ``∇k2 = log(π/π_ref) ∇log π``,
      so **k2 only** gives ``∇KL``. k1 gives ``E_π[∇log π] = 0``, no gradient at all in
      expectation; k3 gives ``E_π[(1 − r) ∇log π] = −E_{π_ref}[∇log π] = ∇KL(π_ref ‖ π)``, the
      gradient of the reverse KL (GRPO's choice, Shao et al., 2024: a pull toward ``π_ref``, but
      not the gradient of the KL it estimates).

    ``tests/package/lm/test_kl.py`` checks each statement on a softmax with exact expectations.

    Args:
        log_probs, ref_log_probs: floating ``(..., T)``, the policy's and the reference's log-probs.
        estimator: ``"k1"``, ``"k2"`` or ``"k3"``.

    Returns:
        ``(..., T)``; mask it before use (padding positions hold arbitrary numbers).
    """
    _check("log_probs", log_probs)
    _check("ref_log_probs", ref_log_probs)
    _check_same_shape(log_probs=log_probs, ref_log_probs=ref_log_probs)
    log_ratio = ref_log_probs - log_probs
    if estimator == "k1":
        return -log_ratio
    if estimator == "k2":
        return 0.5 * log_ratio.square()
    if estimator == "k3":
        return torch.expm1(log_ratio) - log_ratio
    raise ValueError(f"estimator must be one of 'k1', 'k2', 'k3'; got {estimator!r}")


def last_valid_index(mask: Tensor) -> Tensor:
    """Index of the last ``True`` of each row of bool ``(B, T)``: long ``(B,)`` (0 for an empty row)."""
    _check("mask", mask, ndim=2, dtype="bool")
    positions = torch.arange(mask.shape[1], device=mask.device)
    return torch.where(mask, positions, 0).amax(dim=1)


def truncation_penalty(scores: Tensor, truncated: Tensor, penalty: float) -> Tensor:
    """``scores − penalty`` for responses that never emitted EOS, ``scores`` otherwise: ``(B,)``.

    A response cut at the token budget is not an answer; without a penalty the policy can drift
    towards rambling, which costs nothing when the score of a wrong answer is 0 anyway. (TRL
    calls this ``missing_eos_penalty``.)
    """
    _check("scores", scores, ndim=1)
    _check("truncated", truncated, ndim=1, dtype="bool")
    _check_same_shape(scores=scores, truncated=truncated)
    return scores - penalty * truncated.to(scores.dtype)


def token_rewards(
    scores: Tensor,
    mask: Tensor,
    kl: Tensor | None = None,
    *,
    kl_coef: float | Tensor = 0.0,
    step_rewards: Tensor | None = None,
) -> Tensor:
    """Per-token rewards ``r_t = −β·KL_t + [t = last valid token]·score + p_t``, zero at masked positions.

    ``p_t`` are process rewards, given where the step they reward happens (0 without them).

    The score goes on the **last valid token** (the EOS, or the last token of a truncated
    response): that action completed the response. TRL's ``PPOTrainer`` (last shipped in TRL
    1.12.0, as ``trl.experimental.ppo``) added it one slot later, at ``sequence_lengths + 1``, the
    first padding position after EOS (huggingface/trl issues #1893 and #3750), a position that is
    no action of the policy; the EOS then saw the score only through the value and advantage of a
    padding slot. Here it always lands on an action.

    Args:
        scores: floating ``(B,)``, the task's score of each whole response.
        mask: bool ``(B, T)``, the response mask (at least one ``True`` per row).
        kl: optional floating ``(B, T)``, per-token KL estimates (:func:`kl_penalty` with
            ``estimator="k1"``, the one whose policy gradient in the reward is the KL's).
        kl_coef: ``β ≥ 0``, a number or a floating 0-d tensor on ``scores``' device (the
            adaptive controller's; not read back, so its sign is not checked).
        step_rewards: optional floating ``(B, T)``, the process rewards ``p_t`` of each token
            (:meth:`gaebook.lm.tasks.Task.step_rewards`); masked positions are dropped.

    Returns:
        ``(B, T)`` in the dtype of ``scores``.
    """
    _check("scores", scores, ndim=1)
    _check("mask", mask, ndim=2, dtype="bool")
    if scores.shape[0] != mask.shape[0]:
        raise ValueError(f"scores has {scores.shape[0]} rows but mask has {mask.shape[0]}")
    if isinstance(kl_coef, Tensor):
        _check("kl_coef", kl_coef, ndim=0)
    elif kl_coef < 0:
        raise ValueError(f"kl_coef must be non-negative; got {kl_coef}")
    rewards = torch.zeros(mask.shape, dtype=scores.dtype, device=scores.device)
    if kl is not None:
        _check("kl", kl, ndim=2)
        _check_same_shape(mask=mask, kl=kl)
        rewards = rewards - kl_coef * kl.to(scores.dtype)
    if step_rewards is not None:
        _check("step_rewards", step_rewards, ndim=2)
        _check_same_shape(mask=mask, step_rewards=step_rewards)
        rewards = rewards + step_rewards.to(scores.dtype)
    rewards = rewards.masked_fill(~mask, 0.0)
    return rewards.scatter_add(1, last_valid_index(mask).unsqueeze(1), scores.unsqueeze(1))


def adaptive_lam(lengths: Tensor, alpha: float) -> Tensor:
    """Length-adaptive GAE λ of VAPO (Yue et al., 2025): ``λ = 1 − 1/(α·l)``, clipped to ``[0, 1]``.

    The weights of GAE's ``δ_{t+l}`` sum to ``Σ_l λ^l = 1/(1 − λ) = α·l``: the horizon over which
    TD errors are averaged grows in proportion to the response length ``l``, so long responses
    get a nearly Monte Carlo estimate and short ones more bootstrapping. VAPO uses ``α = 0.05``
    for responses of thousands of tokens; for responses of tens of tokens, ``α`` near 1 gives
    comparable λ.

    Args:
        lengths: ``(B,)`` response lengths (valid tokens), any real dtype.
        alpha: ``α > 0``.

    Returns:
        float ``(B,)`` λ per sequence, to pass to :func:`gaebook.gae` as ``lam``.
    """
    if not isinstance(lengths, Tensor):
        raise TypeError(f"lengths must be a torch.Tensor; got {type(lengths).__name__}")
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not alpha > 0:
        raise ValueError(f"alpha must be a positive number; got {alpha!r}")
    dtype = lengths.dtype if lengths.dtype.is_floating_point else torch.get_default_dtype()
    return (1 - 1 / (alpha * lengths.to(dtype).clamp_min(1))).clamp(0.0, 1.0)


def _groups(rewards: Tensor, group_size: int) -> Tensor:
    _check("rewards", rewards, ndim=1)
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 2:
        raise ValueError(f"group_size must be an int of at least 2; got {group_size!r}")
    if rewards.shape[0] % group_size:
        raise ValueError(f"rewards has {rewards.shape[0]} entries, not a multiple of group_size={group_size}")
    return rewards.view(-1, group_size)


def grpo_advantages(rewards: Tensor, group_size: int, *, scale: bool = True, eps: float = 1e-4) -> Tensor:
    """GRPO's outcome-supervision advantage (Shao et al., 2024, eq. in §4.1.2).

    For the ``G`` responses to one prompt, ``Â_i = (R_i − mean(R)) / (std(R) + eps)``, the same for
    every token of response ``i``. ``std`` is the unbiased sample standard deviation (as in
    TRL's ``GRPOTrainer``, which also adds ``eps = 1e-4``). With ``scale=False`` the division is
    dropped, as Dr. GRPO proposes (Liu et al., 2025), since it up-weights prompts whose answers
    all but agree. Dr. GRPO drops a second normalisation too, GRPO's ``1/|o_i|``, the mean over
    each response's own tokens, which favours long wrong answers over short ones: Dr. GRPO is
    ``scale=False`` here together with the loss aggregation ``"seq-mean-token-sum-norm"`` of
    :class:`gaebook.lm.ppo.LMPPOConfig` (``loss_agg_mode``: each response's token-sum divided by
    a constant, the token budget). ``LMPPOConfig(advantage="grpo")`` scales; its
    ``advantage="rloo"`` gives ``scale=False``'s advantages times ``G/(G − 1)``
    (:func:`rloo_advantages`).

    Args:
        rewards: floating ``(B,)``, grouped contiguously: rows ``k·G … k·G + G − 1`` answer prompt ``k``.
        group_size: ``G ≥ 2``.

    Returns:
        ``(B,)`` per-response advantages; broadcast them over the response's tokens.
    """
    r = _groups(rewards, group_size)
    centred = r - r.mean(dim=1, keepdim=True)
    if scale:
        centred = centred / (r.std(dim=1, keepdim=True) + eps)
    return centred.reshape(-1)


def rloo_advantages(rewards: Tensor, group_size: int) -> Tensor:
    """REINFORCE leave-one-out (Kool et al., 2019; Ahmadian et al., 2024).

    ``Â_i = R_i − (1/(G − 1)) Σ_{j≠i} R_j``: each response is compared with the mean of the
    *other* responses to its prompt, a baseline independent of ``R_i``, so the estimate stays
    unbiased. Equivalently ``Â_i = G/(G − 1) · (R_i − mean(R))``.

    Args as :func:`grpo_advantages`. Returns ``(B,)``.
    """
    r = _groups(rewards, group_size)
    others = (r.sum(dim=1, keepdim=True) - r) / (group_size - 1)
    return (r - others).reshape(-1)


def reinforce_pp_advantages(rewards: Tensor, mask: Tensor) -> Tensor:
    """REINFORCE++ (Hu, 2025): the token-level return-to-go, whitened over the whole batch.

    ``A_t = Σ_{s ≥ t} r_s`` with ``γ = 1`` and the token rewards of :func:`token_rewards`
    (score on the last token, ``−β·KL_s`` on every token), so
    ``A_t = score − β·Σ_{s≥t} KL_s``; then ``(A − mean)/std`` over all valid tokens of the batch
    (:func:`gaebook.reductions.masked_whiten`), the global normalisation that replaces a critic's baseline.

    Args:
        rewards: floating ``(B, T)``, zero at masked positions.
        mask: bool ``(B, T)``.

    Returns:
        ``(B, T)``, zero at masked positions.
    """
    _check("rewards", rewards, ndim=2)
    _check("mask", mask, ndim=2, dtype="bool")
    _check_same_shape(rewards=rewards, mask=mask)
    returns = rewards.masked_fill(~mask, 0.0).flip(-1).cumsum(-1).flip(-1)
    return masked_whiten(returns, mask)
