"""A tiny character-level decoder-only transformer: small enough to pretrain on a CPU in seconds.

The book uses it to make the language-model-as-policy picture concrete: the state is the
prefix, the action is the next token, and the policy is the model's softmax. Sampling returns
each chosen token's log-probability (what a policy gradient needs) and a response mask.

Prompts of different lengths are **left-padded** with ``PAD`` (:meth:`CharTokenizer.batch` with
``pad="left"``), so every response starts in the same column. The padding is invisible to the
model: padded positions are never attended to, and positions are counted from the first real
token, so a left-padded prompt gives exactly the logits of the same prompt alone.

Layout: a batch of prompts is long ``(B, P)``, its responses long ``(B, T)``; per-token
quantities of the responses (log-probs, values, masks) are ``(B, T)``, with column ``t`` about
response token ``t``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

__all__ = [
    "CharTokenizer",
    "Critic",
    "KVCache",
    "Policy",
    "Samples",
    "TinyGPT",
    "ValueModel",
    "frozen_copy",
    "pretrain",
    "response_values",
    "sample",
    "sequence_log_probs",
]


@runtime_checkable
class Critic(Protocol):
    """What :func:`response_values` and :func:`gaebook.lm.ppo.finetune` need of a critic.

    Calling it maps long tokens ``(B, L)`` and an optional bool ``attention_mask`` ``(B, L)``
    (``False`` at padding) to float values ``(B, L)``, position ``i`` seeing tokens ``≤ i``.
    :class:`ValueModel` is one; :class:`gaebook.lm.hf_policy.HFCritic` another.
    """

    def __call__(self, tokens: Tensor, *, attention_mask: Tensor | None = None) -> Tensor: ...

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...


@runtime_checkable
class Policy(Protocol):
    """What :func:`sample`, :func:`sequence_log_probs` and :func:`gaebook.lm.ppo.finetune` need of a policy.

    * calling it maps long tokens ``(B, L)``, an optional bool ``attention_mask`` ``(B, L)``
      (``False`` at padding: never attended to, and not counted in the positions of later
      tokens) and an optional ``cache`` from :meth:`new_cache` to float logits ``(B, L, vocab_size)``;
      with a cache, ``tokens`` continue the sequences read so far, and after the first call
      they come one at a time without a mask;
    * ``max_len``: the longest sequence it reads; ``vocab_size``: the number of token ids;
    * :meth:`new_cache`: an empty decoding cache for ``batch_size`` rows of up to ``capacity`` tokens;
    * :meth:`new_critic`: a :class:`Critic` that starts from this policy (a copy of its trunk and a
      value head that outputs 0), for :func:`~gaebook.lm.ppo.finetune` to train.

    :class:`TinyGPT` is one; :class:`gaebook.lm.hf_policy.HFPolicy` (any Hugging Face causal LM) another.
    """

    max_len: int
    vocab_size: int

    def __call__(self, tokens: Tensor, *, attention_mask: Tensor | None = None, cache: Any = None) -> Tensor: ...

    def new_cache(self, batch_size: int, capacity: int) -> Any: ...

    def new_critic(self) -> Critic: ...

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...


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

    def batch(self, texts: Sequence[str], *, eos: bool = True, pad: Literal["right", "left"] = "right") -> Tensor:
        """Encode ``texts`` with BOS (and EOS), padded with PAD to one width: long ``(B, max_len)``.

        ``pad="right"`` suits training data; ``pad="left"`` suits prompts, so that every
        response starts in the same column (see the module docstring).
        """
        if pad not in ("right", "left"):
            raise ValueError(f"pad must be 'right' or 'left'; got {pad!r}")
        if not texts:
            raise ValueError("texts must not be empty")
        rows = [self.encode(t, bos=True, eos=eos) for t in texts]
        width = max(len(r) for r in rows)
        if pad == "left":
            return torch.tensor([[self.PAD] * (width - len(r)) + r for r in rows], dtype=torch.long)
        return torch.tensor([r + [self.PAD] * (width - len(r)) for r in rows], dtype=torch.long)


class KVCache:
    """Keys and values of every layer for the positions read so far, for incremental decoding.

    Storage is allocated once for ``capacity`` positions: keys and values are
    ``(n_layers, B, n_heads, capacity, head_dim)``, ``attended`` is bool ``(B, capacity)`` (which
    slots hold real tokens) and ``n_real`` is long ``(B,)`` (real tokens read per row, the
    position of the next one). ``length`` is the number of slots filled.
    """

    def __init__(self, model: TinyGPT, batch_size: int, capacity: int) -> None:
        param = model.token_embedding.weight
        shape = (model.n_layers, batch_size, model.n_heads, capacity, model.d_model // model.n_heads)
        self.keys = torch.empty(shape, dtype=param.dtype, device=param.device)
        self.values = torch.empty_like(self.keys)
        self.attended = torch.zeros(batch_size, capacity, dtype=torch.bool, device=param.device)
        self.n_real = torch.zeros(batch_size, dtype=torch.long, device=param.device)
        self.has_padding = False
        self.length = 0

    @property
    def capacity(self) -> int:
        return self.keys.shape[3]


class _Block(nn.Module):
    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))

    def forward(self, x: Tensor, attn_mask: Tensor | None, kv: tuple[Tensor, Tensor] | None, start: int) -> Tensor:
        """``x`` ``(B, L, d)``; ``attn_mask`` bool ``(B, 1, L, start + L)`` or ``None`` for plain causal
        attention; ``kv`` this layer's cache buffers ``(B, H, capacity, head_dim)``, written at
        slots ``start .. start + L − 1``."""
        b, length, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, length, 3, self.n_heads, d // self.n_heads).unbind(2)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if kv is not None:
            kv[0][:, :, start : start + length] = k
            kv[1][:, :, start : start + length] = v
            k, v = kv[0][:, :, : start + length], kv[1][:, :, : start + length]
        # Without a mask: causal when reading a block from slot 0, everything when reading one token.
        causal = attn_mask is None and length > 1
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=causal)
        x = x + self.proj(att.transpose(1, 2).reshape(b, length, d))
        return x + self.mlp(self.ln2(x))


class TinyGPT(nn.Module):
    """A pre-norm causal transformer with learned positions.

    Args:
        vocab_size: number of token ids.
        max_len: longest sequence (prompt and response, padding included) it can read.
        d_model, n_layers, n_heads: width, depth and attention heads (``d_model % n_heads == 0``).
    """

    def __init__(
        self, vocab_size: int, max_len: int = 32, d_model: int = 64, n_layers: int = 2, n_heads: int = 4
    ) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.vocab_size, self.max_len = vocab_size, max_len
        self.d_model, self.n_layers, self.n_heads = d_model, n_layers, n_heads
        self.token_embedding = nn.Embedding(vocab_size, d_model)
        self.position_embedding = nn.Embedding(max_len, d_model)
        self.blocks = nn.ModuleList(_Block(d_model, n_heads) for _ in range(n_layers))
        self.ln = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)

    def hidden(self, tokens: Tensor, *, attention_mask: Tensor | None = None, cache: KVCache | None = None) -> Tensor:
        """The final (layer-normed) hidden states: long ``(B, L)`` in, float ``(B, L, d_model)`` out.

        Args:
            tokens: long ``(B, L)``.
            attention_mask: optional bool ``(B, L)``, ``False`` at padding: those positions are
                never attended to and do not count for the positions of later tokens. ``None``
                means no padding.
            cache: optional :class:`KVCache`; ``tokens`` are then the next ``L`` positions after
                those already in the cache, which is updated in place. A cache that saw padding
                must be fed one token at a time after its first call.
        """
        if tokens.ndim != 2 or tokens.dtype != torch.long:
            raise TypeError(f"tokens must be a long tensor of shape (B, L); got {tokens.dtype} {tuple(tokens.shape)}")
        b, length = tokens.shape
        start = 0 if cache is None else cache.length
        if start + length > self.max_len:
            raise ValueError(f"sequence length {start + length} exceeds max_len={self.max_len}")
        if attention_mask is not None and (attention_mask.dtype != torch.bool or attention_mask.shape != tokens.shape):
            raise TypeError(
                f"attention_mask must be a bool tensor of shape {tuple(tokens.shape)}; "
                f"got {attention_mask.dtype} {tuple(attention_mask.shape)}"
            )
        if cache is not None and (cache.keys.shape[1] != b or start + length > cache.capacity):
            raise ValueError(
                f"cache holds {cache.keys.shape[1]} rows and {cache.capacity} slots; got {b} rows "
                f"needing {start + length} slots"
            )
        real = torch.ones_like(tokens, dtype=torch.bool) if attention_mask is None else attention_mask
        offset = 0 if cache is None else cache.n_real.unsqueeze(1)
        positions = (offset + real.cumsum(1) - 1).clamp_min(0)
        x = self.token_embedding(tokens) + self.position_embedding(positions)

        padded = attention_mask is not None
        if cache is not None:
            cache.attended[:, start : start + length] = real
            cache.n_real += real.sum(1)
            cache.has_padding |= padded
            padded = cache.has_padding
            if padded and start > 0 and length > 1:
                raise ValueError("a cache that saw padding reads one token at a time after its first call")
        attn_mask = None
        if padded:  # query slot i sees key slot j <= i that holds a real token, and always itself
            keys = start + length
            attended = real if cache is None else cache.attended[:, :keys]
            slot_q = torch.arange(start, keys, device=tokens.device).unsqueeze(1)
            slot_k = torch.arange(keys, device=tokens.device)
            attn_mask = ((slot_k <= slot_q) & attended.unsqueeze(1)) | (slot_k == slot_q)
            attn_mask = attn_mask.unsqueeze(1)
        for i, block in enumerate(self.blocks):
            kv = None if cache is None else (cache.keys[i], cache.values[i])
            x = block(x, attn_mask, kv, start)
        if cache is not None:
            cache.length = start + length
        return self.ln(x)

    def forward(self, tokens: Tensor, *, attention_mask: Tensor | None = None, cache: KVCache | None = None) -> Tensor:
        """Next-token logits: long ``(B, L)`` in, float ``(B, L, vocab_size)`` out (arguments as :meth:`hidden`)."""
        return self.head(self.hidden(tokens, attention_mask=attention_mask, cache=cache))

    def new_cache(self, batch_size: int, capacity: int) -> KVCache:
        """An empty :class:`KVCache` for ``batch_size`` rows of up to ``capacity`` tokens."""
        return KVCache(self, batch_size, capacity)

    def new_critic(self) -> ValueModel:
        """:meth:`ValueModel.from_policy` of this model."""
        return ValueModel.from_policy(self)


class ValueModel(nn.Module):
    """A critic: its own transformer trunk and a scalar value head, initialised to zero.

    The zero head makes every initial value 0, so the first advantages are the rewards-to-go
    and no random value function is bootstrapped from. :meth:`from_policy` starts the trunk
    from a pretrained policy's weights (the usual practice: the critic starts from the SFT
    model or the reward model), which it then trains separately.

    Args as :class:`TinyGPT`.
    """

    def __init__(
        self, vocab_size: int, max_len: int = 32, d_model: int = 64, n_layers: int = 2, n_heads: int = 4
    ) -> None:
        super().__init__()
        self.trunk = TinyGPT(vocab_size, max_len, d_model, n_layers, n_heads)
        del self.trunk.head  # the trunk's token head is not used: the critic predicts one number
        self.value_head = nn.Linear(d_model, 1)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)

    @classmethod
    def from_policy(cls, policy: TinyGPT) -> ValueModel:
        """A critic whose trunk is a copy of ``policy``'s (same architecture), with a zero value head."""
        critic = cls(policy.vocab_size, policy.max_len, policy.d_model, policy.n_layers, policy.n_heads)
        critic = critic.to(policy.token_embedding.weight.device)
        state = {k: v for k, v in policy.state_dict().items() if not k.startswith("head.")}
        critic.trunk.load_state_dict(state)
        return critic

    def forward(self, tokens: Tensor, *, attention_mask: Tensor | None = None) -> Tensor:
        """``V`` of every prefix: long ``(B, L)`` in, float ``(B, L)`` out (position ``i`` sees tokens ``≤ i``)."""
        return self.value_head(self.trunk.hidden(tokens, attention_mask=attention_mask)).squeeze(-1)


