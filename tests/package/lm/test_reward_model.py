"""The learned reward model: the Bradley–Terry loss, the score at <eos>, synthetic preferences, the scorer for PPO."""

from __future__ import annotations

import math

import pytest
import torch

from gaebook.lm.hf import char_tokenizer, tiny_llama
from gaebook.lm.hf_policy import HFPolicy
from gaebook.lm.ppo import LMPPOConfig, finetune
from gaebook.lm.reward_model import (
    PreferencePairs,
    RewardModel,
    RewardModelScorer,
    RunningMeanStd,
    bradley_terry_loss,
    preference_accuracy,
    preference_pairs,
    train_reward_model,
)
from gaebook.lm.tasks import BalancedParens
from gaebook.lm.tinygpt import CharTokenizer, Samples

TASK = BalancedParens(max_depth=3, max_pairs=1)
CHARS = CharTokenizer(TASK.alphabet)
PAD, EOS = CharTokenizer.PAD, CharTokenizer.EOS
OPEN, CLOSE, BAR = (CHARS.encode(c)[0] for c in "()|")


def llama(seed: int = 0):
    return tiny_llama(
        char_tokenizer(TASK.alphabet),
        hidden_size=16,
        n_layers=1,
        n_heads=2,
        max_len=32,
        generator=torch.Generator().manual_seed(seed),
    )


def reward_model(seed: int = 0, *, random_head: bool = True) -> RewardModel:
    """A reward model on a fresh backbone; with ``random_head`` its head is drawn, so that scores differ."""
    model = RewardModel(llama(seed).base_model)
    if random_head:
        with torch.no_grad():
            model.body.value_head.weight.normal_(generator=torch.Generator().manual_seed(seed + 100))
    return model


def test_the_bradley_terry_loss_is_the_mean_negative_log_likelihood_of_the_labels() -> None:
    gen = torch.Generator().manual_seed(0)
    chosen, rejected = 3 * torch.randn(50, generator=gen), 3 * torch.randn(50, generator=gen)
    pairs = zip(chosen.tolist(), rejected.tolist(), strict=True)
    by_hand = sum(-math.log(1 / (1 + math.exp(-(c - r)))) for c, r in pairs)
    assert bradley_terry_loss(chosen, rejected).item() == pytest.approx(by_hand / 50, rel=1e-6)
    # extreme margins stay finite (softplus, not log of a sigmoid that underflows)
    far = bradley_terry_loss(torch.tensor([-200.0]), torch.tensor([200.0]))
    assert far.item() == pytest.approx(400.0)


def test_the_bradley_terry_gradient_raises_the_chosen_and_lowers_the_rejected() -> None:
    gen = torch.Generator().manual_seed(1)
    chosen = torch.randn(20, generator=gen, dtype=torch.float64).requires_grad_()
    rejected = torch.randn(20, generator=gen, dtype=torch.float64).requires_grad_()
    bradley_terry_loss(chosen, rejected).backward()
    wrong_order = torch.sigmoid(rejected - chosen).detach()  # P(the model orders the pair wrongly)
    torch.testing.assert_close(chosen.grad, -wrong_order / 20)
    torch.testing.assert_close(rejected.grad, wrong_order / 20)
    assert (chosen.grad < 0).all() and (rejected.grad > 0).all()


@pytest.mark.parametrize(
    ("chosen", "rejected", "error", "match"),
    [
        (torch.zeros(3), torch.zeros(4), ValueError, "chosen_scores"),
        (torch.zeros(3, dtype=torch.long), torch.zeros(3), TypeError, "chosen_scores"),
        (torch.zeros(3), torch.zeros(3, 1), TypeError, "rejected_scores"),
        (torch.zeros(0), torch.zeros(0), TypeError, "chosen_scores"),
    ],
)
def test_the_bradley_terry_loss_refuses_bad_scores(chosen, rejected, error, match) -> None:
    with pytest.raises(error, match=match):
        bradley_terry_loss(chosen, rejected)


