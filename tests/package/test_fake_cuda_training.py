"""Training on CUDA: a PPO iteration on each batched environment, an LM-PPO iteration and LM sampling,
with TinyGPT and with a Hugging Face Llama (:class:`gaebook.lm.hf_policy.HFPolicy`).

Run on the device under test of :mod:`fake_cuda` (fake ``cuda:0``, or a GPU with
``GAEBOOK_TEST_DEVICE=cuda``). The runs that meet a known defect are marked ``xfail(strict=True)``
with the defect and the error it raises: once it is fixed, the run passes and the marker must go.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from fake_cuda import ALLOWED, NO_FAKE_CUDA, Harness, HostSync

# Everything these tests use of gaebook, in one place.
from gaebook.envs import CartPole, Catch, Pendulum, VectorEnv
from gaebook.lm.hf import char_tokenizer, tiny_llama
from gaebook.lm.hf_policy import HFPolicy
from gaebook.lm.ppo import LMHistory, LMPPOConfig
from gaebook.lm.ppo import finetune as lm_ppo_finetune
from gaebook.lm.tasks import Addition
from gaebook.lm.tinygpt import CharTokenizer, Samples, TinyGPT, response_values, sample, sequence_log_probs
from gaebook.networks import ActorCritic
from gaebook.ppo import History, PPOConfig, train

N_AGENTS, N_ENVS = 2, 4
ENVIRONMENTS: dict[str, tuple[Callable[[torch.Generator], VectorEnv], int, dict[str, Any]]] = {
    # name: (make the environment from its generator, observation size, the policy's action space)
    "cartpole": (lambda g: CartPole((N_AGENTS, N_ENVS), generator=g), 4, {"n_actions": 2}),
    "pendulum": (lambda g: Pendulum((N_AGENTS, N_ENVS), generator=g), 3, {"action_size": 1}),
    "catch": (lambda g: Catch((N_AGENTS, N_ENVS), generator=g), 50, {"n_actions": 3}),
}

pytestmark = NO_FAKE_CUDA


@pytest.mark.parametrize("name", list(ENVIRONMENTS))
def test_one_ppo_iteration(name: str):
    make_env, observation_size, actions = ENVIRONMENTS[name]
    harness = Harness.from_environment()
    config = PPOConfig(n_envs=N_ENVS, n_steps=8, total_steps=N_ENVS * 8, n_epochs=1, n_minibatches=2)

    def run() -> tuple[ActorCritic, History]:
        env = make_env(harness.generator())
        agent = ActorCritic(observation_size, n_agents=N_AGENTS, hidden=8, generator=harness.generator(), **actions)
        return agent, train(env, agent, config, generator=harness.generator(), progress=False)

    agent, history = harness.run(run)
    harness.assert_on_device(list(agent.parameters()))
    assert all(p.grad is not None for p in agent.parameters())  # the update reached every parameter
    assert history.policy_loss.shape == (N_AGENTS, 1) and history.policy_loss.device.type == "cpu"


TASK = Addition(max_operand=9)  # prompts such as "9+9=" (5 tokens with BOS), answers of 1 or 2 digits
TOKENIZER = CharTokenizer(TASK.alphabet)


def tiny_gpt(harness: Harness) -> TinyGPT:
    torch.manual_seed(0)
    model = TinyGPT(TOKENIZER.vocab_size, max_len=12, d_model=16, n_layers=1, n_heads=2)
    return harness.module(model)


def test_lm_sample():
    harness = Harness.from_environment()
    model = tiny_gpt(harness)
    prompts = harness.tensor(TOKENIZER.batch(["1+2=", "13+4="], eos=False, pad="left"))
    out: Samples = harness.run(sample, model, prompts, max_new_tokens=5, generator=harness.generator())
    harness.assert_on_device(out)
    assert out.tokens.shape == (2, 5)


def test_one_lm_ppo_iteration():
    harness = Harness.from_environment()
    policy = tiny_gpt(harness)
    config = LMPPOConfig(iterations=1, n_prompts=4, n_epochs=1, n_minibatches=2)
    history: LMHistory = harness.run(
        lm_ppo_finetune, policy, TASK, TOKENIZER, config, generator=harness.generator(), progress=False
    )
    harness.assert_on_device(list(policy.parameters()))
    assert history.reward.shape == (1,) and history.reward.device.type == "cpu"


# A Hugging Face Llama runs under fake CUDA as it is (transformers' Llama, DynamicCache and SDPA
# need no CUDA device guard). Two things the harness does not see there: transformers treats fake
# tensors as tracing (transformers.utils.import_utils.is_tracing) and skips what it skips under
# torch.compile, such as the host read of a 2D mask's .all() in masking_utils._ignore_causal_mask_sdpa,
# which HFPolicy avoids by passing a 4D mask; and gaebook.lm.hf_policy.generate (transformers' model.generate)
# is not run here: it reads on the host by design (its stopping criteria, once per token).


def tiny_hf_policy(harness: Harness) -> HFPolicy:
    model = tiny_llama(
        char_tokenizer(TASK.alphabet),
        hidden_size=16,
        n_layers=1,
        n_heads=2,
        max_len=12,
        generator=torch.Generator().manual_seed(0),
    )
    return harness.module(HFPolicy(model))


@pytest.mark.parametrize("use_cache", [True, False])
def test_hf_policy_sample(use_cache: bool):
    harness = Harness.from_environment()
    policy = tiny_hf_policy(harness)
    prompts = harness.tensor(TOKENIZER.batch(["1+2=", "13+4="], eos=False, pad="left"))
    out: Samples = harness.run(
        sample, policy, prompts, max_new_tokens=5, generator=harness.generator(), use_cache=use_cache
    )
    harness.assert_on_device(out)
    assert out.tokens.shape == (2, 5)


def test_hf_policy_log_probs_and_critic_values_copy_nothing():
    """Without a cache, the forward passes make no transfer at all: not even the one the allow-list grants
    the first pass into transformers' DynamicCache."""
    harness = Harness.from_environment(allowed=tuple(a for a in ALLOWED if a.module != "gaebook.lm.hf_policy"))
    policy = tiny_hf_policy(harness)
    prompts = harness.tensor(TOKENIZER.batch(["1+2=", "13+4="], eos=False, pad="left"))
    responses = harness.tensor(TOKENIZER.batch(["3", "17"], eos=True, pad="right")[:, 1:])
    log_probs, entropy = harness.run(sequence_log_probs, policy, prompts, responses)
    values = harness.run(lambda: response_values(policy.new_critic(), prompts, responses))
    harness.assert_on_device((log_probs, entropy, values))
    assert log_probs.shape == entropy.shape == values.shape == responses.shape
    if harness.fake:  # the entry is needed: the first pass into a new DynamicCache uploads an empty tensor
        with pytest.raises(HostSync, match="copy of host data"):
            harness.run(sample, policy, prompts, max_new_tokens=2, generator=harness.generator())


@pytest.mark.parametrize(("advantage", "group_size"), [("gae", 1), ("grpo", 2)])
def test_one_lm_ppo_iteration_with_an_hf_policy(advantage: str, group_size: int):
    harness = Harness.from_environment()
    policy = tiny_hf_policy(harness)
    config = LMPPOConfig(
        iterations=1, n_prompts=4, group_size=group_size, advantage=advantage, n_epochs=1, n_minibatches=2
    )
    history: LMHistory = harness.run(
        lm_ppo_finetune, policy, TASK, TOKENIZER, config, generator=harness.generator(), progress=False
    )
    harness.assert_on_device(list(policy.parameters()))
    assert all(p.grad is not None for p in policy.parameters())  # the update reached every parameter
    assert history.reward.shape == (1,) and history.reward.device.type == "cpu"
