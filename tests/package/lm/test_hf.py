"""The Hugging Face builders: a locally trained character tokenizer and a tiny Llama from a config."""

from __future__ import annotations

import pytest
import torch

from gaebook.lm.hf import char_tokenizer, tiny_llama
from gaebook.lm.tinygpt import CharTokenizer

ALPHABET = "0123456789+="


def test_the_tokenizer_gives_the_ids_of_char_tokenizer_left_padded() -> None:
    texts = ["12+7=", "3+4=", "40+40="]
    enc = char_tokenizer(ALPHABET)(texts, padding=True, return_tensors="pt")
    expected = CharTokenizer(ALPHABET).batch(texts, eos=False, pad="left")
    assert torch.equal(enc["input_ids"], expected)
    assert torch.equal(enc["attention_mask"].bool(), expected != CharTokenizer.PAD)


def test_the_tokenizer_decodes_without_spaces_and_keeps_pad_apart_from_eos() -> None:
    tok = char_tokenizer(ALPHABET)
    ids = CharTokenizer(ALPHABET).encode("12+7=19", bos=True, eos=True)
    assert tok.decode(ids, skip_special_tokens=True) == "12+7=19"
    assert tok.pad_token_id != tok.eos_token_id
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (
        CharTokenizer.PAD,
        CharTokenizer.BOS,
        CharTokenizer.EOS,
    )


def test_the_tokenizer_refuses_a_bad_alphabet() -> None:
    with pytest.raises(ValueError, match="alphabet"):
        char_tokenizer("aa")


def test_tiny_llama_is_seeded_by_its_generator_and_has_no_dropout() -> None:
    tok = char_tokenizer(ALPHABET)
    a, b, c = (tiny_llama(tok, generator=torch.Generator().manual_seed(s)) for s in (0, 0, 1))
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a.parameters(), c.parameters(), strict=True))
    assert not a.training and a.config.attention_dropout == 0.0
    assert a.config.vocab_size == len(tok) and a.config.pad_token_id == tok.pad_token_id


def test_tiny_llama_leaves_the_global_generator_alone() -> None:
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    tiny_llama(char_tokenizer(ALPHABET), generator=torch.Generator().manual_seed(0))
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize(
    ("kwargs", "name"), [({"hidden_size": 30, "n_heads": 4}, "hidden_size"), ({"n_layers": 0}, "n_layers")]
)
def test_tiny_llama_refuses_bad_sizes(kwargs: dict[str, int], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        tiny_llama(char_tokenizer(ALPHABET), **kwargs)
