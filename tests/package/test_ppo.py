"""Tests of gaebook.networks and gaebook.ppo, and of PPO on gaebook.envs.GymnasiumVectorEnv."""

from __future__ import annotations

import math

import pytest
import torch
from host_traffic import host_traffic

from gaebook.envs import CartPole, GymnasiumVectorEnv
from gaebook.networks import ActorCritic, BatchedLinear
from gaebook.ppo import PPOConfig, _clip_grad_norm_per_agent, clipped_surrogate, evaluate, ppo_loss, train


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_batched_linear_is_independent_linear_layers_with_orthogonal_init():
    layer = BatchedLinear(3, 5, 5, gain=2.0, generator=gen())
    x = torch.randn(3, 7, 5, generator=gen(1))
    y = layer(x)
    for g in range(3):
        torch.testing.assert_close(y[g], x[g] @ layer.weight[g] + layer.bias[g])
        torch.testing.assert_close(layer.weight[g].T @ layer.weight[g], 4.0 * torch.eye(5), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(layer.weight[0], layer.weight[1])  # each agent draws its own weights


@pytest.mark.parametrize("shared", [False, True])
def test_discrete_actor_critic_log_probs_match_torch_distributions(shared):
    agent = ActorCritic(4, n_actions=3, n_agents=2, shared=shared, generator=gen())
    obs = torch.randn(2, 6, 4, generator=gen(1))
    actions, logp, value = agent.act(obs, generator=gen(2))
    assert actions.shape == logp.shape == value.shape == (2, 6)
    dist = torch.distributions.Categorical(logits=agent.policy(obs))
    logp2, entropy, value2 = agent.log_prob_entropy(obs, actions)
    torch.testing.assert_close(logp, dist.log_prob(actions))
    torch.testing.assert_close(logp2, dist.log_prob(actions))
    torch.testing.assert_close(entropy, dist.entropy())
    torch.testing.assert_close(value2, value)
    greedy, _, _ = agent.act(obs, generator=gen(2), greedy=True)
    torch.testing.assert_close(greedy, agent.policy(obs).argmax(-1))


def test_discrete_sampling_follows_the_policy():
    agent = ActorCritic(2, n_actions=3, generator=gen())
    obs = torch.zeros(1, 20_000, 2)
    actions, _, _ = agent.act(obs, generator=gen(5))
    probs = agent.policy(obs[:, :1]).softmax(-1).flatten().detach()
    freq = torch.bincount(actions.flatten(), minlength=3) / 20_000
    assert (freq - probs).abs().max() < 4 * math.sqrt(0.25 / 20_000)


def test_continuous_actor_critic():
    agent = ActorCritic(3, action_size=2, n_agents=2, generator=gen())
    obs = torch.randn(2, 5, 3, generator=gen(1))
    actions, logp, _ = agent.act(obs, generator=gen(2))
    assert actions.shape == (2, 5, 2)
    dist = torch.distributions.Normal(agent.policy(obs), agent.log_std.exp())
    torch.testing.assert_close(logp, dist.log_prob(actions).sum(-1))
    logp2, entropy, _ = agent.log_prob_entropy(obs, actions)
    torch.testing.assert_close(logp2, logp)
    torch.testing.assert_close(entropy, dist.entropy().sum(-1))


def test_actor_critic_bad_input():
    with pytest.raises(ValueError, match="exactly one of n_actions"):
        ActorCritic(4, generator=gen())
    agent = ActorCritic(4, n_actions=2, n_agents=2, generator=gen())
    with pytest.raises(ValueError, match=r"obs must have shape \(2, ..., 4\)"):
        agent.value(torch.zeros(3, 4))


def test_ppo_loss_by_hand():
    adv = torch.tensor([[1.0, -1.0, 2.0]])
    old = torch.zeros(1, 3)
    new = torch.log(torch.tensor([[1.5, 1.5, 0.9]]))  # ratios 1.5, 1.5, 0.9
    values, old_values, returns = torch.tensor([[1.0, 0.0, 0.5]]), torch.zeros(1, 3), torch.ones(1, 3)
    loss, stats = ppo_loss(
        new,
        old,
        adv,
        values,
        old_values,
        returns,
        torch.ones(1, 3),
        clip_coef=0.2,
        clip_vloss=False,
        vf_coef=0.5,
        ent_coef=0.01,
    )
    # surrogate per step: max(-A r, -A clip(r)): -1.2, 1.5, -1.8
    assert stats["policy_loss"].item() == pytest.approx((-1.2 + 1.5 - 1.8) / 3)
    assert stats["value_loss"].item() == pytest.approx(0.5 * (0 + 1 + 0.25) / 3)
    assert stats["clip_fraction"].item() == pytest.approx(2 / 3)
    assert loss.item() == pytest.approx(stats["policy_loss"].item() + 0.5 * stats["value_loss"].item() - 0.01)
    # value clipping: values 1.0 and 0.5 moved more than 0.2 from 0, so they count as 0.2
    _, clipped = ppo_loss(
        new,
        old,
        adv,
        values,
        old_values,
        returns,
        torch.ones(1, 3),
        clip_coef=0.2,
        clip_vloss=True,
        vf_coef=0.5,
        ent_coef=0.0,
    )
    assert clipped["value_loss"].item() == pytest.approx(0.5 * (0.64 + 1 + 0.64) / 3)
    # a mask excludes positions from every mean
    _, masked = ppo_loss(
        new,
        old,
        adv,
        values,
        old_values,
        returns,
        torch.ones(1, 3),
        clip_coef=0.2,
        clip_vloss=False,
        vf_coef=0.5,
        ent_coef=0.0,
        mask=torch.tensor([[True, True, False]]),
    )
    assert masked["policy_loss"].item() == pytest.approx((-1.2 + 1.5) / 2)


def test_clipped_surrogate_by_hand_and_its_gradient():
    # the five cases of chapter 5's table: clipped, moved the wrong way (twice), inside the range
    ratio = torch.tensor([1.5, 0.5, 0.5, 1.5, 1.1], dtype=torch.float64)
    adv = torch.tensor([1.0, 1.0, -1.0, -1.0, 2.0], dtype=torch.float64)
    log_probs = ratio.log().requires_grad_()
    loss = clipped_surrogate(log_probs, torch.zeros_like(ratio), adv, clip_coef=0.2)
    torch.testing.assert_close(loss, -torch.tensor([1.2, 0.5, -0.8, -1.5, 2.2], dtype=torch.float64))
    loss.sum().backward()
    # d/d log π of −ρA is −ρA where the clip is inactive, 0 where it is active
    torch.testing.assert_close(log_probs.grad, torch.tensor([0.0, -0.5, 0.0, 1.5, -2.2], dtype=torch.float64))
    # any shape: a batch of responses of tokens
    shape = (2, 3, 4)
    lp, old, a = (torch.randn(shape, generator=gen(i)) for i in range(3))
    assert clipped_surrogate(lp, old, a, clip_coef=0.1).shape == shape


def test_clipped_surrogate_bad_input():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="advantages must have the shape of log_probs"):
        clipped_surrogate(x, x, torch.zeros(3), clip_coef=0.2)  # would broadcast
    with pytest.raises(TypeError, match="old_log_probs must be a tensor"):
        clipped_surrogate(x, 0.0, x, clip_coef=0.2)
    with pytest.raises(ValueError, match="clip_coef"):
        clipped_surrogate(x, x, x, clip_coef=-0.1)


