"""A learned reward model: a Hugging Face backbone with a scalar head, trained on preference pairs.

RLHF replaces an exact score by a model of preferences (Christiano et al., 2017; Ziegler et al.,
2019; Ouyang et al., 2022). The pieces, in the order they are used:

* :func:`preference_pairs`: two responses to each prompt sampled from a policy, ranked by the
  task's true score, each label flipped with probability ``flip_prob`` (a noisy annotator), or,
  with probability ``length_bias``, given to the longer response (an annotator who likes length);
* :class:`RewardModel`: a causal backbone and a linear head, read at the last valid token of the
  response (its ``<eos>``): the score of the whole response, since only there has the model read
  all of it;
* :func:`bradley_terry_loss` and :func:`train_reward_model`: maximum likelihood under the
  Bradley–Terry model ``P(a ≻ b) = σ(r(a) − r(b))``; :func:`preference_accuracy` on held-out pairs;
* :class:`RewardModelScorer`: the reward model as the ``scorer`` of :func:`gaebook.lm.ppo.finetune`,
  its score normalised (running or batch mean and standard deviation) and optionally clipped;
  :class:`RunningMeanStd` keeps the running statistics.

Layout as in :mod:`gaebook.lm.tinygpt`: prompts long ``(B, P)``, left-padded with ``<pad>``;
responses long ``(B, T)`` with a bool mask ``(B, T)``, ``True`` up to and including the ``<eos>``.
Nothing here reads a tensor back to the host except :func:`preference_pairs` (which decodes the
responses to score them, once) and :func:`train_reward_model` (its losses, once, at the end).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, cast, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gaebook.lm import token_mdp
from gaebook.lm.hf_policy import HFCritic, HFPolicy
from gaebook.lm.tasks import Task
from gaebook.lm.tinygpt import CharTokenizer, Samples, sample
from gaebook.training import check_choice, check_non_negative, check_positive_int, check_unit_interval

if TYPE_CHECKING:
    from transformers import PreTrainedModel

__all__ = [
    "NORMALIZATIONS",
    "Normalization",
    "PreferencePairs",
    "RewardModel",
    "RewardModelScorer",
    "RunningMeanStd",
    "bradley_terry_loss",
    "preference_accuracy",
    "preference_pairs",
    "train_reward_model",
]

Normalization = Literal["running", "batch", "none"]
"""How :class:`RewardModelScorer` normalises the reward model's score."""

NORMALIZATIONS: tuple[str, ...] = get_args(Normalization)


def _check_tokens(name: str, x: object, ndim: int, dtype: torch.dtype) -> Tensor:
    if not isinstance(x, Tensor) or x.ndim != ndim or x.dtype != dtype:
        got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
        raise TypeError(f"{name} must be a {dtype} tensor with {ndim} dimensions; got {got}")
    return x


class RewardModel(nn.Module):
    """A scalar score for a whole response: a Hugging Face backbone and a linear head, read at ``<eos>``.

    The head is :class:`~gaebook.lm.hf_policy.HFCritic`'s (a linear map of the last hidden state,
    float32, initialised to zero, so every initial score is 0); the critic gives a number at every
    position, and the reward model reads the one at the response's last valid token, the ``<eos>``
    (or the last token of a response cut at the budget). Causal attention makes that the only
    position that has read the prompt and the whole response. Bradley–Terry fixes scores only up to
    a constant, so a score means something only against another score (of another response, or the
    mean of a batch).

    Calling it maps ``prompts`` long ``(B, P)`` (left-padded with ``<pad>``), ``responses`` long
    ``(B, T)`` and their bool ``mask`` ``(B, T)`` (at least one ``True`` per row, which is not
    checked: that would read the device) to float32 scores ``(B,)``.
    """

    def __init__(self, backbone: PreTrainedModel) -> None:
        super().__init__()
        self.body = HFCritic(backbone)  # checks the backbone; eval mode, no dropout

    @classmethod
    def from_policy(cls, policy: HFPolicy) -> RewardModel:
        """A reward model whose backbone is a copy of ``policy``'s (InstructGPT's start: the supervised model)."""
        if not isinstance(policy, HFPolicy):
            raise TypeError(f"policy must be an HFPolicy; got {type(policy).__name__}")
        return cls(cast("PreTrainedModel", copy.deepcopy(policy.model.base_model)))

    def forward(self, prompts: Tensor, responses: Tensor, mask: Tensor) -> Tensor:
        """Scores float ``(B,)``: the head at each response's last valid token."""
        _check_tokens("prompts", prompts, 2, torch.long)
        _check_tokens("responses", responses, 2, torch.long)
        _check_tokens("mask", mask, 2, torch.bool)
        if responses.shape != mask.shape or prompts.shape[0] != responses.shape[0]:
            raise ValueError(
                f"prompts (B, P), responses and mask (B, T) must agree; got {tuple(prompts.shape)}, "
                f"{tuple(responses.shape)}, {tuple(mask.shape)}"
            )
        tokens = torch.cat([prompts, responses], dim=1)
        attention_mask = torch.cat([prompts != CharTokenizer.PAD, mask], dim=1)
        per_position = self.body(tokens, attention_mask=attention_mask)  # (B, P + T)
        at_eos = prompts.shape[1] + token_mdp.last_valid_index(mask)
        return per_position.gather(1, at_eos.unsqueeze(1)).squeeze(1)


