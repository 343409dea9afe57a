"""The Hugging Face pieces: a local character tokenizer, a tiny Llama from a config, and such models as policies."""

from __future__ import annotations

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedModel, Qwen2Config, Qwen2ForCausalLM

from gaebook.lm import hf_policy
from gaebook.lm.hf import char_tokenizer, tiny_llama
from gaebook.lm.hf_policy import HFCritic, HFPolicy, generate, position_ids
from gaebook.lm.ppo import LMPPOConfig, answer_prompts, finetune
from gaebook.lm.tasks import Addition
from gaebook.lm.tinygpt import (
    CharTokenizer,
    Critic,
    Policy,
    Samples,
    frozen_copy,
    pretrain,
    sample,
    sequence_log_probs,
)

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


# --- a Hugging Face causal LM as gaebook's policy and critic (gaebook.lm.hf_policy) --------------

TASK = Addition(max_operand=9)  # prompts of 4 or 5 characters, answers of 1 or 2 digits
CHARS = CharTokenizer(TASK.alphabet)
# prompts of different lengths: the batch is left-padded by 0, 1 and 2 columns
PROMPTS = CHARS.batch(["12+7=", "3+4=", "9+10=", "1+2"], eos=False, pad="left")


def llama(seed: int = 0) -> PreTrainedModel:
    g = torch.Generator().manual_seed(seed)
    return tiny_llama(char_tokenizer(TASK.alphabet), hidden_size=32, n_layers=2, n_heads=2, max_len=16, generator=g)