M = TypeVar("M")


def frozen_copy(model: M) -> M:
    """A deep copy of ``model`` (an ``nn.Module``) with gradients off, in eval mode: the reference policy of RLHF."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module; got {type(model).__name__}")
    frozen = copy.deepcopy(model)
    frozen.requires_grad_(False).eval()
    return frozen


def pretrain(
    model: Policy,
    data: Tensor,
    *,
    steps: int,
    batch_size: int = 64,
    lr: float = 3e-3,
    generator: torch.Generator,
    progress: bool = True,
) -> list[float]:
    """Maximum-likelihood training of ``model`` on ``data`` (long ``(N, L)``, BOS-first, PAD-padded on the right).

    ``model`` is any :class:`Policy`: a :class:`TinyGPT`, or a Hugging Face causal LM in
    :class:`gaebook.lm.hf_policy.HFPolicy`. It reads each batch without an attention mask: the
    padding is on the right, after every real token, so causal attention never lets a real token
    see it and the positions count from the first column; the loss ignores the PAD targets.

    Minibatch indices are drawn with ``generator`` on its device. With ``data`` and ``generator``
    on the model's device no step copies anything between host and device; otherwise every step
    does. The losses are read back once, at the end.

    Returns the per-step cross-entropy (nats per token), PAD positions excluded.
    """
    if not isinstance(model, Policy):
        raise TypeError(
            f"model must be a Policy (a TinyGPT, or a Hugging Face model in gaebook.lm.hf_policy.HFPolicy); "
            f"got {type(model).__name__}"
        )
    if data.ndim != 2 or data.dtype != torch.long:
        raise TypeError(f"data must be a long tensor of shape (N, L); got {data.dtype} {tuple(data.shape)}")
    device = next(model.parameters()).device
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    losses = []
    for _ in tqdm(range(steps), desc="pretraining", disable=not progress):
        idx = torch.randint(len(data), (batch_size,), generator=generator, device=generator.device)
        batch = data[idx.to(data.device)].to(device)
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

    ``tokens`` are the sampled ids, PAD after the first EOS; ``log_probs`` are
    ``log π(token | prefix)`` under the sampling distribution (0 after the first EOS); ``mask``
    is ``True`` up to and including the first EOS (the policy's actions) and ``False`` after it
    (padding that must not be trained on).
    """

    tokens: Tensor
    log_probs: Tensor
    mask: Tensor

    @property
    def truncated(self) -> Tensor:
        """Bool ``(B,)``: the response never emitted EOS and was cut at ``max_new_tokens``."""
        return ~(self.tokens == CharTokenizer.EOS).any(dim=1)

    @property
    def lengths(self) -> Tensor:
        """Long ``(B,)``: the number of valid tokens (the EOS included)."""
        return self.mask.sum(dim=1)


