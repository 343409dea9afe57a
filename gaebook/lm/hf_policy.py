"""A Hugging Face causal LM as the policy and the critic of :func:`gaebook.lm.ppo.finetune`.

* :class:`HFPolicy`: any ``transformers`` causal LM (``LlamaForCausalLM``, ``Qwen2ForCausalLM``, …)
  as a :class:`gaebook.lm.tinygpt.Policy`, so that :func:`~gaebook.lm.tinygpt.sample`,
  :func:`~gaebook.lm.tinygpt.sequence_log_probs` and :func:`~gaebook.lm.ppo.finetune` take it as
  they take a :class:`~gaebook.lm.tinygpt.TinyGPT`;
* :class:`HFCritic`: a copy of the policy's backbone (the model without its LM head) and a value
  head initialised to zero, as :class:`~gaebook.lm.tinygpt.ValueModel`;
* :func:`generate`: responses sampled by ``transformers``' own ``model.generate``, as
  :class:`~gaebook.lm.tinygpt.Samples`;
* :func:`position_ids`: each token's position counted from its row's first real token.

**Left padding and positions.** Prompts are left-padded (every response starts in the same
column), so a row's first real token sits at column ``P − len``, not 0. The model must see it at
position 0, as it would without padding: ``position_ids = cumsum(attention_mask) − 1`` (0 on the
padding), what ``generate`` computes and what TRL, verl and OpenRLHF pass to the training forward
pass. Counting ``0 … L − 1`` instead (the classic bug) shifts all the positions of a padded row
by its padding. With absolute position embeddings (GPT-2, OPT) the training pass then gives other
log-probs than sampling did, and PPO's first ratio is not 1. Rotary embeddings (Llama, Qwen2)
hide the bug: attention sees only differences of positions, which a shift of the whole row keeps,
so the log-probs agree up to rounding. The tests show both.

The ids are :class:`~gaebook.lm.tinygpt.CharTokenizer`'s (``<pad>`` 0, ``<eos>`` 2): build the model
with :func:`gaebook.lm.hf.tiny_llama` from :func:`gaebook.lm.hf.char_tokenizer` of the task's alphabet.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gaebook.lm.tinygpt import CharTokenizer, Samples
from gaebook.training import check_positive_int

if TYPE_CHECKING:
    from transformers import DynamicCache, PreTrainedModel
    from transformers.generation.utils import GenerateDecoderOnlyOutput

__all__ = ["HFCache", "HFCritic", "HFPolicy", "generate", "position_ids"]


def position_ids(attention_mask: Tensor) -> Tensor:
    """Positions counted from each row's first real token: bool ``(B, L)`` in, long ``(B, L)`` out.

    ``cumsum(attention_mask) − 1``, clamped to 0 on the left padding (whose outputs are never read).
    """
    return (attention_mask.long().cumsum(1) - 1).clamp_min(0)


def _attention_bias(attended: Tensor, start: int, dtype: torch.dtype) -> Tensor:
    """The additive attention mask of the queries in slots ``start … K − 1``: float ``(B, 1, K − start, K)``.

    ``attended`` is bool ``(B, K)``, which key slots hold real tokens. A query reads the real keys
    at or before its own slot, and always itself (so that no row is empty); the bias is 0 there
    and the dtype's minimum elsewhere.

    Why not give ``transformers`` the bool ``(B, K)`` mask and let it build this: for SDPA it reads
    ``attention_mask.all()`` on the host at every forward pass (to drop the mask when nothing is
    padded), a synchronisation per generated token on a GPU. A 4D mask is used as it is.
    """
    keys = attended.shape[1]
    slot_q = torch.arange(start, keys, device=attended.device).unsqueeze(1)
    slot_k = torch.arange(keys, device=attended.device)
    allowed = ((slot_k <= slot_q) & attended.unsqueeze(1)) | (slot_k == slot_q)
    bias = torch.zeros(allowed.shape, dtype=dtype, device=attended.device)
    return bias.masked_fill(allowed.logical_not(), torch.finfo(dtype).min).unsqueeze(1)


def _check_tokens(tokens: Tensor, attention_mask: Tensor | None) -> None:
    if not isinstance(tokens, Tensor) or tokens.ndim != 2 or tokens.dtype != torch.long:
        raise TypeError("tokens must be a long tensor of shape (B, L)")
    if attention_mask is not None and (attention_mask.dtype != torch.bool or attention_mask.shape != tokens.shape):
        raise TypeError(
            f"attention_mask must be a bool tensor of shape {tuple(tokens.shape)}; "
            f"got {attention_mask.dtype} {tuple(attention_mask.shape)}"
        )


def _padding_inputs(attention_mask: Tensor | None, dtype: torch.dtype) -> tuple[Tensor | None, Tensor | None]:
    """``(4D attention bias, position_ids)`` for a whole sequence; ``(None, None)`` without padding."""
    if attention_mask is None:
        return None, None
    return _attention_bias(attention_mask, 0, dtype), position_ids(attention_mask)


class HFCache:
    """What :class:`HFPolicy` keeps between decoding steps, as :class:`~gaebook.lm.tinygpt.KVCache` for TinyGPT.

    ``past`` is ``transformers``' ``DynamicCache`` of keys and values, ``attended`` bool
    ``(B, capacity)`` which slots hold real tokens, ``n_real`` long ``(B,)`` the real tokens read
    per row (the position of the next one), ``length`` the number of slots filled.
    """

    def __init__(self, batch_size: int, capacity: int, device: torch.device) -> None:
        from transformers import DynamicCache

        self.past: DynamicCache = DynamicCache()
        self.attended = torch.zeros(batch_size, capacity, dtype=torch.bool, device=device)
        self.n_real = torch.zeros(batch_size, dtype=torch.long, device=device)
        self.length = 0

    def extend(self, real: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """Record ``L`` new slots, ``real`` bool ``(B, L)``; their ``(attention bias, position_ids)``.

        The bias is float ``(B, 1, L, length + L)``, the positions long ``(B, L)``.
        """
        start, length = self.length, real.shape[1]
        if start + length > self.attended.shape[1]:
            raise ValueError(f"the cache holds {self.attended.shape[1]} slots; got {start + length}")
        positions = (self.n_real.unsqueeze(1) + real.long().cumsum(1) - 1).clamp_min(0)
        self.attended[:, start : start + length] = real
        self.n_real += real.sum(1)
        self.length = start + length
        return _attention_bias(self.attended[:, : self.length], start, dtype), positions


def _check_causal_lm(model: object) -> PreTrainedModel:
    from transformers import GenerationMixin, PreTrainedModel

    if not isinstance(model, PreTrainedModel):
        raise TypeError(f"model must be a transformers PreTrainedModel; got {type(model).__name__}")
    if (
        not isinstance(model, GenerationMixin)
        or model.get_output_embeddings() is None
        or model.config.is_encoder_decoder
    ):
        raise TypeError(
            f"model must be a causal LM with a language-model head (such as LlamaForCausalLM); "
            f"got {type(model).__name__}"
        )
    if model.config._attn_implementation not in ("eager", "sdpa"):
        raise ValueError(
            f"model's attention must be 'eager' or 'sdpa' (they take the 4D mask HFPolicy builds); "
            f"got {model.config._attn_implementation!r}"
        )
    layer_types = getattr(model.config, "layer_types", None)
    if "sliding_attention" in layer_types if layer_types else getattr(model.config, "sliding_window", None):
        raise ValueError("model's attention has a sliding window, which the causal mask HFPolicy builds would ignore")
    if not isinstance(getattr(model.config, "max_position_embeddings", None), int):
        raise ValueError("model.config must give max_position_embeddings (the longest sequence it reads)")
    return model


class HFPolicy(nn.Module):
    """A Hugging Face causal LM as a :class:`gaebook.lm.tinygpt.Policy`.

    ``model`` is put in eval mode (dropout off: PPO's ratio must be 1 before the first update) and
    trained in place. ``max_len`` is ``model.config.max_position_embeddings`` and ``vocab_size``
    ``model.config.vocab_size``.

    Calling it maps long ``tokens`` ``(B, L)``, an optional bool ``attention_mask`` ``(B, L)``
    (``False`` at the left padding) and an optional :class:`HFCache` to float32 next-token logits
    ``(B, L, vocab_size)``; the positions come from the mask (:func:`position_ids`).
    """

    def __init__(self, model: PreTrainedModel) -> None:
        super().__init__()
        self.model: PreTrainedModel = _check_causal_lm(model)
        self.max_len: int = model.config.max_position_embeddings
        self.vocab_size: int = model.config.vocab_size
        self.eval()  # the wrapper and the model inside report the same mode

    def forward(self, tokens: Tensor, *, attention_mask: Tensor | None = None, cache: HFCache | None = None) -> Tensor:
        """Next-token logits, float ``(B, L, vocab_size)``; with ``cache``, ``tokens`` continue what it read."""
        _check_tokens(tokens, attention_mask)
        if cache is None:
            bias, positions = _padding_inputs(attention_mask, self.model.dtype)
            past = None
        else:
            real = torch.ones_like(tokens, dtype=torch.bool) if attention_mask is None else attention_mask
            bias, positions = cache.extend(real, self.model.dtype)
            past = cache.past
        out = self.model(
            input_ids=tokens,
            attention_mask=bias,
            position_ids=positions,
            past_key_values=past,
            use_cache=past is not None,
        )
        return out.logits.float()

    def new_cache(self, batch_size: int, capacity: int) -> HFCache:
        """An empty :class:`HFCache` for ``batch_size`` rows of up to ``capacity`` tokens, on the model's device."""
        return HFCache(batch_size, capacity, self.model.device)

    def new_critic(self) -> HFCritic:
        """:meth:`HFCritic.from_policy` of this policy."""
        return HFCritic.from_policy(self)


class HFCritic(nn.Module):
    """A critic: a Hugging Face backbone and a scalar value head on its last hidden states, initialised to zero.

    As :class:`~gaebook.lm.tinygpt.ValueModel`: every initial value is 0, and :meth:`from_policy`
    starts the backbone from a copy of the policy's. It is put in eval mode (dropout off). The head
    is float32 whatever the backbone's dtype. Calling it maps long ``tokens`` ``(B, L)`` and an
    optional bool ``attention_mask`` ``(B, L)`` to float32 values ``(B, L)`` (position ``i`` sees
    tokens ``≤ i``).
    """

    def __init__(self, backbone: PreTrainedModel) -> None:
        super().__init__()
        from transformers import PreTrainedModel

        if not isinstance(backbone, PreTrainedModel):
            raise TypeError(f"backbone must be a transformers PreTrainedModel; got {type(backbone).__name__}")
        self.backbone = backbone
        # zeros made on the backbone's device: no copy, and no draw from torch's global generator
        self.value_head = nn.Linear(backbone.config.hidden_size, 1, device="meta")
        self.value_head.weight = nn.Parameter(torch.zeros(1, backbone.config.hidden_size, device=backbone.device))
        self.value_head.bias = nn.Parameter(torch.zeros(1, device=backbone.device))
        self.eval()  # dropout off, as for the policy

    @classmethod
    def from_policy(cls, policy: HFPolicy) -> HFCritic:
        """A critic whose backbone is a copy of ``policy``'s model without its LM head (``model.base_model``)."""
        if not isinstance(policy, HFPolicy):
            raise TypeError(f"policy must be an HFPolicy; got {type(policy).__name__}")
        return cls(cast("PreTrainedModel", copy.deepcopy(policy.model.base_model)))  # HFCritic checks it

    def forward(self, tokens: Tensor, *, attention_mask: Tensor | None = None) -> Tensor:
        """``V`` of every prefix: long ``(B, L)`` in, float ``(B, L)`` out."""
        _check_tokens(tokens, attention_mask)
        bias, positions = _padding_inputs(attention_mask, self.backbone.dtype)
        hidden = self.backbone(input_ids=tokens, attention_mask=bias, position_ids=positions, use_cache=False)
        return self.value_head(hidden.last_hidden_state.float()).squeeze(-1)


@torch.no_grad()
def generate(
    policy: HFPolicy, prompts: Tensor, *, max_new_tokens: int, generator: torch.Generator, temperature: float = 1.0
) -> Samples:
    """Sample responses with ``transformers``' ``model.generate``, as :func:`~gaebook.lm.tinygpt.sample` does.

    ``generate`` reads the left-padded ``prompts`` with their attention mask (and computes the
    positions from it), samples from the whole tempered softmax (``top_k=0``, ``top_p=1``) and
    pads finished rows with ``<pad>``, which differs from ``<eos>``. The log-probs are those of
    the sampled tokens under the tempered policy, from the raw logits it returns
    (``output_logits=True``). The seed of ``generate`` is drawn from ``generator`` (one host read)
    and used inside :func:`torch.random.fork_rng`, so torch's global generators are left as they were.
    Like :func:`~gaebook.lm.tinygpt.sample` with ``stop_at_eos``, ``generate`` reads one bool per
    token on the host (have all rows stopped?).

    Args:
        policy: the :class:`HFPolicy`.
        prompts: long ``(B, P)`` on the model's device, BOS-first, left-padded with PAD.
        max_new_tokens: response budget; ``P + max_new_tokens`` must fit ``policy.max_len``.
        generator: the randomness.
        temperature: softmax temperature (> 0).

    Returns:
        :class:`~gaebook.lm.tinygpt.Samples`, each field ``(B, max_new_tokens)``.
    """
    if not isinstance(policy, HFPolicy):
        raise TypeError(f"policy must be an HFPolicy; got {type(policy).__name__}")
    if not isinstance(prompts, Tensor) or prompts.ndim != 2 or prompts.dtype != torch.long:
        raise TypeError("prompts must be a long tensor of shape (B, P)")
    check_positive_int("max_new_tokens", max_new_tokens)
    if not temperature > 0:
        raise ValueError(f"temperature must be positive; got {temperature}")
    if prompts.shape[1] + max_new_tokens > policy.max_len:
        raise ValueError(
            f"prompt length {prompts.shape[1]} + max_new_tokens {max_new_tokens} exceeds max_len={policy.max_len}"
        )
    seed = int(torch.randint(2**62, (), generator=generator, device=generator.device))
    device = prompts.device
    with torch.random.fork_rng(devices=[device] if device.type != "cpu" else [], device_type=device.type):
        torch.manual_seed(seed)
        # HFPolicy checked that the model generates; transformers types generate's output as a union
        model: Any = policy.model
        out: GenerateDecoderOnlyOutput = model.generate(
            input_ids=prompts,
            attention_mask=(prompts != CharTokenizer.PAD).long(),
            do_sample=True,
            temperature=temperature,
            top_k=0,
            top_p=1.0,
            max_new_tokens=max_new_tokens,
            pad_token_id=CharTokenizer.PAD,
            eos_token_id=CharTokenizer.EOS,
            output_logits=True,
            return_dict_in_generate=True,
        )
    if out.logits is None:
        raise RuntimeError("transformers' generate returned no logits although output_logits=True asked for them")
    tokens = out.sequences[:, prompts.shape[1] :]  # (B, T'), T' ≤ max_new_tokens if every row stopped early
    logp = torch.log_softmax(torch.stack(out.logits, dim=1).float() / temperature, dim=-1)
    log_probs = logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    is_eos = tokens == CharTokenizer.EOS
    mask = (is_eos.long().cumsum(1) - is_eos.long()) == 0  # up to and including the first EOS
    width = max_new_tokens - tokens.shape[1]
    return Samples(
        F.pad(tokens.masked_fill(~mask, CharTokenizer.PAD), (0, width), value=CharTokenizer.PAD),
        F.pad(log_probs.masked_fill(~mask, 0.0), (0, width)),
        F.pad(mask, (0, width), value=False),
    )
