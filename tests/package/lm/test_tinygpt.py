"""Tests of gaebook.lm."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from host_traffic import host_traffic

from gaebook.lm.tasks import Addition
from gaebook.lm.tinygpt import CharTokenizer, TinyGPT, pretrain, sample


@pytest.fixture
def tok() -> CharTokenizer:
    return CharTokenizer(Addition.alphabet)


@pytest.fixture
def model(tok) -> TinyGPT:
    torch.manual_seed(0)
    return TinyGPT(tok.vocab_size, max_len=16, d_model=32, n_layers=1, n_heads=2)


def test_tokenizer_round_trip(tok):
    ids = tok.encode("12+7=19", bos=True, eos=True)
    assert ids[0] == tok.BOS and ids[-1] == tok.EOS
    assert tok.decode(ids[1:]) == "12+7=19"
    assert tok.decode([tok.BOS, 4, tok.PAD, 5, tok.EOS, 6]) == "<bos>1<pad>2"  # stray specials stay visible
    batch = tok.batch(["1+1=2", "10+10=20"])
    assert batch.shape == (2, 10) and batch[0, -1].item() == tok.PAD
    with pytest.raises(ValueError, match="outside the alphabet"):
        tok.encode("1*2")


def test_model_is_causal(model, tok):
    x = tok.batch(["12+7=19"])
    y = x.clone()
    y[0, -1] = 5
    torch.testing.assert_close(model(x)[:, :-1], model(y)[:, :-1])
    assert not torch.allclose(model(x)[:, -1], model(y)[:, -1])


def test_sample_log_probs_match_a_teacher_forced_pass(model, tok):
    prompts = tok.batch(["3+4=", "10+2="[:4]], eos=False)
    s = sample(model, prompts, max_new_tokens=6, generator=torch.Generator().manual_seed(0))
    full = torch.cat([prompts, s.tokens], dim=1)
    logp = torch.log_softmax(model(full[:, :-1]), -1)[:, prompts.shape[1] - 1 :]
    forced = logp.gather(-1, s.tokens.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(s.log_probs[s.mask], forced.detach()[s.mask], rtol=1e-5, atol=1e-5)
    assert (s.log_probs[~s.mask] == 0).all() and (s.tokens[~s.mask] == tok.PAD).all()


def test_mask_covers_up_to_and_including_the_first_eos(model, tok):
    prompts = tok.batch(["1+1="] * 64, eos=False)
    s = sample(model, prompts, max_new_tokens=8, generator=torch.Generator().manual_seed(1), temperature=2.0)
    for tokens, mask in zip(s.tokens.tolist(), s.mask.tolist(), strict=True):
        first = tokens.index(tok.EOS) if tok.EOS in tokens else len(tokens) - 1
        assert mask == [i <= first for i in range(len(tokens))]


def test_pretraining_reduces_the_loss(model, tok):
    g = torch.Generator().manual_seed(0)
    data = tok.batch(Addition(9).demonstrations(256, corruption=0.0, generator=g))
    losses = pretrain(model, data, steps=60, batch_size=32, lr=3e-3, generator=g, progress=False)
    assert sum(losses[-10:]) / 10 < 0.8 * sum(losses[:10]) / 10


def test_bad_input(model, tok):
    g = torch.Generator().manual_seed(0)
    prompts = tok.batch(["1+1="], eos=False)
    with pytest.raises(ValueError, match="temperature must be positive"):
        sample(model, prompts, max_new_tokens=2, generator=g, temperature=0.0)
    with pytest.raises(ValueError, match="exceeds max_len"):
        sample(model, prompts, max_new_tokens=20, generator=g)
    with pytest.raises(TypeError, match="tokens must be a long tensor"):
        model(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="divisible"):
        TinyGPT(10, d_model=30, n_heads=4)


# --- KV cache, left padding, truncation, teacher-forced log-probs, the critic ---------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from gaebook.lm.tinygpt import (  # noqa: E402
    Critic,
    KVCache,
    Policy,
    ValueModel,
    frozen_copy,
    response_values,
    sequence_log_probs,
)


@settings(max_examples=10)
@given(seed=st.integers(0, 2**16), temperature=st.sampled_from([0.7, 1.0, 3.0]))
def test_cached_sampling_equals_uncached_sampling(seed, temperature):
    tok = CharTokenizer(Addition.alphabet)
    torch.manual_seed(seed)
    model = TinyGPT(tok.vocab_size, max_len=16, d_model=32, n_layers=2, n_heads=2)
    prompts = tok.batch(["1+1=", "12+34=", "7="], eos=False, pad="left")
    a, b = (
        sample(
            model,
            prompts,
            max_new_tokens=8,
            generator=torch.Generator().manual_seed(seed),
            temperature=temperature,
            use_cache=use_cache,
        )
        for use_cache in (True, False)
    )
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.mask, b.mask)
    torch.testing.assert_close(a.log_probs, b.log_probs, rtol=1e-5, atol=1e-5)


def test_left_padding_is_invisible(model, tok):
    texts = ["1+1=", "12+34=", "7="]
    padded = tok.batch(texts, eos=False, pad="left")
    assert padded[2, :3].tolist() == [tok.PAD] * 3 and (padded[:, -1] == tok.encode("=")[0]).all()
    responses = torch.tensor([[4, 5, tok.EOS], [6, tok.EOS, tok.PAD], [7, 8, 9]])
    logp, entropy = sequence_log_probs(model, padded, responses)
    for i, text in enumerate(texts):
        alone, ent_alone = sequence_log_probs(model, tok.batch([text], eos=False), responses[i : i + 1])
        torch.testing.assert_close(logp[i], alone[0], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(entropy[i], ent_alone[0], rtol=1e-5, atol=1e-5)


def test_sequence_log_probs_match_sampling_with_padding_and_temperature(model, tok):
    prompts = tok.batch(["1+1=", "12+34=", "7=", "40+9="], eos=False, pad="left")
    s = sample(model, prompts, max_new_tokens=6, generator=torch.Generator().manual_seed(3), temperature=1.7)
    logp, entropy = sequence_log_probs(model, prompts, s.tokens, temperature=1.7)
    torch.testing.assert_close(logp[s.mask], s.log_probs[s.mask], rtol=1e-5, atol=1e-5)
    assert (entropy >= 0).all() and (entropy <= torch.log(torch.tensor(tok.vocab_size)) + 1e-5).all()


def test_eos_truncation_and_lengths(model, tok):
    prompts = tok.batch(["1+1="] * 128, eos=False)
    s = sample(model, prompts, max_new_tokens=4, generator=torch.Generator().manual_seed(0), temperature=2.0)
    has_eos = (s.tokens == tok.EOS).any(1)
    assert s.truncated.any() and has_eos.any(), "the test needs both kinds of responses"
    torch.testing.assert_close(s.truncated, ~has_eos)
    assert s.mask[s.truncated].all()  # a truncated response is valid to its last token
    first_eos = (s.tokens == tok.EOS).int().argmax(1)
    torch.testing.assert_close(s.lengths[has_eos], first_eos[has_eos] + 1)
    assert (s.tokens[~s.mask] == tok.PAD).all()


def test_sampling_stops_when_every_row_has_ended(model, tok):
    with torch.no_grad():  # every hidden state becomes the ones vector, and only EOS has a logit
        model.ln.weight.zero_()
        model.ln.bias.fill_(1.0)
        model.head.weight.zero_()
        model.head.weight[tok.EOS] = 1.0
    s = sample(model, tok.batch(["1+1="] * 3, eos=False), max_new_tokens=6, generator=torch.Generator().manual_seed(0))
    assert s.tokens.shape == (3, 6) and s.tokens[:, 0].tolist() == [tok.EOS] * 3
    assert s.lengths.tolist() == [1, 1, 1] and not s.truncated.any()


def test_greedy_sampling_takes_the_argmax(model, tok):
    prompt = tok.batch(["12+3="], eos=False)
    s = sample(model, prompt, max_new_tokens=6, generator=torch.Generator().manual_seed(0), greedy=True)
    seq = prompt
    for _ in range(6):
        seq = torch.cat([seq, model(seq)[:, -1].argmax(-1, keepdim=True)], dim=1)
    expected = seq[0, prompt.shape[1] :]
    n = int(s.lengths[0])
    assert s.tokens[0, :n].tolist() == expected[:n].tolist()


def test_cache_reads_in_pieces_like_one_pass(model, tok):
    x = tok.batch(["12+34=56"])
    cache = KVCache(model, 1, x.shape[1])
    pieces = [model(x[:, :5], cache=cache)] + [model(x[:, i : i + 1], cache=cache) for i in range(5, x.shape[1])]
    torch.testing.assert_close(torch.cat(pieces, 1), model(x), rtol=1e-5, atol=1e-5)


def test_value_model_starts_at_zero_and_copies_the_trunk(model, tok):
    critic = ValueModel.from_policy(model)
    prompts = tok.batch(["1+1=", "3="], eos=False, pad="left")
    responses = torch.tensor([[4, tok.EOS], [5, 6]])
    values = response_values(critic, prompts, responses)
    assert values.shape == (2, 2) and (values == 0).all()
    torch.testing.assert_close(critic.trunk.hidden(prompts), model.hidden(prompts))
    assert not hasattr(critic.trunk, "head")
    with torch.no_grad():
        critic.value_head.bias.fill_(1.0)
    assert (response_values(critic, prompts, responses) == 1).all()
    # the value at column t reads the state before token t: changing token t leaves it alone
    changed = responses.clone()
    changed[:, 1] = 7
    torch.testing.assert_close(response_values(critic, prompts, changed), response_values(critic, prompts, responses))


def test_frozen_copy(model):
    ref = frozen_copy(model)
    assert not any(p.requires_grad for p in ref.parameters()) and not ref.training
    assert all(p.requires_grad for p in model.parameters())
    with torch.no_grad():
        model.head.weight.add_(1.0)
    assert not torch.equal(ref.head.weight, model.head.weight)
    with pytest.raises(TypeError, match="model must be an nn"):
        frozen_copy([1.0])


def test_tinygpt_is_a_policy_and_its_critic_a_critic(model, tok):
    """What sample, sequence_log_probs and finetune ask of a policy and a critic (the Policy and Critic protocols)."""
    assert isinstance(model, Policy)
    critic = model.new_critic()
    assert isinstance(critic, ValueModel) and isinstance(critic, Critic)
    expected = ValueModel.from_policy(model).parameters()
    assert all(torch.equal(p, q) for p, q in zip(critic.parameters(), expected, strict=True))
    cache = model.new_cache(2, 9)
    assert isinstance(cache, KVCache) and cache.capacity == 9 and cache.keys.shape[1] == 2
    assert not isinstance(torch.nn.Linear(2, 2), Policy)


def test_bad_input_for_the_new_arguments(model, tok):
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="pad must be"):
        tok.batch(["1"], pad="middle")
    with pytest.raises(TypeError, match="attention_mask"):
        model(tok.batch(["1+1="]), attention_mask=torch.ones(1, 6))
    with pytest.raises(TypeError, match="prompts must be a long tensor"):
        sample(model, torch.zeros(1, 3), max_new_tokens=2, generator=g)
    with pytest.raises(ValueError, match="max_new_tokens"):
        sample(model, tok.batch(["1"], eos=False), max_new_tokens=0, generator=g)
    with pytest.raises(ValueError, match="differ"):
        sequence_log_probs(model, tok.batch(["1"], eos=False), torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="exceeds max_len"):
        model(torch.zeros(1, 17, dtype=torch.long))


# --- host synchronisation ------------------------------------------------------------------------


def test_sampling_draws_what_multinomial_draws(model, tok):
    """The Gumbel-max draw in sample picks the tokens torch.multinomial picks from the same generator."""
    prompts = tok.batch(["1+1=", "12+34=", "7="] * 8, eos=False, pad="left")
    s = sample(model, prompts, max_new_tokens=6, generator=torch.Generator().manual_seed(4), temperature=1.5)
    g = torch.Generator().manual_seed(4)
    seq = prompts
    for _ in range(6):
        responses_so_far = torch.ones_like(seq[:, prompts.shape[1] :], dtype=torch.bool)
        logits = model(seq, attention_mask=torch.cat([prompts != tok.PAD, responses_so_far], dim=1))
        probs = torch.log_softmax(logits[:, -1] / 1.5, dim=-1).exp()
        seq = torch.cat([seq, torch.multinomial(probs, 1, generator=g)], dim=1)
    drawn = seq[:, prompts.shape[1] :]
    assert torch.equal(s.tokens[s.mask], drawn[s.mask])


@pytest.mark.parametrize("greedy", [False, True])
def test_sampling_reads_one_bool_per_token_only_when_it_stops_at_eos(model, tok, greedy):
    prompts = tok.batch(["1+1=", "12+34=", "7="] * 8, eos=False, pad="left")

    def run(stop_at_eos: bool):
        g = torch.Generator().manual_seed(5)
        return sample(
            model, prompts, max_new_tokens=6, generator=g, temperature=2.0, greedy=greedy, stop_at_eos=stop_at_eos
        )

    stopping, running = run(True), run(False)
    for field in ("tokens", "log_probs", "mask"):
        assert torch.equal(getattr(stopping, field), getattr(running, field))
    assert host_traffic(lambda: run(False)) == Counter()
    steps = int(stopping.lengths.max())  # the loop ends after the column of the last EOS
    assert host_traffic(lambda: run(True)) == Counter(reads=min(steps, 6 - 1))


def test_stopping_at_eos_takes_fewer_draws(model, tok):
    """Once every row has ended, stop_at_eos=False still runs to the budget: it draws more."""
    with torch.no_grad():  # only EOS has a logit: every row ends at its first token
        model.head.weight.zero_()
        model.head.weight[tok.EOS] = 1.0
        model.ln.weight.zero_()
        model.ln.bias.fill_(1.0)
    prompts = tok.batch(["1+1="] * 2, eos=False)
    draws = []
    for stop_at_eos in (True, False):
        g = torch.Generator().manual_seed(0)
        s = sample(model, prompts, max_new_tokens=5, generator=g, stop_at_eos=stop_at_eos)
        assert s.lengths.tolist() == [1, 1]
        draws.append(torch.rand((), generator=g))
    assert draws[0] != draws[1]


@pytest.mark.parametrize("texts", [["1+1=", "12+34=", "7="], ["1+1=", "2+3="]], ids=["padded", "unpadded"])
def test_log_probs_and_values_read_nothing(model, tok, texts):
    prompts = tok.batch(texts, eos=False, pad="left")
    responses = torch.tensor([[4, 5, tok.EOS]] * len(texts))
    critic = ValueModel.from_policy(model)
    assert host_traffic(lambda: sequence_log_probs(model, prompts, responses)) == Counter()
    assert host_traffic(lambda: response_values(critic, prompts, responses)) == Counter()
