"""Hugging Face ``transformers`` models for the book's tasks, built on the machine: nothing is downloaded.

* :func:`char_tokenizer`: a character-level :class:`~transformers.PreTrainedTokenizerFast` trained
  locally from the task's alphabet, with the ids of :class:`gaebook.lm.tinygpt.CharTokenizer`
  (``<pad>`` 0, ``<bos>`` 1, ``<eos>`` 2, then the alphabet), so ``pad != eos``;
* :func:`tiny_llama`: a Llama-architecture causal LM from a small config, randomly initialised, sized
  for a CPU, with dropout off.

To train such a model with :func:`gaebook.lm.ppo.finetune`, wrap it in
:class:`gaebook.lm.hf_policy.HFPolicy`.

They need the ``llm`` extra (``pip install "gaebook[llm]"``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from gaebook.lm.tinygpt import CharTokenizer
from gaebook.training import check_positive_int

if TYPE_CHECKING:
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

__all__ = ["char_tokenizer", "tiny_llama"]


def char_tokenizer(alphabet: str) -> PreTrainedTokenizerFast:
    """A fast tokenizer with one token per character of ``alphabet`` and three special tokens.

    Encoding adds ``<bos>`` in front (as :meth:`CharTokenizer.batch` does); ``<eos>`` is the end of
    a response, ``<pad>`` a different id, and ``padding_side`` is ``"left"`` (prompts for
    generation). Decoding joins the characters without spaces (a ``Fuse`` decoder: the default
    would put a space between tokens).
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    chars = CharTokenizer(alphabet)  # checks the alphabet, and is the source of the ids
    specials = [chars.token_name(i) for i in (CharTokenizer.PAD, CharTokenizer.BOS, CharTokenizer.EOS)]
    vocab = {chars.token_name(i): i for i in range(chars.vocab_size)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token=None))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    backend.decoder = decoders.Fuse()
    backend.post_processor = processors.TemplateProcessing(
        single=f"{specials[1]} $A", special_tokens=[(specials[1], CharTokenizer.BOS)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=specials[0],
        bos_token=specials[1],
        eos_token=specials[2],
        padding_side="left",
    )


def tiny_llama(
    tokenizer: PreTrainedTokenizerFast,
    *,
    hidden_size: int = 64,
    n_layers: int = 2,
    n_heads: int = 4,
    max_len: int = 64,
    generator: torch.Generator | None = None,
) -> LlamaForCausalLM:
    """A randomly initialised Llama causal LM for ``tokenizer``'s vocabulary, in eval mode.

    The config's special-token ids are the tokenizer's, the intermediate size is ``4 ×
    hidden_size``, the attention and hidden dropouts are 0, and the input and output embeddings
    are not tied. ``generator`` seeds the initial weights (a CPU generator; the model is built on
    the CPU: move it with ``.to(device)``); ``None`` uses torch's global generator.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    for name, value in (("hidden_size", hidden_size), ("n_layers", n_layers), ("n_heads", n_heads)):
        check_positive_int(name, value)
    check_positive_int("max_len", max_len)
    if hidden_size % n_heads:
        raise ValueError(f"hidden_size ({hidden_size}) must be divisible by n_heads ({n_heads})")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=4 * hidden_size,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        num_key_value_heads=n_heads,
        max_position_embeddings=max_len,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        attention_dropout=0.0,
        tie_word_embeddings=False,
    )
    seed = None if generator is None else int(torch.randint(2**62, (), generator=generator))
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model.eval()