def bradley_terry_loss(chosen_scores: Tensor, rejected_scores: Tensor) -> Tensor:
    """The Bradley–Terry negative log-likelihood ``mean_i −log σ(r⁺_i − r⁻_i)``: a 0-d tensor.

    Under ``P(chosen ≻ rejected) = σ(r⁺ − r⁻)`` this is the mean negative log-likelihood of the
    labels; it equals ``softplus(r⁻ − r⁺)``, computed that way for stability. Its gradient raises
    ``r⁺`` and lowers ``r⁻`` by ``σ(r⁻ − r⁺)``, the probability the model gives the wrong order.

    Args:
        chosen_scores: floating ``(N,)``, the scores of the preferred responses.
        rejected_scores: floating ``(N,)``, of the others.
    """
    for name, x in (("chosen_scores", chosen_scores), ("rejected_scores", rejected_scores)):
        if not isinstance(x, Tensor) or not x.dtype.is_floating_point or x.ndim != 1 or not x.numel():
            got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
            raise TypeError(f"{name} must be a non-empty floating tensor of shape (N,); got {got}")
    if chosen_scores.shape != rejected_scores.shape:
        raise ValueError(
            f"chosen_scores {tuple(chosen_scores.shape)} and rejected_scores {tuple(rejected_scores.shape)} differ"
        )
    return F.softplus(rejected_scores - chosen_scores).mean()


@dataclass(frozen=True)
class PreferencePairs:
    """``N`` labelled pairs of responses to the same prompts, on one device.

    ``prompts`` long ``(N, P)`` left-padded; ``chosen`` and ``rejected`` long ``(N, T)`` with bool
    masks ``chosen_mask`` and ``rejected_mask`` ``(N, T)``; ``flipped`` bool ``(N,)``: the label
    was flipped, so ``chosen`` has the *lower* true score; ``by_length`` bool ``(N,)``: the label
    was given by length, so ``chosen`` is the longer response, whatever the true scores (never
    ``flipped``); ``texts`` the ``N`` prompts.
    """

    texts: list[str]
    prompts: Tensor
    chosen: Tensor
    chosen_mask: Tensor
    rejected: Tensor
    rejected_mask: Tensor
    flipped: Tensor
    by_length: Tensor

    def __len__(self) -> int:
        return len(self.texts)