def test_the_score_is_read_at_eos_whatever_the_left_padding_and_whatever_follows() -> None:
    model = reward_model()
    prompts = CHARS.batch(["((|", "(()(|"], eos=False, pad="left")  # the first row is left-padded
    responses = torch.tensor([[CLOSE, CLOSE, EOS, PAD, PAD], [CLOSE, EOS, PAD, PAD, PAD]])
    mask = torch.tensor([[True, True, True, False, False], [True, True, False, False, False]])
    scores = model(prompts, responses, mask)
    # each row alone, without any padding: the value at its last token, <eos>
    for row, text, answer in ((0, "((|", "))"), (1, "(()(|", ")")):
        alone = torch.tensor([CHARS.encode(text + answer, bos=True, eos=True)])
        torch.testing.assert_close(scores[row], model.body(alone)[0, -1], rtol=1e-5, atol=1e-6)
    # what stands after <eos> is masked out: changing it changes nothing
    garbage = responses.masked_fill(~mask, OPEN)
    torch.testing.assert_close(model(prompts, garbage, mask), scores, rtol=0, atol=0)
    # ... and reading at <eos> matters: a shorter mask gives another score
    assert not torch.allclose(model(prompts, responses, mask & (torch.arange(5) < 1)), scores)


def test_a_fresh_reward_model_scores_everything_zero_and_from_policy_copies_the_backbone() -> None:
    policy = HFPolicy(llama())
    model = RewardModel.from_policy(policy)
    prompts = CHARS.batch(["(|", "((|"], eos=False, pad="left")
    responses = torch.tensor([[CLOSE, EOS], [CLOSE, CLOSE]])
    assert (model(prompts, responses, torch.ones_like(responses, dtype=torch.bool)) == 0).all()
    assert all(
        torch.equal(p, q) and p.data_ptr() != q.data_ptr()
        for p, q in zip(model.body.backbone.parameters(), policy.model.base_model.parameters(), strict=True)
    )