@torch.no_grad()
def sample(
    model: Policy,
    prompts: Tensor,
    *,
    max_new_tokens: int,
    generator: torch.Generator,
    temperature: float = 1.0,
    greedy: bool = False,
    use_cache: bool = True,
    stop_at_eos: bool = True,
) -> Samples:
    """Sample continuations of ``prompts`` token by token.

    The result is ``max_new_tokens`` wide whenever sampling stops (PAD, log-prob 0 and mask
    ``False`` after each row's EOS). Each token is drawn by the Gumbel-max trick on the device,
    with the same draws as ``torch.multinomial`` but without its two checks of the
    probabilities, which read from the device. The one host synchronisation left is the early
    stop: with ``stop_at_eos`` every generated token but the last reads one bool from the device
    (have all rows emitted EOS?); ``stop_at_eos=False`` always runs ``max_new_tokens`` steps and
    never synchronises, for hot loops on a GPU. Both give the same :class:`Samples`; only the
    number of draws taken from ``generator`` differs.

    Args:
        model: the policy (a :class:`Policy`: :class:`TinyGPT` or :class:`gaebook.lm.hf_policy.HFPolicy`).
        prompts: long ``(B, P)`` on the model's device, BOS-first and left-padded with PAD
            (:meth:`CharTokenizer.batch` with ``pad="left"``).
        max_new_tokens: response budget; ``P + max_new_tokens`` must fit ``model.max_len``.
        generator: the randomness (on the model's device).
        temperature: softmax temperature (> 0); the log-probs are those of the tempered policy.
        greedy: take the most likely token instead of sampling (log-probs as above).
        use_cache: reuse keys and values (the model's :meth:`Policy.new_cache`); ``False`` re-reads the whole prefix
            at every step, which gives the same samples, only slower.
        stop_at_eos: stop once every row has emitted EOS (one host read per token, see above).

    Returns:
        :class:`Samples`.
    """
    if not isinstance(prompts, Tensor) or prompts.ndim != 2 or prompts.dtype != torch.long:
        raise TypeError("prompts must be a long tensor of shape (B, P)")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive; got {temperature}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1; got {max_new_tokens}")
    if prompts.shape[1] + max_new_tokens > model.max_len:
        raise ValueError(
            f"prompt length {prompts.shape[1]} + max_new_tokens {max_new_tokens} exceeds max_len={model.max_len}"
        )
    b = prompts.shape[0]
    prompt_mask = prompts != CharTokenizer.PAD
    tokens = torch.full((b, max_new_tokens), CharTokenizer.PAD, dtype=torch.long, device=prompts.device)
    log_probs = torch.zeros(b, max_new_tokens, device=prompts.device)
    mask = torch.zeros(b, max_new_tokens, dtype=torch.bool, device=prompts.device)
    running = torch.ones(b, dtype=torch.bool, device=prompts.device)
    if use_cache:
        cache = model.new_cache(b, prompts.shape[1] + max_new_tokens)
        logits = model(prompts, attention_mask=prompt_mask, cache=cache)[:, -1]
    else:
        seq, seq_mask = prompts, prompt_mask
        logits = model(seq, attention_mask=seq_mask)[:, -1]
    for t in range(max_new_tokens):
        logp = torch.log_softmax(logits / temperature, dim=-1)
        if greedy:
            next_token = logp.argmax(-1)
        else:  # Gumbel-max: argmax of p / q with q ~ Exp(1), what torch.multinomial draws for one sample
            probs = logp.exp()
            next_token = (probs / torch.empty_like(probs).exponential_(1.0, generator=generator)).argmax(-1)
        tokens[:, t] = next_token.masked_fill(~running, CharTokenizer.PAD)
        log_probs[:, t] = logp.gather(-1, next_token.unsqueeze(-1)).squeeze(-1).masked_fill(~running, 0.0)
        mask[:, t] = running
        running = running & (next_token != CharTokenizer.EOS)
        if t == max_new_tokens - 1 or (stop_at_eos and not bool(running.any())):
            break
        if use_cache:
            logits = model(next_token.unsqueeze(1), cache=cache)[:, -1]
        else:
            seq = torch.cat([seq, next_token.unsqueeze(1)], dim=1)
            seq_mask = torch.cat([seq_mask, seq_mask.new_ones(b, 1)], dim=1)
            logits = model(seq, attention_mask=seq_mask)[:, -1]
    return Samples(tokens, log_probs, mask)