def test_gradient_clipping_is_per_agent():
    agent = ActorCritic(4, n_actions=2, n_agents=2, generator=gen())
    obs = torch.randn(2, 8, 4, generator=gen(1))
    scale = torch.tensor([1000.0, 0.001]).view(2, 1)  # agent 0 gets a huge gradient, agent 1 a tiny one
    (agent.value(obs) * scale).sum().backward()
    before = [p.grad[1].clone() for p in agent.parameters() if p.grad is not None]
    _clip_grad_norm_per_agent(list(agent.parameters()), 0.5)
    norm0 = math.sqrt(sum(p.grad[0].pow(2).sum().item() for p in agent.parameters() if p.grad is not None))
    assert norm0 == pytest.approx(0.5, rel=1e-4)
    after = [p.grad[1] for p in agent.parameters() if p.grad is not None]
    for b, a in zip(before, after, strict=True):
        torch.testing.assert_close(a, b)  # agent 1 was under the limit: untouched


def test_config_bad_input():
    with pytest.raises(ValueError, match="n_envs must be a positive int"):
        PPOConfig(n_envs=0)
    with pytest.raises(ValueError, match="n_minibatches must divide"):
        PPOConfig(n_envs=3, n_steps=5, n_minibatches=4)
    with pytest.raises(ValueError, match="critic_target"):
        PPOConfig(critic_target="td")


def test_gymnasium_adapter_returns_the_final_observation():
    env = GymnasiumVectorEnv("CartPole-v1", 3, seed=0, max_episode_steps=5)
    obs = env.reset()
    assert obs.shape == (1, 3, 4)
    for t in range(5):
        next_obs, _rewards, terminated, truncated, final = env.step(torch.zeros(1, 3, dtype=torch.long))
        ended = terminated | truncated
        torch.testing.assert_close(final[~ended], next_obs[~ended])
        if t < 4:
            obs = next_obs
    assert bool(ended.all()), "every copy ends by the time limit of 5 steps"
    assert not torch.allclose(final, next_obs)  # reset states differ from the final ones
    assert bool((next_obs.abs() <= 0.05).all())  # fresh CartPole states
    env.close()


