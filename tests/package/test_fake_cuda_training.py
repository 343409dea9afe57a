"""Training on CUDA: a PPO iteration on each batched environment, an LM-PPO iteration and LM sampling.

Run on the device under test of :mod:`fake_cuda` (fake ``cuda:0``, or a GPU with
``GAEBOOK_TEST_DEVICE=cuda``). The runs that meet a known defect are marked ``xfail(strict=True)``
with the defect and the error it raises: once it is fixed, the run passes and the marker must go.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from fake_cuda import NO_FAKE_CUDA, Harness

# Everything these tests use of gaebook, in one place.
from gaebook.envs import CartPole, Catch, Pendulum, VectorEnv
from gaebook.lm.ppo import LMHistory, LMPPOConfig
from gaebook.lm.ppo import finetune as lm_ppo_finetune
from gaebook.lm.tasks import Addition
from gaebook.lm.tinygpt import CharTokenizer, Samples, TinyGPT, sample
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