@torch.no_grad()
def preference_pairs(
    policy: HFPolicy,
    task: Task,
    tok: CharTokenizer,
    n_prompts: int,
    *,
    flip_prob: float,
    generator: torch.Generator,
    max_new_tokens: int | None = None,
    temperature: float = 1.0,
    truncation_penalty: float = 1.0,
    length_bias: float = 0.0,
) -> PreferencePairs:
    """Synthetic preferences: two sampled responses per prompt, ranked by the task's true score, with label noise.

    ``policy`` answers each of ``n_prompts`` fresh prompts twice. The true score of a response is
    the task's exact match minus ``truncation_penalty`` if it never emitted ``<eos>`` (the score
    :func:`gaebook.lm.ppo.finetune` uses without a scorer, at ``LMPPOConfig``'s default penalty).
    Each pair is judged in one of two ways. With probability ``length_bias`` independently, if
    its two responses differ in length (valid tokens, ``<eos>`` included), the annotator prefers
    the longer one whatever the scores (``by_length``): label noise correlated with length, the
    systematic bias of human preference data for longer answers. Otherwise the true scores decide:
    a pair whose two scores are equal says nothing about the order and is dropped, so ``N ≤
    n_prompts``; in the others the better response is ``chosen``, and then, with probability
    ``flip_prob`` independently, the label is swapped (``flipped``). The prompts, the flips and
    (only if ``length_bias > 0``) the length judgements are drawn from ``generator``, the responses
    too; the responses are decoded on the host once.

    Returns:
        :class:`PreferencePairs` on the policy's device.
    """
    if not isinstance(policy, HFPolicy):
        raise TypeError(f"policy must be an HFPolicy; got {type(policy).__name__}")
    if not isinstance(task, Task):
        raise TypeError(f"task must be a gaebook.lm.tasks.Task; got {type(task).__name__}")
    check_positive_int("n_prompts", n_prompts)
    check_unit_interval("flip_prob", flip_prob)
    check_unit_interval("length_bias", length_bias)
    check_non_negative("truncation_penalty", truncation_penalty)
    device = next(policy.parameters()).device
    texts = task.prompts(n_prompts, generator=generator)
    doubled = [p for p in texts for _ in range(2)]
    prompts = tok.batch(doubled, eos=False, pad="left").to(device)
    s = sample(
        policy,
        prompts,
        max_new_tokens=max_new_tokens or task.max_new_tokens,
        generator=generator,
        temperature=temperature,
    )
    correct = task.reward(doubled, [tok.decode(t) for t in s.tokens.cpu()]).to(device)
    score = token_mdp.truncation_penalty(correct, s.truncated, truncation_penalty).view(n_prompts, 2)
    length = s.mask.sum(1).view(n_prompts, 2)
    flip = torch.rand(n_prompts, generator=generator, device=generator.device).to(device) < flip_prob
    by_length = torch.zeros(n_prompts, dtype=torch.bool, device=device)
    if length_bias > 0:  # drawn only then: without the bias, the generator gives the same pairs as without the draw
        judged = torch.rand(n_prompts, generator=generator, device=generator.device).to(device) < length_bias
        by_length = judged & (length[:, 0] != length[:, 1])
    flip &= ~by_length
    # the row whose response is labelled chosen: 0 or 1
    first_better = torch.where(by_length, length[:, 0] > length[:, 1], (score[:, 0] > score[:, 1]) ^ flip)
    keep = torch.nonzero(by_length | (score[:, 0] != score[:, 1])).squeeze(1)  # one read: N is the data's size
    rows = torch.arange(n_prompts, device=device) * 2
    chosen_row = (rows + (~first_better).long())[keep]
    rejected_row = (rows + first_better.long())[keep]
    return PreferencePairs(
        [texts[i] for i in keep.tolist()],
        prompts[chosen_row],
        s.tokens[chosen_row],
        s.mask[chosen_row],
        s.tokens[rejected_row],
        s.mask[rejected_row],
        flip[keep],
        by_length[keep],
    )