def test_ppo_improves_a_gymnasium_cartpole_policy():
    torch.manual_seed(0)
    env = GymnasiumVectorEnv("CartPole-v1", 4, seed=0)
    agent = ActorCritic(4, n_actions=2, generator=gen())
    config = PPOConfig(n_envs=4, n_steps=64, total_steps=4 * 64 * 12, lr=2.5e-3, n_epochs=4, n_minibatches=2)
    before = evaluate(GymnasiumVectorEnv("CartPole-v1", 16, seed=100), agent, max_steps=500, generator=gen(1)).mean()
    history = train(env, agent, config, generator=gen(2), progress=False)
    after = evaluate(GymnasiumVectorEnv("CartPole-v1", 16, seed=100), agent, max_steps=500, generator=gen(1)).mean()
    assert history.episode_return.shape == (1, config.n_iterations)
    assert history.env_steps[-1].item() == config.total_steps
    assert after > 2 * before, (before, after)


def test_stop_ends_training_early():
    env = GymnasiumVectorEnv("CartPole-v1", 2, seed=0)
    agent = ActorCritic(4, n_actions=2, generator=gen())
    config = PPOConfig(n_envs=2, n_steps=16, total_steps=2 * 16 * 10, n_minibatches=2)
    history = train(env, agent, config, generator=gen(1), progress=False, stop=lambda done: done == 3)
    assert history.episode_return.shape == (1, 3) and history.env_steps.tolist() == [32, 64, 96]


def test_training_does_not_synchronise_at_every_environment_step():
    """The policy's own actions need no value check: a longer rollout adds no host syncs."""

    def syncs(n_steps: int) -> int:
        config = PPOConfig(n_envs=4, n_steps=n_steps, total_steps=4 * n_steps * 2, n_minibatches=2)
        env = CartPole((2, 4), generator=gen(0))
        agent = ActorCritic(4, n_actions=2, n_agents=2, generator=gen(1))
        return host_traffic(lambda: train(env, agent, config, generator=gen(2), progress=False))["reads"]

    assert syncs(64) == syncs(32)  # same iterations and gradient steps, twice the environment steps


def test_vf_coef_scales_the_value_gradient_only():
    g = torch.Generator().manual_seed(3)
    inputs = [torch.randn(2, 6, generator=g) for _ in range(6)]
    grads = {}
    for vf_coef in (0.0, 0.5, 2.0):
        log_probs, values = inputs[0].clone().requires_grad_(), inputs[3].clone().requires_grad_()
        loss, _ = ppo_loss(
            log_probs,
            inputs[1],
            inputs[2],
            values,
            inputs[4],
            inputs[5],
            torch.ones(2, 6),
            clip_coef=0.2,
            clip_vloss=True,
            vf_coef=vf_coef,
            ent_coef=0.0,
        )
        loss.sum().backward()
        grads[vf_coef] = (log_probs.grad, values.grad)
    assert (grads[0.0][1] == 0).all()
    torch.testing.assert_close(grads[2.0][1], 4 * grads[0.5][1])
    assert grads[0.5][1].abs().sum() > 0
    for vf_coef in (0.5, 2.0):
        torch.testing.assert_close(grads[vf_coef][0], grads[0.0][0])  # the policy's gradient does not change


class CountingEnv:
    """An environment that counts its steps."""

    def __init__(self, env) -> None:
        self.env, self.steps = env, 0

    def reset(self):
        return self.env.reset()

    def step(self, actions, *, check_actions=True):
        self.steps += 1
        return self.env.step(actions, check_actions=check_actions)


def test_evaluate_checks_for_the_end_every_check_every_steps():
    agent = ActorCritic(4, n_actions=2, n_agents=2, generator=gen())

    def run(check_every: int, max_steps: int = 500) -> tuple[torch.Tensor, int]:
        env = CountingEnv(CartPole((2, 6), generator=gen(4)))
        returns = evaluate(env, agent, max_steps=max_steps, generator=gen(5), check_every=check_every)
        return returns, env.steps

    exact, longest = run(1)  # an untrained agent: every episode ends well before 500 steps
    assert longest < 400 and longest == int(exact.max())  # CartPole pays 1 per step
    for check_every in (7, 50):
        returns, steps = run(check_every)
        torch.testing.assert_close(returns, exact)  # only the return of each first episode counts
        assert steps == math.ceil(longest / check_every) * check_every
    _, steps = run(50, max_steps=longest + 3)
    assert steps == longest + 3  # max_steps bounds the run whatever check_every is
    with pytest.raises(ValueError, match="check_every must be a positive int; got 0"):
        evaluate(CartPole((2, 6), generator=gen(4)), agent, max_steps=10, generator=gen(5), check_every=0)
