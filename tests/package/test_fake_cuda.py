"""Every public tensor function of the estimators' modules runs on CUDA, without host syncs.

Each function of :data:`MODULES`' ``__all__`` that takes or returns tensors needs an entry in
:data:`EXAMPLES` (a test fails otherwise). Each example runs twice: on the CPU, and on the device
under test of :mod:`fake_cuda` (fake ``cuda:0``, or a GPU with ``GAEBOOK_TEST_DEVICE=cuda``), which
must give outputs of the same shapes and dtypes, on that device, with no device mismatch and no
host transfer outside the allow-list.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from types import ModuleType
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest
import torch
from fake_cuda import NO_FAKE_CUDA, Harness
from torch import Tensor

from gaebook import advantages, baselines, plotting, reductions, scan, statistics
from gaebook.lm import token_mdp

MODULES: tuple[ModuleType, ...] = (advantages, scan, token_mdp, reductions, baselines, plotting, statistics)

Put = Callable[[Tensor], Tensor]  # a CPU tensor to the device of the call
Inputs = tuple[tuple[Any, ...], dict[str, Any]]

pytestmark = NO_FAKE_CUDA


@dataclasses.dataclass(frozen=True)
class Example:
    """A call of ``function`` with inputs made by ``inputs(put)``; ``check(args)`` looks at its side effects."""

    function: Callable[..., Any]
    inputs: Callable[[Put], Inputs]
    check: Callable[[tuple[Any, ...]], None] | None = None


def draws(*shape: int, seed: int = 0) -> Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def flags(*shape: int, p: float, seed: int) -> Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) < p


# (3, 40): three sequences, longer than the scan's chunk of 32 steps and not a multiple of it
SHAPE = (3, 40)


def rollout(put: Put) -> tuple[Tensor, ...]:
    """rewards, values, next_values, terminated, truncated, mask."""
    floats = (put(draws(*SHAPE, seed=i)) for i in range(3))
    bools = (put(flags(*SHAPE, p=p, seed=3 + i)) for i, p in enumerate((0.1, 0.1, 0.8)))
    return (*floats, *bools)


def per_sequence(put: Put, value: float) -> Tensor:
    return put(torch.full(SHAPE[:1], value))


def td_residuals(put: Put) -> Inputs:
    r, v, nv, term, _, _ = rollout(put)
    return (r, v, nv, term), {"gamma": per_sequence(put, 0.99), "check_finite": False}


def gae(put: Put, check_finite: bool = False) -> Inputs:
    r, v, nv, term, trunc, mask = rollout(put)
    kwargs = {"gamma": per_sequence(put, 0.99), "lam": per_sequence(put, 0.95), "mask": mask}
    return (r, v, nv, term, trunc), {**kwargs, "check_finite": check_finite}


def gae_reference(put: Put) -> Inputs:
    r, v, nv, term, trunc, mask = rollout(put)
    return (r, v, nv, term, trunc), {"gamma": 0.99, "lam": per_sequence(put, 0.95), "mask": mask}


def next_valid_values(put: Put) -> Inputs:
    _, v, _, _, _, mask = rollout(put)
    return (v, mask), {"last": put(draws(SHAPE[0], seed=9))}


def nstep_advantages(put: Put) -> Inputs:
    r, v, nv, term, trunc, _ = rollout(put)
    return (r, v, nv, term, trunc), {"gamma": per_sequence(put, 0.99), "n": 5, "check_finite": False}


def discounted_returns(put: Put) -> Inputs:
    r, _, _, term, trunc, _ = rollout(put)
    return (r, term, trunc), {"gamma": per_sequence(put, 0.99), "check_finite": False}


def lambda_returns(put: Put) -> Inputs:
    r, _, nv, term, trunc, _ = rollout(put)
    return (r, nv, term, trunc), {"gamma": 0.99, "lam": per_sequence(put, 0.95), "check_finite": False}


def reverse_linear_scan(put: Put) -> Inputs:
    # 1100 steps: 35 chunks of 32, so the chunk starts are solved by a second level of chunks
    return (put(draws(2, 1100, seed=0)), put(torch.rand(2, 1100, generator=torch.Generator().manual_seed(1)))), {}


# token-level: 4 responses of up to 6 tokens, of lengths 6, 3, 1 and 4
LENGTHS = torch.tensor([6, 3, 1, 4])
RESPONSE_MASK = torch.arange(6) < LENGTHS.unsqueeze(1)


def kl_penalty(put: Put) -> Inputs:
    return (put(draws(4, 6, seed=0)), put(draws(4, 6, seed=1))), {"estimator": "k3"}


def last_valid_index(put: Put) -> Inputs:
    return (put(RESPONSE_MASK),), {}


def truncation_penalty(put: Put) -> Inputs:
    return (put(draws(4, seed=0)), put(LENGTHS == 6), 1.0), {}


def token_rewards(put: Put) -> Inputs:
    return (put(draws(4, seed=0)), put(RESPONSE_MASK), put(draws(4, 6, seed=1))), {"kl_coef": 0.1}


def masked_statistic(put: Put) -> Inputs:
    return (put(draws(4, 6, seed=0)), put(RESPONSE_MASK)), {}


def masked_fit(put: Put) -> Inputs:
    """Predictions and targets ``(4, 6)`` with the response mask: per agent, the 4 rows are agents."""
    return (put(draws(4, 6, seed=0)), put(draws(4, 6, seed=1)), put(RESPONSE_MASK)), {}


def adaptive_lam(put: Put) -> Inputs:
    return (put(LENGTHS),), {"alpha": 0.5}


def group_rewards(put: Put) -> Inputs:
    return (put(draws(8, seed=0)), 4), {}


def associative_scan_gae(put: Put) -> Inputs:
    # time-major (T, N); dones[t] marks that the episode ended at t, as floats
    pytest.importorskip("torch._higher_order_ops.associative_scan")  # a prototype API of recent torch
    r, v, nv = (put(draws(40, 3, seed=i)) for i in range(3))
    return (r, v, nv, put(flags(40, 3, p=0.1, seed=3).float()), 0.99, 0.95), {}


def cleanrl_gae(put: Put) -> Inputs:
    # time-major (T, N); dones[t] marks that s_t began an episode, as floats
    rewards, values = put(draws(40, 3, seed=0)), put(draws(40, 3, seed=1))
    dones = put(flags(40, 3, p=0.1, seed=2).float())
    return (rewards, values, dones, put(draws(3, seed=3)), put(torch.zeros(3)), 0.99, 0.95), {}


def masked_token_gae(put: Put) -> Inputs:
    return (put(draws(4, 6, seed=0)), put(draws(4, 6, seed=1)), put(RESPONSE_MASK.float()), 1.0, 0.95), {}


def mean_band(put: Put) -> Inputs:
    _, ax = plt.subplots()
    return (ax, put(torch.arange(5.0)), put(draws(3, 5, seed=0))), {"label": "runs"}


def drew_one_band(args: tuple[Any, ...]) -> None:
    ax, runs = args[0], args[2]
    assert len(ax.lines) == 1 + runs.shape[0] and len(ax.collections) == 1  # the mean, each seed, the band
    plt.close(ax.figure)


def seeds(put: Put) -> Inputs:
    return (put(draws(3, 5, seed=0)),), {"dim": 0}


def gappy_curves(put: Put) -> Inputs:
    curves = draws(3, 7, seed=0).masked_fill(flags(3, 7, p=0.4, seed=1), float("nan"))
    return (put(curves),), {}


EXAMPLES: dict[str, Example] = {
    "td_residuals": Example(advantages.td_residuals, td_residuals),
    "gae": Example(advantages.gae, gae),
    "gae-check_finite": Example(advantages.gae, lambda put: gae(put, check_finite=True)),
    "gae_reference": Example(advantages.gae_reference, gae_reference),
    "next_valid_values": Example(advantages.next_valid_values, next_valid_values),
    "nstep_advantages": Example(advantages.nstep_advantages, nstep_advantages),
    "discounted_returns": Example(advantages.discounted_returns, discounted_returns),
    "lambda_returns": Example(advantages.lambda_returns, lambda_returns),
    "reverse_linear_scan": Example(scan.reverse_linear_scan, reverse_linear_scan),
    "kl_penalty": Example(token_mdp.kl_penalty, kl_penalty),
    "last_valid_index": Example(token_mdp.last_valid_index, last_valid_index),
    "truncation_penalty": Example(token_mdp.truncation_penalty, truncation_penalty),
    "token_rewards": Example(token_mdp.token_rewards, token_rewards),
    "masked_mean": Example(reductions.masked_mean, masked_statistic),
    "masked_whiten": Example(reductions.masked_whiten, masked_statistic),
    "mean_per_agent": Example(reductions.mean_per_agent, masked_statistic),
    "explained_variance": Example(reductions.explained_variance, masked_fit),
    "explained_variance_per_agent": Example(reductions.explained_variance_per_agent, masked_fit),
    "adaptive_lam": Example(token_mdp.adaptive_lam, adaptive_lam),
    "grpo_advantages": Example(token_mdp.grpo_advantages, group_rewards),
    "rloo_advantages": Example(token_mdp.rloo_advantages, group_rewards),
    "reinforce_pp_advantages": Example(token_mdp.reinforce_pp_advantages, masked_statistic),
    "associative_scan_gae": Example(baselines.associative_scan_gae, associative_scan_gae),
    "cleanrl_gae": Example(baselines.cleanrl_gae, cleanrl_gae),
    "masked_token_gae": Example(baselines.masked_token_gae, masked_token_gae),
    "mean_band": Example(plotting.mean_band, mean_band, check=drew_one_band),
    "mean_se": Example(statistics.mean_se, seeds),
    "t_interval": Example(statistics.t_interval, seeds),
    "carry_forward": Example(statistics.carry_forward, gappy_curves),
}


def public_tensor_functions() -> set[Callable[..., Any]]:
    """The functions in the ``__all__`` of :data:`MODULES` whose signature names ``Tensor``."""
    found: set[Callable[..., Any]] = set()
    for module in MODULES:
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isfunction(obj) and any("Tensor" in str(a) for a in obj.__annotations__.values()):
                found.add(obj)
    return found


def test_every_public_tensor_function_has_an_example():
    covered = {e.function for e in EXAMPLES.values()}
    missing = sorted(f"{f.__module__}.{f.__name__}" for f in public_tensor_functions() - covered)
    assert not missing, f"add an example to EXAMPLES for {missing}"
    stale = sorted(f"{f.__module__}.{f.__name__}" for f in covered - public_tensor_functions())
    assert not stale, f"EXAMPLES calls functions that are not public tensor functions: {stale}"


def test_the_completeness_check_sees_tensor_functions_only():
    found = {f.__name__ for f in public_tensor_functions()}
    assert {"gae", "reverse_linear_scan", "masked_whiten", "cleanrl_gae", "mean_band"} <= found
    assert not {"sb3_gae", "discount_cumsum", "use_book_style"} & found  # NumPy and no tensors at all


def structure(out: object) -> object:
    """``out`` with every tensor replaced by its shape and dtype."""
    if isinstance(out, Tensor):
        return (tuple(out.shape), out.dtype)
    if isinstance(out, tuple | list):
        return type(out)(structure(x) for x in out)
    return out


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_runs_on_the_device_without_host_syncs(name: str):
    example = EXAMPLES[name]
    args, kwargs = example.inputs(lambda t: t)
    expected = example.function(*args, **kwargs)
    if example.check is not None:
        example.check(args)
    harness = Harness.from_environment()
    args, kwargs = example.inputs(harness.tensor)
    out = harness.run(example.function, *args, **kwargs)
    assert structure(out) == structure(expected)
    if example.check is None:
        harness.assert_on_device(out)
    else:
        example.check(args)
