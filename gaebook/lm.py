"""A tiny character-level decoder-only transformer: small enough to pretrain on a CPU in seconds.

The book uses it to make the language-model-as-policy picture concrete: the state is the
prefix, the action is the next token, and the policy is the model's softmax. Sampling returns
each chosen token's log-probability (what a policy gradient needs) and a response mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

__all__ = ["CharTokenizer", "Samples", "TinyGPT", "pretrain", "sample"]


class CharTokenizer:
    """Maps characters to ids; id 0 is padding, 1 is beginning-of-sequence, 2 end-of-sequence."""

    PAD, BOS, EOS = 0, 1, 2
    _specials = ("<pad>", "<bos>", "<eos>")

    def __init__(self, alphabet: str) -> None:
        if len(set(alphabet)) != len(alphabet) or not alphabet:
            raise ValueError("alphabet must be a non-empty string of distinct characters")
        self.alphabet = alphabet
        self._ids = {c: i + len(self._specials) for i, c in enumerate(alphabet)}

    @property
    def vocab_size(self) -> int:
        return len(self._specials) + len(self.alphabet)

    def encode(self, text: str, *, bos: bool = False, eos: bool = False) -> list[int]:
        unknown = sorted(set(text) - set(self._ids))
        if unknown:
            raise ValueError(f"text has characters outside the alphabet: {unknown}")
        return [self.BOS] * bos + [self._ids[c] for c in text] + [self.EOS] * eos

    def decode(self, ids: Sequence[int] | Tensor, *, stop_at_eos: bool = True) -> str:
        """The text of ``ids``, up to the first EOS; other special tokens are written by name.

        A response such as ``1 <pad> 9`` decodes to ``"1<pad>9"``, never to ``"19"``: silently
        dropping stray special tokens would let a policy earn an exact-match reward with a token
        sequence that is not the answer.
        """
        out = []
        for i in ids.tolist() if isinstance(ids, Tensor) else ids:
            if i == self.EOS and stop_at_eos:
                break
            out.append(self.token_name(i))
        return "".join(out)

    def token_name(self, i: int) -> str:
        """A printable name for one id (``<eos>`` for the specials)."""
        return self._specials[i] if i < len(self._specials) else self.alphabet[i - len(self._specials)]

    def batch(self, texts: Sequence[str], *, eos: bool = True) -> Tensor:
        """Encode ``texts`` with BOS (and EOS), right-padded with PAD: long ``(B, max_len)``."""
        rows = [self.encode(t, bos=True, eos=eos) for t in texts]
        width = max(len(r) for r in rows)
        return torch.tensor([r + [self.PAD] * (width - len(r)) for r in rows], dtype=torch.long)


class _Block(nn.Module):
    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))

    def forward(self, x: Tensor) -> Tensor:
        b, length, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, length, 3, self.n_heads, d // self.n_heads).unbind(2)
        att = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
        x = x + self.proj(att.transpose(1, 2).reshape(b, length, d))
        return x + self.mlp(self.ln2(x))


class TinyGPT(nn.Module):
    """A pre-norm causal transformer with learned positions.

    Args:
        vocab_size: number of token ids.
        max_len: longest sequence (prompt and response) it can read.
        d_model, n_layers, n_heads: width, depth and attention heads (``d_model % n_heads == 0``).
    """

    def __init__(self, vocab_size: int, max_len: int = 32, d_model: int = 64, n_layers: int = 2, n_heads: int = 4) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.max_len = max_len
        self.tok = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(max_len, d_model)
        self.blocks = nn.ModuleList(_Block(d_model, n_heads) for _ in range(n_layers))
        self.ln = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)

    def forward(self, tokens: Tensor) -> Tensor:
        """Next-token logits: long ``(B, L)`` in, float ``(B, L, vocab_size)`` out."""
        if tokens.ndim != 2 or tokens.dtype != torch.long:
            raise TypeError(f"tokens must be a long tensor of shape (B, L); got {tokens.dtype} {tuple(tokens.shape)}")
        if tokens.shape[1] > self.max_len:
            raise ValueError(f"sequence length {tokens.shape[1]} exceeds max_len={self.max_len}")
        x = self.tok(tokens) + self.pos(torch.arange(tokens.shape[1], device=tokens.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x))


def pretrain(
    model: TinyGPT,
    data: Tensor,
    *,
    steps: int,
    batch_size: int = 64,
    lr: float = 3e-3,
    generator: torch.Generator,
    progress: bool = True,
) -> list[float]:
    """Maximum-likelihood training on ``data`` (long ``(N, L)``, BOS-first, PAD-padded).

    Returns the per-step cross-entropy (nats per token), PAD positions excluded.
    """
    if data.ndim != 2 or data.dtype != torch.long:
        raise TypeError(f"data must be a long tensor of shape (N, L); got {data.dtype} {tuple(data.shape)}")
    device = next(model.parameters()).device
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    losses = []
    for _ in tqdm(range(steps), desc="pretraining", disable=not progress):
        idx = torch.randint(len(data), (batch_size,), generator=generator)
        batch = data[idx].to(device)
        logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten(), ignore_index=CharTokenizer.PAD)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.detach())
    return torch.stack(losses).tolist()


@dataclass(frozen=True)
class Samples:
    """Sampled continuations, each field ``(B, max_new_tokens)``.

    ``tokens`` are the sampled ids; ``log_probs`` are ``log π(token | prefix)`` under the
    sampling distribution; ``mask`` is ``True`` up to and including the first EOS (the
    policy's actions) and ``False`` after it (padding that must not be trained on).
    """

    tokens: Tensor
    log_probs: Tensor
    mask: Tensor


@torch.no_grad()
def sample(
    model: TinyGPT,
    prompts: Tensor,
    *,
    max_new_tokens: int,
    generator: torch.Generator,
    temperature: float = 1.0,
) -> Samples:
    """Sample continuations of ``prompts`` (long ``(B, P)``, all of one length) token by token.

    Args:
        model: the policy.
        prompts: long ``(B, P)`` on the model's device.
        max_new_tokens: continuation length; ``P + max_new_tokens`` must fit ``model.max_len``.
        generator: the randomness (on the model's device).
        temperature: softmax temperature (> 0); the log-probs are those of the tempered policy.

    Returns:
        :class:`Samples`.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive; got {temperature}")
    if prompts.shape[1] + max_new_tokens > model.max_len:
        raise ValueError(
            f"prompt length {prompts.shape[1]} + max_new_tokens {max_new_tokens} exceeds max_len={model.max_len}"
        )
    seq = prompts
    tokens, log_probs = [], []
    for _ in range(max_new_tokens):
        logp = torch.log_softmax(model(seq)[:, -1] / temperature, dim=-1)
        tok = torch.multinomial(logp.exp(), 1, generator=generator)
        tokens.append(tok.squeeze(-1))
        log_probs.append(logp.gather(-1, tok).squeeze(-1))
        seq = torch.cat([seq, tok], dim=1)
    tokens_t = torch.stack(tokens, dim=1)
    is_eos = tokens_t == CharTokenizer.EOS
    # valid up to and including the first EOS: no EOS strictly before this position
    eos_before = torch.cumsum(is_eos, dim=1) - is_eos.long()
    return Samples(tokens_t, torch.stack(log_probs, dim=1), eos_before == 0)