def qwen2(seed: int = 0) -> PreTrainedModel:
    config = Qwen2Config(
        vocab_size=CHARS.vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=16,
        pad_token_id=CharTokenizer.PAD,
        bos_token_id=CharTokenizer.BOS,
        eos_token_id=CharTokenizer.EOS,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Qwen2ForCausalLM(config).eval()


def gpt2(seed: int = 0) -> PreTrainedModel:
    """Learned absolute position embeddings: where wrong positions change the logits."""
    config = GPT2Config(
        vocab_size=CHARS.vocab_size,
        n_positions=16,
        n_embd=32,
        n_layer=1,
        n_head=2,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        pad_token_id=CharTokenizer.PAD,
        bos_token_id=CharTokenizer.BOS,
        eos_token_id=CharTokenizer.EOS,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return GPT2LMHeadModel(config).eval()


MODELS = {"llama": llama, "qwen2": qwen2, "gpt2": gpt2}


def params(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def bit_identical(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_hf_models_are_policies_and_their_critics_critics() -> None:
    policy = HFPolicy(llama())
    assert isinstance(policy, Policy) and not isinstance(llama(), Policy)
    assert isinstance(policy.new_critic(), Critic)
    assert policy.max_len == 16 and policy.vocab_size == CHARS.vocab_size


@pytest.mark.parametrize("name", MODELS)
def test_left_padding_gives_the_logits_and_values_of_the_prompt_alone(name: str) -> None:
    policy = HFPolicy(MODELS[name]())
    critic = policy.new_critic()
    torch.nn.init.normal_(critic.value_head.weight, generator=torch.Generator().manual_seed(0))  # values ≠ 0
    mask = PROMPTS != CharTokenizer.PAD
    logits, values = policy(PROMPTS, attention_mask=mask), critic(PROMPTS, attention_mask=mask)
    assert logits.shape == (4, 6, CHARS.vocab_size) and logits.dtype == torch.float32 and values.shape == (4, 6)
    for row in range(len(PROMPTS)):
        alone = PROMPTS[row, mask[row]].unsqueeze(0)  # no padding, no mask: positions 0 … len − 1
        torch.testing.assert_close(logits[row, mask[row]], policy(alone)[0], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(values[row, mask[row]], critic(alone)[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_the_policy_matches_transformers_own_2d_mask(name: str) -> None:
    """HFPolicy builds the 4D mask itself; transformers, given the 2D mask and the positions, agrees."""
    model = MODELS[name]()
    mask = PROMPTS != CharTokenizer.PAD
    own = model(input_ids=PROMPTS, attention_mask=mask.long(), position_ids=position_ids(mask)).logits
    torch.testing.assert_close(HFPolicy(model)(PROMPTS, attention_mask=mask)[mask], own[mask], rtol=1e-5, atol=1e-5)


def test_position_ids_count_from_the_first_real_token() -> None:
    mask = torch.tensor([[False, False, True, True], [True, True, True, True]])
    assert position_ids(mask).tolist() == [[0, 0, 0, 1], [0, 1, 2, 3]]


@pytest.mark.parametrize("name", ["llama", "gpt2"])
def test_sampling_with_the_kv_cache_matches_rereading_the_prefix(name: str) -> None:
    policy = HFPolicy(MODELS[name]())
    cached, reread = (
        sample(policy, PROMPTS, max_new_tokens=8, generator=torch.Generator().manual_seed(1), use_cache=c)
        for c in (True, False)
    )
    assert torch.equal(cached.tokens, reread.tokens) and torch.equal(cached.mask, reread.mask)
    torch.testing.assert_close(cached.log_probs, reread.log_probs, rtol=1e-5, atol=1e-5)
    forced, _ = sequence_log_probs(policy, PROMPTS, cached.tokens)
    torch.testing.assert_close(forced.detach()[cached.mask], cached.log_probs[cached.mask], rtol=1e-5, atol=1e-5)


def generated(name: str, temperature: float = 0.7) -> tuple[HFPolicy, Samples]:
    policy = HFPolicy(MODELS[name]())
    s = generate(policy, PROMPTS, max_new_tokens=8, generator=torch.Generator().manual_seed(3), temperature=temperature)
    # the batch has what the test is about: a response that ended early, and one that did not
    assert (~s.mask).any() and s.mask.all(1).any(), "choose another seed: every response ended, or none did"
    return policy, s


@pytest.mark.parametrize("name", MODELS)
def test_generate_log_probs_equal_the_training_pass(name: str) -> None:
    policy, s = generated(name)
    forced, _ = sequence_log_probs(policy, PROMPTS, s.tokens, temperature=0.7)
    torch.testing.assert_close(forced.detach()[s.mask], s.log_probs[s.mask], rtol=1e-5, atol=1e-5)


def test_generate_returns_gaebook_samples() -> None:
    _, s = generated("llama")
    assert s.tokens.shape == s.log_probs.shape == s.mask.shape == (4, 8)
    ended = s.tokens == CharTokenizer.EOS
    first_eos = torch.where(ended.any(1), ended.long().argmax(1), 8)
    expected_mask = torch.arange(8) <= first_eos.unsqueeze(1)
    assert torch.equal(s.mask, expected_mask)  # True through the first EOS
    assert (s.tokens[~s.mask] == CharTokenizer.PAD).all() and (s.log_probs[~s.mask] == 0).all()
    assert (s.log_probs[s.mask] < 0).all()


def test_naive_positions_break_the_match_with_absolute_but_not_rotary_embeddings(monkeypatch) -> None:
    """The classic bug: positions 0 … L − 1 under left padding. The comparison above catches it on GPT-2;
    on Llama a padded row's positions are all shifted by its padding, which rotary embeddings ignore."""
    runs = {name: generated(name) for name in ("gpt2", "llama")}
    monkeypatch.setattr(hf_policy, "position_ids", lambda mask: torch.arange(mask.shape[1]).expand(mask.shape))
    padded = (PROMPTS == CharTokenizer.PAD).any(1, keepdim=True)
    for name, (policy, s) in runs.items():
        forced, _ = sequence_log_probs(policy, PROMPTS, s.tokens, temperature=0.7)
        gap = (forced.detach() - s.log_probs).abs()
        assert gap[s.mask & ~padded].max() < 1e-5  # the unpadded row does not see the bug
        if name == "gpt2":
            assert gap[s.mask & padded].max() > 1e-2
        else:
            assert gap[s.mask & padded].max() < 1e-5


def test_generate_is_seeded_by_its_generator_and_leaves_the_global_one_alone() -> None:
    policy = HFPolicy(llama())
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    a, b, c = (
        generate(policy, PROMPTS, max_new_tokens=8, generator=torch.Generator().manual_seed(seed)).tokens
        for seed in (0, 0, 1)
    )
    assert torch.equal(torch.rand(3), expected)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_the_critic_starts_at_zero_from_a_copy_of_the_backbone() -> None:
    policy = HFPolicy(llama())
    critic = HFCritic.from_policy(policy)
    backbone = policy.model.base_model
    assert bit_identical(params(critic.backbone), params(backbone))
    assert not any(p.data_ptr() == q.data_ptr() for p in critic.parameters() for q in policy.parameters())
    values = critic(PROMPTS, attention_mask=PROMPTS != CharTokenizer.PAD)
    assert values.shape == PROMPTS.shape and (values == 0).all()
    hidden = backbone(input_ids=PROMPTS).last_hidden_state
    assert (hidden[PROMPTS != CharTokenizer.PAD].abs().sum(-1) > 0).all()  # zero because of the head alone


@pytest.mark.parametrize(("advantage", "group_size"), [("gae", 1), ("grpo", 2)])
def test_finetune_trains_an_hf_policy(advantage: str, group_size: int) -> None:
    policy = HFPolicy(llama())
    reference = HFPolicy(llama())  # trainable: only finetune's own care keeps it from changing
    start, reference_start = params(policy), params(reference)
    critic = policy.new_critic() if advantage == "gae" else None
    config = LMPPOConfig(iterations=2, n_prompts=8, group_size=group_size, advantage=advantage, lr=1e-3)
    history = finetune(
        policy,
        TASK,
        CHARS,
        config,
        generator=torch.Generator().manual_seed(0),
        critic=critic,
        reference=reference,
        progress=False,
    )
    assert history.reward.shape == (2,) and torch.isfinite(history.policy_loss).all()
    assert not bit_identical(params(policy), start)
    assert bit_identical(params(reference), reference_start)
    if critic is not None:
        assert torch.isfinite(history.value_loss).all()
        assert not (critic.value_head.weight == 0).all()  # the critic learned


def test_finetune_freezes_a_copy_of_an_hf_policy_as_its_reference() -> None:
    policy = HFPolicy(llama())
    frozen = frozen_copy(policy)
    assert isinstance(frozen, HFPolicy) and not frozen.training
    assert not any(p.requires_grad for p in frozen.parameters())
    assert bit_identical(params(frozen), params(policy))


def test_answer_prompts_takes_an_hf_policy() -> None:
    rewards, responses = answer_prompts(
        HFPolicy(llama()), TASK, CHARS, ["1+2=", "13+4="], generator=torch.Generator().manual_seed(0), greedy=True
    )
    assert rewards.shape == (2,) and len(responses) == 2


def test_pretrain_gives_an_hf_policy_transformers_own_loss_and_trains_it() -> None:
    """pretrain reads right-padded data without a mask: its loss is the one transformers computes with
    the attention mask and the PAD labels ignored."""
    data = CHARS.batch(["12+7=19", "3+4=7", "9+10=19", "1+2=3"])  # right-padded with PAD
    model = llama()
    batch = data[torch.randint(len(data), (4,), generator=torch.Generator().manual_seed(0))]  # pretrain's draw
    with torch.no_grad():
        expected = model(
            input_ids=batch,
            attention_mask=(batch != CharTokenizer.PAD).long(),
            labels=batch.masked_fill(batch == 0, -100),
        ).loss
    policy = HFPolicy(model)
    losses = pretrain(
        policy, data, steps=40, batch_size=4, lr=1e-2, generator=torch.Generator().manual_seed(0), progress=False
    )
    assert losses[0] == pytest.approx(expected.item(), rel=1e-5)
    assert sum(losses[-5:]) / 5 < 0.5 * losses[0]
    assert not policy.model.training, "pretraining leaves the model in eval mode (no dropout)"


def test_pretrain_refuses_a_bare_hf_model() -> None:
    with pytest.raises(TypeError, match="model must be a Policy"):
        pretrain(llama(), CHARS.batch(["1+2=3"]), steps=1, generator=torch.Generator(), progress=False)


def test_hf_policy_refuses_a_model_without_a_causal_lm_head() -> None:
    with pytest.raises(TypeError, match="model must be a causal LM"):
        HFPolicy(llama().base_model)
    with pytest.raises(TypeError, match="model must be a transformers PreTrainedModel"):
        HFPolicy(torch.nn.Linear(2, 2))  # type: ignore[arg-type]


def test_hf_policy_refuses_an_attention_that_ignores_its_mask() -> None:
    model = llama()
    model.config._attn_implementation = "flex_attention"
    with pytest.raises(ValueError, match="model's attention must be"):
        HFPolicy(model)
    model = qwen2()
    model.config.layer_types = ["sliding_attention"]
    with pytest.raises(ValueError, match="model's attention has a sliding window"):
        HFPolicy(model)


def test_finetune_refuses_a_bare_hf_model_and_a_tokenizer_of_another_vocabulary() -> None:
    config = LMPPOConfig(iterations=1, n_prompts=2)
    with pytest.raises(TypeError, match="policy must be a Policy"):
        finetune(llama(), TASK, CHARS, config, generator=torch.Generator())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tok has 6 token ids"):
        finetune(HFPolicy(llama()), TASK, CharTokenizer("()|"), config, generator=torch.Generator())


def test_bad_input_to_the_hf_policy_and_generate() -> None:
    policy = HFPolicy(llama())
    with pytest.raises(TypeError, match="attention_mask"):
        policy(PROMPTS, attention_mask=(PROMPTS != 0).long())
    with pytest.raises(TypeError, match="tokens"):
        policy(PROMPTS.float())
    g = torch.Generator()
    with pytest.raises(TypeError, match="policy must be an HFPolicy"):
        generate(llama(), PROMPTS, max_new_tokens=2, generator=g)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="temperature"):
        generate(policy, PROMPTS, max_new_tokens=2, generator=g, temperature=0.0)
    with pytest.raises(ValueError, match="max_len"):
        generate(policy, PROMPTS, max_new_tokens=11, generator=g)
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(policy, PROMPTS, max_new_tokens=0, generator=g)
    with pytest.raises(TypeError, match="policy must be an HFPolicy"):
        HFCritic.from_policy(llama())  # type: ignore[arg-type]


def test_the_wrappers_and_the_models_inside_are_in_eval_mode() -> None:
    """A model handed over in training mode is switched off: PPO's first ratio must be exactly 1."""
    model = gpt2().train()
    policy = HFPolicy(model)
    critic = HFCritic(gpt2().train().base_model)
    for module in (policy, critic):
        assert not any(m.training for m in module.modules()), type(module).__name__
