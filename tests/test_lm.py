"""Tests of gaebook.lm and gaebook.tasks."""

from __future__ import annotations

import pytest
import torch

from gaebook.lm import CharTokenizer, TinyGPT, pretrain, sample
from gaebook.tasks import ADDITION_ALPHABET, addition_problems, exact_match_reward


@pytest.fixture
def tok() -> CharTokenizer:
    return CharTokenizer(ADDITION_ALPHABET)


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
    torch.testing.assert_close(s.log_probs, forced.detach(), rtol=1e-5, atol=1e-5)


def test_mask_covers_up_to_and_including_the_first_eos(model, tok):
    prompts = tok.batch(["1+1="] * 64, eos=False)
    s = sample(model, prompts, max_new_tokens=8, generator=torch.Generator().manual_seed(1), temperature=2.0)
    for tokens, mask in zip(s.tokens.tolist(), s.mask.tolist()):
        first = tokens.index(tok.EOS) if tok.EOS in tokens else len(tokens) - 1
        assert mask == [i <= first for i in range(len(tokens))]


def test_pretraining_reduces_the_loss(model, tok):
    g = torch.Generator().manual_seed(0)
    prompts, answers = addition_problems(256, max_operand=9, generator=g)
    data = tok.batch([p + a for p, a in zip(prompts, answers)])
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


def test_addition_problems_and_reward():
    prompts, answers = addition_problems(50, generator=torch.Generator().manual_seed(0))
    for p, a in zip(prompts, answers):
        x, y = p.rstrip("=").split("+")
        assert int(x) + int(y) == int(a)
    reward = exact_match_reward(["12", "3"], ["12", "4"])
    torch.testing.assert_close(reward, torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="differ in length"):
        exact_match_reward(["1"], [])
