"""The contract of gaebook.envs.VectorEnv, checked on every environment of the package.

Each environment is a case: how to make it (with a seed, and arguments to override), the
attributes that hold its state (for the torch environments) and the bad constructor arguments it
must refuse. What one environment does beyond the contract (its physics, its rules) is tested in
its own file.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from host_traffic import host_traffic

from gaebook.envs import (
    CartPole,
    Catch,
    GymnasiumVectorEnv,
    Pendulum,
    ScaledRewards,
    StepResult,
    TensorEnv,
    VectorEnv,
)
from gaebook.envs.base import resolve_device

BadArgs = tuple[tuple[dict[str, Any], type[Exception], str], ...]


@dataclass(frozen=True)
class Case:
    make: Callable[..., VectorEnv]  # make(seed=..., **overrides)
    state: tuple[str, ...] = ()  # a torch environment's state, batch dimensions first
    bad_args: BadArgs = ()
    on_host: bool = False  # steps through Gymnasium, on the host


def torch_env(cls: type[TensorEnv], **fixed: Any) -> Callable[..., VectorEnv]:
    def make(seed: int = 0, **overrides: Any) -> VectorEnv:
        kwargs = {"batch_shape": (2, 3), "generator": torch.Generator().manual_seed(seed), **fixed, **overrides}
        return cls(kwargs.pop("batch_shape"), **kwargs)

    return make


def gymnasium_env(env_id: str, **fixed: Any) -> Callable[..., VectorEnv]:
    def make(seed: int = 0, **overrides: Any) -> VectorEnv:
        kwargs = {"env_id": env_id, "n_envs": 3, "seed": seed, **fixed, **overrides}
        return GymnasiumVectorEnv(kwargs.pop("env_id"), kwargs.pop("n_envs"), **kwargs)

    return make


def scaled_pendulum(seed: int = 0, **overrides: Any) -> VectorEnv:
    kwargs = {"scale": torch.tensor([[0.1], [2.0]]), **overrides}
    env = kwargs.pop("env", None) or Pendulum((2, 3), generator=torch.Generator().manual_seed(seed))
    return ScaledRewards(env, **kwargs)


TORCH_BAD_ARGS: BadArgs = (
    ({"batch_shape": 64}, TypeError, "batch_shape"),
    ({"batch_shape": [64]}, TypeError, "batch_shape"),
    ({"batch_shape": (2.0,)}, TypeError, "batch_shape"),
    ({"batch_shape": (True,)}, TypeError, "batch_shape"),
    ({"batch_shape": (4, 0)}, ValueError, "batch_shape"),
    ({"generator": 0}, TypeError, "generator"),
    ({"device": "meta"}, ValueError, "generator must be on device meta"),
    ({"device": 0}, TypeError, "device"),
    ({"dtype": torch.long}, TypeError, "dtype"),
    ({"dtype": "float32"}, TypeError, "dtype"),
)
GYMNASIUM_BAD_ARGS: BadArgs = (
    ({"env_id": 1}, TypeError, "env_id"),
    ({"n_envs": 0}, ValueError, "n_envs"),
    ({"n_envs": 2.0}, TypeError, "n_envs"),
    ({"seed": None}, TypeError, "seed"),
    ({"device": 0}, TypeError, "device"),
)
SCALED_BAD_ARGS: BadArgs = (
    ({"scale": "0.1"}, TypeError, "scale"),
    ({"scale": True}, TypeError, "scale"),
    ({"scale": torch.tensor([[1], [2]])}, TypeError, "scale must be a floating tensor"),
    ({"scale": torch.ones(3, 1)}, ValueError, "scale"),
    ({"scale": torch.ones(2, 3, 1)}, ValueError, "scale"),
    ({"env": object()}, TypeError, "env must be a VectorEnv"),
)

CASES = {
    "cartpole": Case(torch_env(CartPole), ("state", "elapsed_steps"), TORCH_BAD_ARGS),
    "pendulum": Case(torch_env(Pendulum), ("state", "elapsed_steps"), TORCH_BAD_ARGS),
    "catch": Case(torch_env(Catch, rows=4, columns=3), ("ball_row", "ball_column", "paddle_column"), TORCH_BAD_ARGS),
    # a short time limit, so that the random policy's episodes are truncated too
    "gymnasium-cartpole": Case(gymnasium_env("CartPole-v1", max_episode_steps=30), (), GYMNASIUM_BAD_ARGS, True),
    "gymnasium-pendulum": Case(gymnasium_env("Pendulum-v1"), (), GYMNASIUM_BAD_ARGS, True),
    "scaled-pendulum": Case(scaled_pendulum, (), SCALED_BAD_ARGS),
}
TORCH_CASES = [name for name, case in CASES.items() if case.state]
DEVICE_CASES = [name for name, case in CASES.items() if not case.on_host]


@pytest.fixture(params=list(CASES))
def case(request: pytest.FixtureRequest) -> Case:
    return CASES[request.param]


def random_actions(env: VectorEnv, g: torch.Generator) -> torch.Tensor:
    """Valid actions for every copy: uniform discrete actions, or torques uniform in [-2, 2)."""
    if env.n_actions is not None:
        return torch.randint(env.n_actions, env.batch_shape, generator=g).to(env.device)
    assert env.action_size is not None
    return (4 * torch.rand((*env.batch_shape, env.action_size), generator=g) - 2).to(env.device)


def test_attributes_agree_with_what_reset_and_step_return(case):
    env = case.make()
    assert isinstance(env, VectorEnv)
    sizes = (env.observation_size, env.max_episode_steps)
    assert all(type(n) is int and n >= 1 for n in sizes), sizes
    discrete, continuous = env.n_actions is not None, env.action_size is not None
    assert discrete != continuous, "exactly one of n_actions and action_size"
    assert type(env.n_actions if discrete else env.action_size) is int
    assert isinstance(env.batch_shape, tuple) and all(type(n) is int for n in env.batch_shape)
    assert isinstance(env.device, torch.device) and env.device == resolve_device(env.device)

    obs = env.reset()
    assert obs.shape == (*env.batch_shape, env.observation_size)
    assert obs.dtype.is_floating_point and obs.device == env.device
    result = env.step(random_actions(env, torch.Generator().manual_seed(0)))
    assert isinstance(result, StepResult)
    next_obs, rewards, terminated, truncated, final_obs = result  # unpacks like a tuple
    assert result.next_obs is next_obs and result.final_obs is final_obs
    for x in (next_obs, final_obs):
        assert x.shape == obs.shape and x.dtype == obs.dtype and x.device == env.device
    assert rewards.shape == env.batch_shape and rewards.dtype == obs.dtype and rewards.device == env.device
    for flag in (terminated, truncated):
        assert flag.shape == env.batch_shape and flag.dtype == torch.bool and flag.device == env.device


@pytest.mark.parametrize("name", TORCH_CASES)
def test_an_unbatched_env(name):
    env = CASES[name].make(batch_shape=())
    assert env.batch_shape == () and env.reset().shape == (env.observation_size,)
    next_obs, rewards, terminated, truncated, final_obs = env.step(random_actions(env, torch.Generator()))
    assert next_obs.shape == final_obs.shape == (env.observation_size,)
    assert rewards.shape == terminated.shape == truncated.shape == ()


@pytest.mark.parametrize("name", TORCH_CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_is_that_of_observations_and_rewards(name, dtype):
    env = CASES[name].make(dtype=dtype)
    assert env.reset().dtype == dtype
    next_obs, rewards, _, _, final_obs = env.step(random_actions(env, torch.Generator()))
    assert next_obs.dtype == rewards.dtype == final_obs.dtype == dtype


def test_step_before_reset_is_refused(case):
    env = case.make()
    with pytest.raises(RuntimeError, match=r"call reset\(\) before step\(\)"):
        env.step(random_actions(env, torch.Generator()))


@pytest.mark.parametrize(
    ("name", "index"),
    [(name, i) for name, case in CASES.items() for i in range(len(case.bad_args))],
    ids=[f"{name}-{next(iter(bad[0]))}{i}" for name, case in CASES.items() for i, bad in enumerate(case.bad_args)],
)
def test_bad_constructor_arguments_are_refused(name, index):
    overrides, error, match = CASES[name].bad_args[index]
    with pytest.raises(error, match=match):
        CASES[name].make(**overrides)


def bad_actions(env: VectorEnv) -> list[tuple[object, type[Exception], str]]:
    valid = random_actions(env, torch.Generator())
    wrong_dtype = [valid.float(), valid.bool()] if env.n_actions is not None else [valid.long()]
    return [
        (valid.tolist(), TypeError, r"actions must be a torch\.Tensor"),
        *((x, TypeError, "actions must be an? (integer|floating)") for x in wrong_dtype),
        (valid.reshape(-1), ValueError, "actions must have shape"),
        (valid.unsqueeze(-1), ValueError, "actions must have shape"),
        (valid.to("meta"), ValueError, "actions must be on device"),
    ]


def test_bad_actions_are_refused_and_change_nothing(case):
    env, twin = case.make(seed=1), case.make(seed=1)
    assert torch.equal(env.reset(), twin.reset())
    g = torch.Generator().manual_seed(2)
    for _ in range(3):
        for actions, error, match in bad_actions(env):
            for check_actions in (True, False):  # dtype, shape and device are checked either way
                with pytest.raises(error, match=match):
                    env.step(actions, check_actions=check_actions)
        actions = random_actions(env, g)
        for x, y in zip(env.step(actions), twin.step(actions), strict=True):
            assert torch.equal(x, y)


def test_action_values_are_checked_when_asked(case):
    env = case.make()
    env.reset()
    valid = random_actions(env, torch.Generator())
    if env.n_actions is not None:
        bad_values = (env.n_actions, -1)
        match = rf"actions must be in \[0, {env.n_actions}\)"
    else:
        bad_values = (float("nan"), float("inf"))
        match = "actions must be finite"
    for value in bad_values:
        actions = valid.clone()
        actions.view(-1)[-1] = value  # one bad action among good ones
        with pytest.raises(ValueError, match=match):
            env.step(actions)
        if not case.on_host:  # unchecked, they reach the dynamics (Gymnasium checks them itself)
            env.step(actions, check_actions=False)


def test_autoreset_and_episode_ends(case):
    """Run past the time limit: episodes end, restart within the step, and never outlast the limit."""
    env = case.make()
    env.reset()
    g = torch.Generator().manual_seed(3)
    length = torch.zeros(env.batch_shape, dtype=torch.long, device=env.device)
    ended = torch.zeros(env.batch_shape, dtype=torch.bool, device=env.device)
    for _ in range(env.max_episode_steps + 5):
        next_obs, _, terminated, truncated, final_obs = env.step(random_actions(env, g))
        length += 1
        done = terminated | truncated
        assert not (terminated & truncated).any(), "the two flags never together"
        assert torch.equal(next_obs[~done], final_obs[~done]), "inside an episode, next_obs is final_obs"
        assert (next_obs[done] != final_obs[done]).any(-1).all(), "where one ended, next_obs starts a new one"
        assert bool((length <= env.max_episode_steps).all()), "no episode outlasts max_episode_steps"
        assert bool((length[truncated] == env.max_episode_steps).all()), "truncation is the time limit"
        length = length.masked_fill(done, 0)
        ended |= done
    assert bool(ended.all()), "every copy ended an episode"


def test_returned_tensors_do_not_alias_the_state(case):
    """Writing into what reset and step return changes nothing for the environment."""
    env, twin = case.make(seed=4), case.make(seed=4)
    obs = env.reset()
    assert torch.equal(obs, twin.reset())
    obs.add_(100.0)
    g = torch.Generator().manual_seed(5)
    for _ in range(2 * env.max_episode_steps // 3 + 2):
        actions = random_actions(env, g)
        ours, theirs = env.step(actions), twin.step(actions)
        for x, y in zip(ours, theirs, strict=True):
            assert torch.equal(x, y)
        for x in (ours.next_obs, ours.rewards, ours.final_obs):
            x.add_(100.0)


def test_same_seed_same_episodes_other_seed_other_episodes(case):
    def run(seed: int) -> list[torch.Tensor]:
        env = case.make(seed=seed)
        out = [env.reset()]
        g = torch.Generator().manual_seed(7)
        for _ in range(env.max_episode_steps + 1):
            out.extend(env.step(random_actions(env, g)))
        return out

    a, b, c = run(0), run(0), run(1)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])


@pytest.mark.parametrize("name", TORCH_CASES)
def test_batch_dimensions_hold_independent_copies(name):
    """A (3, 5) batch steps like 15 copies in a row, given the same states and actions."""
    case = CASES[name]
    env, flat = case.make(batch_shape=(3, 5)), case.make(batch_shape=(15,))
    env.reset()
    flat.reset()
    g = torch.Generator().manual_seed(0)
    for _ in range(env.max_episode_steps + 2):
        for attr in case.state:  # the same states (the resets draw differently shaped noise)
            x = getattr(env, attr)
            setattr(flat, attr, x.reshape(15, *x.shape[2:]))
        actions = random_actions(env, g)
        ours = env.step(actions)
        theirs = flat.step(actions.reshape(15, *actions.shape[2:]))
        for x, y in zip(ours[1:], theirs[1:], strict=True):  # next_obs differs where a new episode began
            assert torch.equal(x.reshape(y.shape), y)


def host_events(env: VectorEnv, actions: torch.Tensor, check_actions: bool) -> Counter[str]:
    """Reads of device values into Python and copies of Python data to the device, in three steps."""

    def steps() -> None:
        for _ in range(3):
            env.step(actions, check_actions=check_actions)

    return host_traffic(steps)


@pytest.mark.parametrize("name", DEVICE_CASES)
def test_step_waits_for_nothing_on_the_host_without_the_action_check(name):
    """On CUDA a step with check_actions=False neither synchronises nor copies Python numbers to the device."""
    env = CASES[name].make()
    env.reset()
    actions = random_actions(env, torch.Generator())
    assert host_events(env, actions, check_actions=False) == Counter()
    assert host_events(env, actions, check_actions=True)["reads"] > 0  # the check does see syncs
    assert host_traffic(lambda: torch.tensor((1.0, 2.0), device=env.device))["uploads"] > 0  # ... and copies