def test_the_reward_model_refuses_bad_inputs() -> None:
    model = reward_model()
    prompts = CHARS.batch(["(|"], eos=False, pad="left")
    responses = torch.tensor([[CLOSE, EOS]])
    with pytest.raises(TypeError, match="mask"):
        model(prompts, responses, torch.ones_like(responses))
    with pytest.raises(TypeError, match="prompts"):
        model(prompts.float(), responses, responses > 0)
    with pytest.raises(ValueError, match="mask"):
        model(prompts, responses, torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(TypeError, match="policy"):
        RewardModel.from_policy(llama())  # type: ignore[arg-type]


def toy_pairs(n: int, seed: int) -> PreferencePairs:
    """Pairs anyone can tell apart: the chosen response is ``)`` then <eos>, the rejected ``(`` then <eos>."""
    texts = TASK.prompts(n, generator=torch.Generator().manual_seed(seed))
    prompts = CHARS.batch(texts, eos=False, pad="left")
    mask = torch.ones(n, 2, dtype=torch.bool)
    chosen = torch.tensor([[CLOSE, EOS]]).expand(n, 2)
    rejected = torch.tensor([[OPEN, EOS]]).expand(n, 2)
    never = torch.zeros(n, dtype=torch.bool)
    return PreferencePairs(texts, prompts, chosen, mask, rejected, mask, never, never)


def test_the_reward_model_learns_a_separable_preference_and_its_accuracy_says_so() -> None:
    model = RewardModel(llama().base_model)
    held_out = toy_pairs(64, seed=1)
    assert preference_accuracy(model, held_out).item() == 0.5  # a fresh model ties every pair
    losses = train_reward_model(
        model, toy_pairs(64, seed=0), steps=30, batch_size=16, lr=1e-2, generator=torch.Generator().manual_seed(0)
    )
    assert len(losses) == 30 and losses[-1] < 0.1 < math.log(2) - 0.1 < losses[0] + 1e-6
    assert preference_accuracy(model, held_out).item() == 1.0
    swapped = PreferencePairs(
        held_out.texts,
        held_out.prompts,
        held_out.rejected,
        held_out.rejected_mask,
        held_out.chosen,
        held_out.chosen_mask,
        held_out.flipped,
        held_out.by_length,
    )
    assert preference_accuracy(model, swapped).item() == 0.0


def true_scores(pairs: PreferencePairs, which: str) -> torch.Tensor:
    """The task's true score (exact match, −1 without <eos>) of the chosen or rejected responses."""
    tokens, mask = (pairs.chosen, pairs.chosen_mask) if which == "chosen" else (pairs.rejected, pairs.rejected_mask)
    correct = TASK.reward(pairs.texts, [CHARS.decode(t) for t in tokens])
    truncated = ~(tokens == EOS).any(1)
    assert torch.equal(mask.sum(1), torch.where(truncated, mask.shape[1], (tokens == EOS).int().argmax(1) + 1))
    return correct - truncated.float()


@pytest.mark.parametrize("flip_prob", [0.0, 1.0])
def test_preference_pairs_rank_by_the_true_score_and_flip_every_label_at_probability_one(flip_prob: float) -> None:
    # a random policy with a budget of 3 tokens is often cut short (score −1) and sometimes not (0 or 1)
    pairs = preference_pairs(
        HFPolicy(llama()),
        TASK,
        CHARS,
        200,
        flip_prob=flip_prob,
        generator=torch.Generator().manual_seed(0),
        max_new_tokens=3,
    )
    assert 20 < len(pairs) < 200
    chosen, rejected = true_scores(pairs, "chosen"), true_scores(pairs, "rejected")
    assert ((chosen > rejected) if flip_prob == 0 else (chosen < rejected)).all()
    assert bool(pairs.flipped.all()) == (flip_prob == 1) and bool(pairs.flipped.any()) == (flip_prob == 1)
    assert not pairs.by_length.any()


@pytest.mark.parametrize("flip_prob", [0.0, 1.0])
def test_preference_pairs_with_a_full_length_bias_prefer_the_longer_response_whenever_lengths_differ(
    flip_prob: float,
) -> None:
    pairs = preference_pairs(
        HFPolicy(llama()),
        TASK,
        CHARS,
        300,
        flip_prob=flip_prob,
        length_bias=1.0,
        generator=torch.Generator().manual_seed(2),
        max_new_tokens=3,
    )
    chosen_len, rejected_len = pairs.chosen_mask.sum(1), pairs.rejected_mask.sum(1)
    assert torch.equal(pairs.by_length, chosen_len != rejected_len)
    assert (chosen_len[pairs.by_length] > rejected_len[pairs.by_length]).all()
    # some longer responses are the worse ones: the labels follow length, not the true score
    chosen, rejected = true_scores(pairs, "chosen"), true_scores(pairs, "rejected")
    assert (chosen[pairs.by_length] < rejected[pairs.by_length]).any()
    # pairs of equal length are judged by the true score, and only they are flipped
    by_score = ~pairs.by_length
    assert 5 < int(by_score.sum()) < len(pairs)
    assert torch.equal(pairs.flipped, by_score & (flip_prob == 1))
    assert ((chosen > rejected) if flip_prob == 0 else (chosen < rejected))[by_score].all()


def test_preference_pairs_judge_by_length_at_the_given_rate() -> None:
    pairs = preference_pairs(
        HFPolicy(llama()),
        TASK,
        CHARS,
        1000,
        flip_prob=0.0,
        length_bias=0.4,
        generator=torch.Generator().manual_seed(3),
        max_new_tokens=3,
    )
    chosen, rejected = true_scores(pairs, "chosen"), true_scores(pairs, "rejected")
    # a pair that differs in length and in score is kept whichever way it is judged: its rate is the bias
    either = (pairs.chosen_mask.sum(1) != pairs.rejected_mask.sum(1)) & (chosen != rejected)
    n, rate = int(either.sum()), pairs.by_length[either].float().mean().item()
    assert n > 100 and abs(rate - 0.4) < 4 * math.sqrt(0.4 * 0.6 / n)
    assert (chosen > rejected)[~pairs.by_length].all()


def test_preference_pairs_flip_labels_at_the_given_rate() -> None:
    pairs = preference_pairs(
        HFPolicy(llama()),
        TASK,
        CHARS,
        1000,
        flip_prob=0.3,
        generator=torch.Generator().manual_seed(1),
        max_new_tokens=3,
    )
    n, rate = len(pairs), pairs.flipped.float().mean().item()
    assert abs(rate - 0.3) < 4 * math.sqrt(0.3 * 0.7 / n)
    chosen, rejected = true_scores(pairs, "chosen"), true_scores(pairs, "rejected")
    assert torch.equal(chosen < rejected, pairs.flipped)


def test_preference_pairs_refuse_bad_arguments() -> None:
    policy, gen = HFPolicy(llama()), torch.Generator()
    with pytest.raises(ValueError, match="flip_prob"):
        preference_pairs(policy, TASK, CHARS, 10, flip_prob=1.5, generator=gen)
    with pytest.raises(ValueError, match="length_bias"):
        preference_pairs(policy, TASK, CHARS, 10, flip_prob=0.1, length_bias=-0.1, generator=gen)
    with pytest.raises(ValueError, match="n_prompts"):
        preference_pairs(policy, TASK, CHARS, 0, flip_prob=0.1, generator=gen)
    with pytest.raises(TypeError, match="policy"):
        preference_pairs(llama(), TASK, CHARS, 10, flip_prob=0.1, generator=gen)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="steps"):
        train_reward_model(reward_model(), toy_pairs(4, 0), steps=0, generator=gen)
    with pytest.raises(TypeError, match="pairs"):
        preference_accuracy(reward_model(), [])  # type: ignore[arg-type]