def _join(prompts: Tensor, responses: Tensor) -> tuple[Tensor, Tensor, int]:
    """Prompt and response as one sequence with its attention mask; the first response column."""
    if prompts.ndim != 2 or responses.ndim != 2 or prompts.dtype != torch.long or responses.dtype != torch.long:
        raise TypeError("prompts and responses must be long tensors of shape (B, P) and (B, T)")
    if prompts.shape[0] != responses.shape[0]:
        raise ValueError(f"prompts ({prompts.shape[0]} rows) and responses ({responses.shape[0]} rows) differ")
    seq = torch.cat([prompts, responses], dim=1)[:, :-1]  # the last token is never read
    prompt_mask = prompts != CharTokenizer.PAD  # always a mask: checking for padding would read from the device
    attention_mask = torch.cat([prompt_mask, torch.ones_like(responses[:, :-1], dtype=torch.bool)], dim=1)
    return seq, attention_mask, prompts.shape[1]


def sequence_log_probs(
    model: Policy, prompts: Tensor, responses: Tensor, *, temperature: float = 1.0
) -> tuple[Tensor, Tensor]:
    """Per-token log-probabilities and entropies of ``responses`` given ``prompts``, in one teacher-forced pass.

    Args:
        model: the policy (a :class:`Policy`).
        prompts: long ``(B, P)``, left-padded as for :func:`sample`.
        responses: long ``(B, T)``, e.g. :attr:`Samples.tokens`.
        temperature: as in :func:`sample`, so that the result matches its ``log_probs``.

    Returns:
        ``(log_probs, entropy)``, each float ``(B, T)``: ``log π(a_t | x, a_<t)`` and the entropy of
        ``π(· | x, a_<t)``. Differentiable; positions after EOS hold numbers to be masked out.
    """
    seq, attention_mask, first = _join(prompts, responses)
    logits = model(seq, attention_mask=attention_mask)[:, first - 1 :] / temperature
    logp = torch.log_softmax(logits, dim=-1)
    entropy = -(logp.exp() * logp).sum(-1)
    return logp.gather(-1, responses.unsqueeze(-1)).squeeze(-1), entropy


def response_values(critic: Critic, prompts: Tensor, responses: Tensor) -> Tensor:
    """The critic's ``V(s_t)`` for every response token: float ``(B, T)``.

    ``s_t`` is the prompt and the first ``t`` response tokens, the state in which token ``t`` is
    chosen, so column ``t`` is read at the position just before token ``t``.
    """
    seq, attention_mask, first = _join(prompts, responses)
    return critic(seq, attention_mask=attention_mask)[:, first - 1 :]