def _scores(model: RewardModel, pairs: PreferencePairs, idx: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The scores of the chosen and of the rejected responses (of the pairs ``idx``, or all), each ``(N,)``.

    One forward pass over both halves.
    """
    parts = (pairs.prompts, pairs.chosen, pairs.chosen_mask, pairs.rejected, pairs.rejected_mask)
    prompts, chosen, chosen_mask, rejected, rejected_mask = parts if idx is None else (x[idx] for x in parts)
    both = model(torch.cat([prompts, prompts]), torch.cat([chosen, rejected]), torch.cat([chosen_mask, rejected_mask]))
    return both[: len(prompts)], both[len(prompts) :]


def _check_model_and_pairs(model: object, pairs: object) -> None:
    if not isinstance(model, RewardModel):
        raise TypeError(f"model must be a RewardModel; got {type(model).__name__}")
    if not isinstance(pairs, PreferencePairs):
        raise TypeError(f"pairs must be PreferencePairs; got {type(pairs).__name__}")
    if not len(pairs):
        raise ValueError("pairs must not be empty")


def train_reward_model(
    model: RewardModel,
    pairs: PreferencePairs,
    *,
    steps: int,
    batch_size: int = 32,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    generator: torch.Generator,
) -> list[float]:
    """Fit ``model`` in place to ``pairs`` by Adam(W) on :func:`bradley_terry_loss`; the loss of each step.

    Each step draws ``batch_size`` pairs with replacement from ``generator`` (on its device). The
    model stays in eval mode (no dropout). The losses are read back once, at the end.
    """
    _check_model_and_pairs(model, pairs)
    check_positive_int("steps", steps)
    check_positive_int("batch_size", batch_size)
    for name, value in (("lr", lr), ("weight_decay", weight_decay)):
        check_non_negative(name, value)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    losses = []
    for _ in range(steps):
        idx = torch.randint(len(pairs), (batch_size,), generator=generator, device=generator.device)
        loss = bradley_terry_loss(*_scores(model, pairs, idx.to(pairs.prompts.device)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.detach())
    return torch.stack(losses).tolist()


@torch.no_grad()
def preference_accuracy(model: RewardModel, pairs: PreferencePairs) -> Tensor:
    """The fraction of ``pairs`` that ``model`` orders as labelled (a tie counts one half): a 0-d tensor.

    Measured against the labels as they are, flips included: on pairs made with ``flip_prob=0``
    it is the agreement with the true score.
    """
    _check_model_and_pairs(model, pairs)
    chosen, rejected = _scores(model, pairs)
    return ((chosen > rejected).float() + 0.5 * (chosen == rejected).float()).mean()


class RunningMeanStd:
    """The mean and (population) variance of every number seen so far, kept on its device.

    :meth:`update` merges a batch by Chan et al.'s parallel formulas, exact whatever the batch
    sizes: with ``n, μ, M`` the count, mean and sum of squared deviations so far and ``m, x̄, S``
    the batch's, ``μ ← μ + (x̄ − μ)·m/(n + m)`` and ``M ← M + S + (x̄ − μ)²·n·m/(n + m)``. Nothing
    is read back to the host.
    """

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.count = torch.zeros((), dtype=torch.float64, device=device)
        self.mean = torch.zeros((), dtype=torch.float64, device=device)
        self._m2 = torch.zeros((), dtype=torch.float64, device=device)

    def update(self, x: Tensor) -> None:
        """Merge the numbers of ``x`` (floating, any shape, at least one element)."""
        if not isinstance(x, Tensor) or not x.dtype.is_floating_point or not x.numel():
            raise TypeError("x must be a non-empty floating tensor")
        x = x.detach().to(self.mean.device, torch.float64).flatten()
        m = x.numel()
        batch_mean = x.mean()
        total = self.count + m
        delta = batch_mean - self.mean
        self._m2 = self._m2 + ((x - batch_mean) ** 2).sum() + delta**2 * self.count * m / total
        self.mean = self.mean + delta * m / total
        self.count = total

    @property
    def var(self) -> Tensor:
        """The population variance of the numbers seen (0 before any): a float64 0-d tensor."""
        return self._m2 / self.count.clamp_min(1)


class RewardModelScorer:
    """A :class:`RewardModel` as the ``scorer`` of :func:`gaebook.lm.ppo.finetune`: normalised, optionally clipped.

    Calling it with ``prompts`` long ``(B, P)`` and the :class:`~gaebook.lm.tinygpt.Samples` ``(B, T)``
    returns float ``(B,)``: the reward model's score ``r`` (without a gradient), then

    * ``normalize="running"``: ``(r − μ)/(σ + eps)``, with ``μ`` and ``σ`` the mean and standard
      deviation of every score since the scorer was made, this batch's included
      (:class:`RunningMeanStd`): the scale stays nearly fixed over training, so a rise of the
      reward model's score is a rise of the reward;
    * ``"batch"``: ``μ`` and ``σ`` of this batch alone (the reward is centred in every batch);
    * ``"none"``: ``r`` as it is;

    then clipped to ``[−clip, clip]`` if ``clip`` is given. Why normalise: a Bradley–Terry score
    has no offset of its own (adding a constant changes no preference probability), and its scale
    is whatever training reached (it grows as the model grows surer of its pairs). ``β`` weighs the
    KL penalty against the score, so without normalisation its meaning would depend on the reward
    model's training run.

    ``raw_means`` collects the mean raw score of each call (0-d tensors on the device, read only by
    the caller): the proxy reward before normalisation.
    """

    def __init__(
        self, model: RewardModel, *, normalize: Normalization = "running", clip: float | None = None, eps: float = 1e-8
    ) -> None:
        if not isinstance(model, RewardModel):
            raise TypeError(f"model must be a RewardModel; got {type(model).__name__}")
        check_choice("normalize", normalize, NORMALIZATIONS)
        if clip is not None and (isinstance(clip, bool) or not isinstance(clip, int | float) or not clip > 0):
            raise ValueError(f"clip must be a positive number or None; got {clip!r}")
        if isinstance(eps, bool) or not isinstance(eps, int | float) or not eps > 0:
            raise ValueError(f"eps must be a positive number; got {eps!r}")
        self.model, self.normalize, self.clip, self.eps = model, normalize, clip, eps
        self.stats = RunningMeanStd(next(model.parameters()).device)
        self.raw_means: list[Tensor] = []

    @torch.no_grad()
    def __call__(self, prompts: Tensor, samples: Samples) -> Tensor:
        raw = self.model(prompts, samples.tokens, samples.mask)
        self.raw_means.append(raw.mean())
        score = raw
        if self.normalize == "running":
            self.stats.update(raw)
            score = (raw - self.stats.mean.to(raw.dtype)) / (self.stats.var.sqrt().to(raw.dtype) + self.eps)
        elif self.normalize == "batch":
            score = (raw - raw.mean()) / (raw.std(unbiased=False) + self.eps)
        return score if self.clip is None else score.clamp(-self.clip, self.clip)