def test_running_mean_std_merges_batches_into_the_statistics_of_all_of_them() -> None:
    gen = torch.Generator().manual_seed(2)
    batches = [5 + 3 * torch.randn(n, generator=gen) for n in (1, 7, 64, 3)]
    stats = RunningMeanStd()
    assert stats.var.item() == 0.0
    for i, batch in enumerate(batches):
        stats.update(batch)
        seen = torch.cat(batches[: i + 1]).double()
        torch.testing.assert_close(stats.mean, seen.mean())
        torch.testing.assert_close(stats.var, seen.var(unbiased=False))
        assert stats.count.item() == len(seen)
    with pytest.raises(TypeError, match="x"):
        stats.update(torch.zeros(0))


def scored_batch(seed: int) -> tuple[torch.Tensor, Samples]:
    texts = TASK.prompts(16, generator=torch.Generator().manual_seed(seed))
    prompts = CHARS.batch(texts, eos=False, pad="left")
    tokens = torch.randint(3, 6, (16, 4), generator=torch.Generator().manual_seed(seed + 1))
    lengths = torch.randint(1, 5, (16, 1), generator=torch.Generator().manual_seed(seed + 2))
    mask = torch.arange(4) < lengths
    tokens = torch.where(torch.arange(4) == lengths - 1, EOS, tokens).masked_fill(~mask, PAD)
    return prompts, Samples(tokens, torch.zeros(16, 4), mask)


def test_the_scorer_normalises_by_the_running_statistics_of_every_score_so_far() -> None:
    model = reward_model()
    scorer = RewardModelScorer(model, normalize="running")
    raws = []
    for seed in (0, 10, 20):
        prompts, samples = scored_batch(seed)
        out = scorer(prompts, samples)
        raws.append(model(prompts, samples.tokens, samples.mask).detach().double())
        seen = torch.cat(raws)
        expected = (raws[-1] - seen.mean()) / (seen.std(unbiased=False) + scorer.eps)
        torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-5)
        assert not out.requires_grad
    torch.testing.assert_close(torch.stack(scorer.raw_means).double(), torch.stack([r.mean() for r in raws]))


def test_the_scorer_normalises_by_the_batch_and_clips() -> None:
    prompts, samples = scored_batch(0)
    batch = RewardModelScorer(reward_model(), normalize="batch")(prompts, samples)
    torch.testing.assert_close(batch.mean(), torch.zeros(()), atol=1e-5, rtol=0)
    torch.testing.assert_close(batch.std(unbiased=False), torch.ones(()), atol=1e-4, rtol=0)
    clipped = RewardModelScorer(reward_model(), normalize="batch", clip=0.5)(prompts, samples)
    torch.testing.assert_close(clipped, batch.clamp(-0.5, 0.5))
    assert (batch.abs() > 0.5).any()  # the clip did something
    raw = RewardModelScorer(reward_model(), normalize="none")(prompts, samples)
    torch.testing.assert_close(raw, reward_model()(prompts, samples.tokens, samples.mask).detach())


def test_the_scorer_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match="normalize"):
        RewardModelScorer(reward_model(), normalize="whiten")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="clip"):
        RewardModelScorer(reward_model(), clip=0)
    with pytest.raises(TypeError, match="model"):
        RewardModelScorer(llama())  # type: ignore[arg-type]


def test_finetune_rewards_the_scorers_score_and_still_records_the_true_accuracy() -> None:
    calls = []

    def half(prompts: torch.Tensor, samples: Samples) -> torch.Tensor:
        calls.append(prompts.shape[0])
        return torch.full((prompts.shape[0],), 0.5)

    config = LMPPOConfig(iterations=2, n_prompts=8, lr=1e-3)
    history = finetune(
        HFPolicy(llama()), TASK, CHARS, config, generator=torch.Generator().manual_seed(0), scorer=half, progress=False
    )
    assert calls == [8, 8]
    torch.testing.assert_close(history.reward, 0.5 - history.truncated)  # the truncation penalty still applies
    assert (history.reward != history.accuracy - history.truncated).any()  # not the exact score
