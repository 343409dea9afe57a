"""Checkers for a reader's own implementation of the book's estimators.

Each ``check_*`` takes a function, runs it on hidden random cases (seeded; several shapes; the
edge cases that break real code: an episode end at the last step, a truncation that must
bootstrap, an all-padding row, a group of identical scores, a float32 batch) and compares its
output with gaebook's reference. It returns a :class:`Verdict`: passed, or a hint that names the
mistake. The hint comes from comparing the wrong output with the output of each known bug of
:mod:`gaebook.exercises.bugs` on the same case, and otherwise from generic checks (wrong type,
shape, dtype or device, inputs changed in place, NaN, a masked position that is not zero, the first
entry that differs).

The reader's function, by checker (tensors time last, ``(N, T)``, as in :mod:`gaebook.advantages`):

* :func:`check_gae`: ``fn(rewards, values, next_values, terminated, truncated, *, gamma, lam)``
  returns the advantages, or ``(advantages, returns)`` to have the critic's targets checked too;
* :func:`check_lambda_returns`: ``fn(rewards, next_values, terminated, truncated, *, gamma, lam)``
  returns the λ-returns;
* :func:`check_token_gae`: ``fn(rewards, values, mask, *, gamma, lam)`` returns the advantages of
  a batch of responses ``(B, T)``: positions where the bool ``mask`` is ``False`` (tool output,
  padding) are skipped by the trace and get 0, and the last valid token bootstraps from 0 (EOS);
* :func:`check_masked_whiten`: ``fn(x, mask)`` returns ``x`` whitened with the mean and unbiased
  standard deviation of its valid positions, 0 elsewhere;
* :func:`check_ppo_loss`: ``fn(log_probs, old_log_probs, advantages, *, clip_coef)`` returns the
  clipped surrogate loss (to minimise), a 0-d mean over all positions;
* :func:`check_grpo_advantages`: ``fn(rewards, group_size)`` returns GRPO's advantages ``(B,)`` for
  rewards grouped contiguously by prompt, ``(R − mean) / (std + 1e-4)`` within each group;
* :func:`check_next_step_gae`: ``fn(rewards, values, terminated, truncated, last_value, *, gamma,
  lam)`` returns the advantages of a rollout recorded under Gymnasium's ``NEXT_STEP`` autoreset:
  ``values[..., t]`` is the value of the observation row ``t`` acted on, the row after an episode
  end is the autoreset step (reward 0, action ignored) and must get 0, and ``last_value`` ``(N,)``
  is the value of the observation after the last row.

Usage: ``check_gae(my_gae)`` shows the verdict; ``assert check_gae(my_gae)`` fails on a mistake.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from gaebook.advantages import gae, lambda_returns, next_valid_values
from gaebook.exercises import bugs
from gaebook.lm.token_mdp import grpo_advantages
from gaebook.ppo import clipped_surrogate
from gaebook.reductions import masked_whiten

__all__ = [
    "Verdict",
    "check_gae",
    "check_grpo_advantages",
    "check_lambda_returns",
    "check_masked_whiten",
    "check_next_step_gae",
    "check_ppo_loss",
    "check_token_gae",
]


@dataclass(frozen=True, repr=False)
class Verdict:
    """What a checker found: ``passed``, a ``message`` for the reader, and the ``bug`` it diagnosed.

    ``bug`` is the name of the matching function of :mod:`gaebook.exercises.bugs`, or ``None``
    (passed, or a mistake that no known bug reproduces). A verdict is true when it passed.
    """

    passed: bool
    message: str
    bug: str | None = None

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return ("PASS: " if self.passed else "FAIL: ") + self.message


@dataclass
class _Case:
    name: str
    args: dict[str, Tensor]  # passed positionally, in this order
    options: dict[str, Any]  # passed by keyword (except group_size, passed positionally)
    flags: dict[str, Tensor] = field(default_factory=dict)  # positions a hint can point at
    positional_options: tuple[str, ...] = ()

    def call(self, fn: Callable[..., Any], args: Sequence[Tensor]) -> Any:
        positional = [*args, *(self.options[k] for k in self.positional_options)]
        keywords = {k: v for k, v in self.options.items() if k not in self.positional_options}
        return fn(*positional, **keywords)


@dataclass(frozen=True)
class _Known:
    """A known bug: its model in :mod:`gaebook.exercises.bugs` and its hint (``{where}`` is filled
    with the first position, among the case's ``flags[at]``, where the reader's output is wrong)."""

    model: Callable[..., Any]
    hint: str
    at: str | None = None


def _tolerance(dtype: torch.dtype, loose: bool) -> dict[str, float]:
    if loose:
        return {"rtol": 1e-3, "atol": 1e-5}
    if dtype == torch.float64:
        return {"rtol": 1e-7, "atol": 1e-9}
    return {"rtol": 1e-4, "atol": 1e-5}


def _close(got: Tensor, expected: Tensor, tol: dict[str, float], equal_nan: bool = False) -> bool:
    return bool(
        torch.allclose(got.double(), expected.double(), rtol=tol["rtol"], atol=tol["atol"], equal_nan=equal_nan)
    )


def _wrong(got: Tensor, expected: Tensor, tol: dict[str, float]) -> Tensor:
    """Bool tensor of the entries that differ (NaN included)."""
    return ~torch.isclose(got.double(), expected.double(), rtol=tol["rtol"], atol=tol["atol"])


def _position(index: Sequence[int]) -> str:
    index = list(index)
    if not index:
        return "the output"
    if len(index) == 1:
        return f"index {index[0]}"
    return f"t = {index[-1]} (row {', '.join(map(str, index[:-1]))})"


def _first(where: Tensor) -> list[int] | None:
    hits = where.nonzero()
    return None if hits.shape[0] == 0 else hits[0].tolist()


def _as_outputs(got: Any, names: tuple[str, ...], optional: int) -> tuple[Tensor, ...] | str:
    """The reader's output as a tuple of tensors, or a message saying why it is not one.

    ``names`` are the outputs the checker can check; the last ``optional`` of them may be left out.
    """
    parts = tuple(got) if len(names) > 1 and isinstance(got, tuple | list) else (got,)
    required = len(names) - optional
    if not required <= len(parts) <= len(names):
        wanted = " or ".join(f"({', '.join(names[:n])})" for n in range(required, len(names) + 1))
        return f"your function returns {len(parts)} values; return {wanted}"
    for name, part in zip(names, parts, strict=False):
        if not isinstance(part, Tensor):
            return f"your {name} {_is(name)} a {type(part).__name__}; return a torch.Tensor"
    return parts


def _is(name: str) -> str:
    return "are" if name.endswith("s") and not name.endswith("ss") else "is"


def _trusted(out: Any, n: int) -> tuple[Tensor, ...]:
    """The first ``n`` outputs of gaebook's reference or of a bug model (a tensor or a tuple of them)."""
    return (tuple(out) if isinstance(out, tuple) else (out,))[:n]


def _form(name: str, got: Tensor, expected: Tensor) -> str | None:
    if got.numel() == 0 and expected.numel() > 0:
        return (
            f"your {name} {_is(name)} empty: is it ever filled? (seed 000 hands its empty `returns` list to the critic)"
        )
    if got.shape != expected.shape:
        return f"your {name} has shape {tuple(got.shape)}; expected {tuple(expected.shape)}"
    if got.dtype != expected.dtype:
        return f"your {name} {_is(name)} {got.dtype} but the inputs are {expected.dtype}: keep the inputs' dtype"
    if got.device != expected.device:
        return f"your {name} {_is(name)} on {got.device} but the inputs are on {expected.device}: stay on their device"
    return None


def _judge(
    fn: object,
    cases: list[_Case],
    reference: Callable[..., Any],
    known: tuple[_Known, ...],
    names: tuple[str, ...],
    *,
    optional: int = 0,
    zero_at: str | None = None,
    loose: bool = False,
) -> Verdict:
    """Run ``fn`` on every case; the verdict of the first case it gets wrong, or a pass."""
    if not callable(fn):
        raise TypeError(f"fn must be a function; got {type(fn).__name__}")
    for case in cases:
        inputs = list(case.args.values())
        copies = [x.clone() for x in inputs]
        where_case = f" [case: {case.name}]"
        try:
            got_raw = case.call(fn, copies)
        except Exception as error:  # the reader's code: any failure is reported, not raised
            return Verdict(False, f"your function raised {type(error).__name__}: {error}{where_case}")
        for arg_name, before, after in zip(case.args, inputs, copies, strict=True):
            if not torch.equal(before, after):
                return Verdict(
                    False,
                    f"your function changes its input {arg_name} in place: work on a copy "
                    f"(the caller still needs it){where_case}",
                )
        got = _as_outputs(got_raw, names, optional)
        if isinstance(got, str):
            return Verdict(False, got + where_case)
        expected = _trusted(case.call(reference, [x.clone() for x in inputs]), len(got))
        names_got = names[: len(got)]
        for name, g, e in zip(names_got, got, expected, strict=True):
            problem = _form(name, g, e)
            if problem is not None:
                return Verdict(False, problem + where_case)
        tol = _tolerance(expected[0].dtype, loose)
        if all(_close(g, e, tol) for g, e in zip(got, expected, strict=True)):
            continue
        for bug in known:
            modelled = _trusted(case.call(bug.model, [x.clone() for x in inputs]), len(got))
            same = all(_close(g, b, tol, equal_nan=True) for g, b in zip(got, modelled, strict=True))
            if same and not all(_close(b, e, tol) for b, e in zip(modelled, expected, strict=True)):
                where = None
                if bug.at is not None:
                    wrong = torch.zeros_like(case.flags[bug.at])
                    for g, e in zip(got, expected, strict=True):
                        wrong |= _wrong(g, e, tol)
                    where = _first(wrong & case.flags[bug.at]) or _first(wrong)
                hint = bug.hint.format(where=_position(where or []))
                return Verdict(False, hint + where_case, bug=bug.model.__name__)
        for name, g in zip(names_got, got, strict=True):
            nan = _first(~torch.isfinite(g))
            if nan is not None:
                return Verdict(False, f"NaN or inf in your {name} at {_position(nan)}{where_case}")
        if zero_at is not None:
            for name, g in zip(names_got, got, strict=True):
                stray = _first((g != 0) & case.flags[zero_at])
                if stray is not None:
                    return Verdict(
                        False,
                        f"your {name} {_is(name)} not 0 at {_position(stray)}, which is no action{where_case}",
                    )
        for name, g, e in zip(names_got, got, expected, strict=True):
            if not _close(g, e, tol):
                at = _first(_wrong(g, e, tol)) or []
                return Verdict(
                    False,
                    f"your {name} {_is(name)} wrong at {_position(at)}: {g[tuple(at)].item():.6g} where "
                    f"{e[tuple(at)].item():.6g} is right; no known bug gives your numbers{where_case}",
                )
    return Verdict(True, f"passed all {len(cases)} hidden cases ({'; '.join(c.name for c in cases)})")


def _generator(seed: object) -> torch.Generator:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int; got {type(seed).__name__}")
    return torch.Generator().manual_seed(seed)


def _device(device: object) -> torch.device:
    if not isinstance(device, str | torch.device):
        raise TypeError(f"device must be a str or a torch.device; got {type(device).__name__}")
    try:
        return torch.device(device)
    except RuntimeError as error:
        raise ValueError(f"device {device!r} is not a device: {error}") from None


def _normal(shape: tuple[int, ...], gen: torch.Generator) -> Tensor:
    return torch.randn(shape, generator=gen, dtype=torch.float64)  # host: the cases are built here


def _flags(shape: tuple[int, ...], p: float, gen: torch.Generator) -> Tensor:
    return torch.rand(shape, generator=gen, dtype=torch.float64) < p  # host


def _episode_cases(gen: torch.Generator) -> list[tuple[str, Tensor, Tensor, float, float, torch.dtype]]:
    """Episode-end patterns: ``(name, terminated, truncated, gamma, lam, dtype)``, hardest last."""
    n, t = 3, 24
    none = torch.zeros(n, t, dtype=torch.bool)
    term = _flags((n, t), 0.12, gen)
    term[0, -1] = True  # an episode end at the last step
    term[1, 5] = True
    trunc = _flags((n, t), 0.12, gen)
    trunc[0, -1] = True  # a truncation at the last step: it bootstraps
    trunc[2, 9] = True
    mixed_term = _flags((4, 32), 0.08, gen)
    mixed_trunc = _flags((4, 32), 0.08, gen) & ~mixed_term
    mixed_trunc[3, 31], mixed_term[3, 20] = True, True
    return [
        ("one episode, no end", none[:1], none[:1], 0.99, 0.95, torch.float64),
        ("terminations, one at the last step", term, none, 0.9, 0.8, torch.float64),
        ("truncations that bootstrap, one at the last step", none, trunc, 0.9, 0.8, torch.float64),
        ("both kinds of end, float32", mixed_term, mixed_trunc, 0.99, 0.9, torch.float32),
    ]


_GAE_BUGS = (
    _Known(
        bugs.gae_ignores_truncation,
        "your trace crosses a truncation at {where}: cut it at terminated | truncated, "
        "and keep the bootstrap γ·V(s_{{t+1}}) there",
        "truncated",
    ),
    _Known(
        bugs.gae_crosses_episode_end,
        "your trace crosses an episode end at {where}: multiply the carried advantage by 1 − done",
        "done",
    ),
    _Known(
        bugs.gae_bootstraps_after_termination,
        "you bootstrap after termination at {where}: a terminal state has value 0, "
        "so δ_t = r_t + γ·(1 − terminated_t)·V(s_{{t+1}}) − V(s_t)",
        "terminated",
    ),
    _Known(
        bugs.gae_truncation_as_termination,
        "you drop the bootstrap at the truncation at {where} (CleanRL #198): a time-out is not a "
        "terminal state; δ keeps γ·V(s_{{t+1}}) from the true final observation",
        "truncated",
    ),
    _Known(
        bugs.gae_seed000_exponent,
        "the last residual of an episode is weighted (γλ)² too little: your exponent is T−t+1 "
        "(the seeds' bug); δ_{{T−1}} enters A_t with (γλ)^(T−t−1)",
        "last",
    ),
    _Known(
        bugs.gae_returns_never_computed,
        "your returns are all 0: they are never computed (seed 000); the critic's target is advantages + values",
    ),
    _Known(
        bugs.gae_monte_carlo_targets,
        "your critic targets are Monte Carlo returns (seed 003): they do not bootstrap at a "
        "truncation or at the rollout's end; use the λ-return, advantages + values",
    ),
)


def check_gae(fn: Callable[..., Any], *, device: str | torch.device = "cpu", seed: int = 0) -> Verdict:
    """Check a reader's GAE with episode ends against :func:`gaebook.gae`.

    ``fn(rewards, values, next_values, terminated, truncated, *, gamma, lam)`` gets float ``(N, T)``
    tensors and bool ``(N, T)`` flags (``next_values[..., t]`` is ``V(s_{t+1})``, the true final
    observation's value at an episode end) and returns the advantages ``(N, T)``, or
    ``(advantages, returns)``. ``device`` is where the cases are built, ``seed`` picks them.
    """
    gen, dev = _generator(seed), _device(device)
    cases = []
    for name, term, trunc, gamma, lam, dtype in _episode_cases(gen):
        shape = tuple(term.shape)
        values = _normal(shape, gen)
        # inside an episode V(s_{t+1}) is the next row's value; at an end it is the final observation's
        next_values = torch.where(term | trunc, _normal(shape, gen), torch.roll(values, -1, dims=-1))
        next_values[..., -1] = _normal(shape[:-1], gen)
        last = term | trunc
        last[..., -1] = True
        args = {"rewards": _normal(shape, gen), "values": values, "next_values": next_values}
        args = {k: v.to(dev, dtype) for k, v in args.items()}
        args |= {"terminated": term.to(dev), "truncated": trunc.to(dev)}
        flags = {"done": (term | trunc).to(dev), "terminated": term.to(dev), "truncated": trunc.to(dev)}
        cases.append(_Case(name, args, {"gamma": gamma, "lam": lam}, flags | {"last": last.to(dev)}))
    return _judge(fn, cases, gae, _GAE_BUGS, ("advantages", "returns"), optional=1)


_LAMBDA_BUGS = (
    _Known(
        bugs.lambda_returns_ignore_truncation,
        "your return crosses a truncation at {where}: stop there and bootstrap from V(s_{{t+1}})",
        "truncated",
    ),
    _Known(
        bugs.lambda_returns_bootstrap_after_termination,
        "you bootstrap after termination at {where}: a terminal state has value 0",
        "terminated",
    ),
    _Known(
        bugs.lambda_returns_truncation_as_termination,
        "you drop the bootstrap at the truncation at {where} (CleanRL #198): a time-out is not a "
        "terminal state; the return ends with γ·V(s_{{t+1}})",
        "truncated",
    ),
    _Known(
        bugs.lambda_returns_monte_carlo,
        "your critic targets are Monte Carlo returns (seed 003): the λ-return mixes in the critic, "
        "(1 − λ)·V(s_{{t+1}}) at every step and all of it at a truncation and at the rollout's end",
    ),
)


def check_lambda_returns(fn: Callable[..., Any], *, device: str | torch.device = "cpu", seed: int = 0) -> Verdict:
    """Check a reader's λ-returns against :func:`gaebook.lambda_returns`.

    ``fn(rewards, next_values, terminated, truncated, *, gamma, lam)`` gets ``(N, T)`` tensors as
    in :func:`check_gae` (without ``values``) and returns the λ-returns ``(N, T)``.
    """
    gen, dev = _generator(seed), _device(device)
    cases = []
    for name, term, trunc, gamma, lam, dtype in _episode_cases(gen):
        shape = tuple(term.shape)
        last = term | trunc
        last[..., -1] = True
        args = {"rewards": _normal(shape, gen).to(dev, dtype), "next_values": _normal(shape, gen).to(dev, dtype)}
        args |= {"terminated": term.to(dev), "truncated": trunc.to(dev)}
        flags = {"terminated": term.to(dev), "truncated": trunc.to(dev), "last": last.to(dev)}
        cases.append(_Case(name, args, {"gamma": gamma, "lam": lam}, flags))
    return _judge(fn, cases, lambda_returns, _LAMBDA_BUGS, ("returns",))


def _token_gae_reference(rewards: Tensor, values: Tensor, mask: Tensor, *, gamma: float, lam: float) -> Tensor:
    next_values = next_valid_values(values, mask)
    return gae(rewards, values, next_values, torch.zeros_like(mask), gamma=gamma, lam=lam, mask=mask)[0]


def _response_masks(gen: torch.Generator, n: int, t: int, tool_tokens: bool) -> Tensor:
    """``(n, t)`` masks: responses of random lengths, row 1 all padding, tool tokens inside if asked."""
    lengths = torch.randint(2, t + 1, (n,), generator=gen)
    lengths[0] = t  # a response that fills the budget
    mask = torch.arange(t) < lengths.unsqueeze(1)
    mask[1] = False  # all padding
    if tool_tokens:
        mask &= ~_flags((n, t), 0.25, gen)
    return mask


_TOKEN_BUGS = (
    _Known(
        bugs.token_gae_through_mask,
        "your trace runs through masked positions (first wrong at {where}): skip them; a token "
        "bootstraps from the value of the next valid token (0 after the last one)",
        "after_masked",
    ),
)


def check_token_gae(fn: Callable[..., Any], *, device: str | torch.device = "cpu", seed: int = 0) -> Verdict:
    """Check a reader's masked token-level GAE against :func:`gaebook.gae` with ``mask``.

    ``fn(rewards, values, mask, *, gamma, lam)`` gets float ``(B, T)`` rewards (the score on each
    response's last valid token, small KL terms elsewhere, 0 at masked positions) and values
    (arbitrary at masked positions, as a critic leaves them) and a bool ``(B, T)`` mask, and returns
    advantages ``(B, T)``, 0 at masked positions.
    """
    gen, dev = _generator(seed), _device(device)
    cases = []
    specs = [
        ("responses with trailing padding and an all-padding row", 4, 12, False, 1.0, 0.95, torch.float64),
        ("tool tokens inside the responses", 5, 16, True, 0.99, 0.9, torch.float64),
        ("tool tokens and padding, float32", 6, 20, True, 1.0, 0.8, torch.float32),
    ]
    for name, n, t, tools, gamma, lam, dtype in specs:
        mask = _response_masks(gen, n, t, tools)
        rewards = 0.05 * _normal((n, t), gen) * mask
        positions = torch.arange(t)
        last_token = torch.where(mask, positions, -1).amax(1)
        rows = (last_token >= 0).nonzero().squeeze(1)
        rewards[rows, last_token[rows]] += (torch.rand(len(rows), generator=gen, dtype=torch.float64) < 0.5).double()
        after_masked = torch.cat([~mask[:, 1:], torch.ones(n, 1, dtype=torch.bool)], dim=1) & mask
        args = {"rewards": rewards.to(dev, dtype), "values": _normal((n, t), gen).to(dev, dtype), "mask": mask.to(dev)}
        flags = {"after_masked": after_masked.to(dev), "masked": (~mask).to(dev)}
        cases.append(_Case(name, args, {"gamma": gamma, "lam": lam}, flags))
    return _judge(fn, cases, _token_gae_reference, _TOKEN_BUGS, ("advantages",), zero_at="masked")


_WHITEN_BUGS = (
    _Known(
        bugs.whiten_over_padding,
        "you whiten over padding: take the mean and standard deviation over the valid positions only",
    ),
    _Known(
        bugs.whiten_per_row,
        "you whiten each row with its own statistics: use one mean and one standard deviation for the whole batch",
    ),
    _Known(
        bugs.whiten_biased_variance,
        "your variance divides by n: gaebook (as TRL) uses the unbiased one, divided by n − 1",
    ),
)


def check_masked_whiten(fn: Callable[..., Any], *, device: str | torch.device = "cpu", seed: int = 0) -> Verdict:
    """Check a reader's masked whitening against :func:`gaebook.reductions.masked_whiten`.

    ``fn(x, mask)`` gets float ``(B, T)`` values (arbitrary at masked positions) and a bool mask of
    that shape, and returns ``(x − mean) / (std + eps)`` with the statistics of the valid positions
    (the unbiased variance; any ``eps`` of ``1e-8`` or less), 0 at masked positions.
    """
    gen, dev = _generator(seed), _device(device)
    cases = []
    for name, n, t, tools, dtype in [
        ("responses with trailing padding and an all-padding row", 4, 10, False, torch.float64),
        ("gaps inside the rows", 6, 16, True, torch.float64),
        ("float32", 8, 24, True, torch.float32),
    ]:
        mask = _response_masks(gen, n, t, tools)
        x = 3.0 + 2.0 * _normal((n, t), gen) + torch.arange(n).unsqueeze(1)  # rows differ in mean
        args = {"x": x.to(dev, dtype), "mask": mask.to(dev)}
        cases.append(_Case(name, args, {}, {"masked": (~mask).to(dev)}))
    return _judge(fn, cases, masked_whiten, _WHITEN_BUGS, ("whitened values",), zero_at="masked")


def _ppo_reference(log_probs: Tensor, old_log_probs: Tensor, advantages: Tensor, *, clip_coef: float) -> Tensor:
    """The mean of :func:`gaebook.ppo.clipped_surrogate`, the loss ``check_ppo_loss`` asks for."""
    return clipped_surrogate(log_probs, old_log_probs, advantages, clip_coef=clip_coef).mean()


_PPO_BUGS = (
    _Known(
        bugs.ppo_min_of_losses,
        "you take the smaller of the two losses (an optimistic bound): PPO takes the larger, "
        "max(−A·r, −A·clip(r, 1 − ε, 1 + ε)), the minimum of the objectives",
    ),
    _Known(bugs.ppo_inverted_ratio, "your ratio is upside down: r = π/π_old = exp(log_probs − old_log_probs)"),
    _Known(
        bugs.ppo_objective_not_loss,
        "you return the objective, to be maximised: the loss is its negative, to be minimised",
    ),
    _Known(bugs.ppo_no_clip, "you do not clip: the surrogate must use clip(r, 1 − ε, 1 + ε) as well as r"),
)


def check_ppo_loss(fn: Callable[..., Any], *, device: str | torch.device = "cpu", seed: int = 0) -> Verdict:
    """Check a reader's PPO clipped surrogate loss against :func:`gaebook.ppo.clipped_surrogate`.

    ``fn(log_probs, old_log_probs, advantages, *, clip_coef)`` gets float tensors of one shape
    and returns the 0-d mean of ``max(−A·r, −A·clip(r, 1 − ε, 1 + ε))`` with ``r = exp(log_probs −
    old_log_probs)``.
    """
    gen, dev = _generator(seed), _device(device)
    cases = []
    for name, shape, clip_coef, dtype in [
        ("a batch of 64 actions", (64,), 0.2, torch.float64),
        ("a batch of 4 responses of 16 tokens", (4, 16), 0.1, torch.float64),
        ("float32", (8, 32), 0.3, torch.float32),
    ]:
        log_probs = -torch.rand(shape, generator=gen, dtype=torch.float64) * 3
        old = log_probs + 0.4 * _normal(shape, gen)  # ratios on both sides of the clip range
        args = {"log_probs": log_probs, "old_log_probs": old, "advantages": _normal(shape, gen) + 0.3}
        cases.append(_Case(name, {k: v.to(dev, dtype) for k, v in args.items()}, {"clip_coef": clip_coef}))
    return _judge(fn, cases, _ppo_reference, _PPO_BUGS, ("loss",))


_GRPO_BUGS = (
    _Known(
        bugs.grpo_over_batch,
        "you normalise GRPO over the batch, not the group: each prompt's answers get their own mean and std",
    ),
    _Known(
        bugs.grpo_wrong_axis,
        "you normalise GRPO over the wrong axis: rewards.view(-1, group_size) puts one prompt's group "
        "in a row; reduce over dim 1",
    ),
    _Known(
        bugs.grpo_no_eps,
        "a group of identical scores gives 0/0 = NaN (first at {where}): divide by std + 1e-4",
        "identical",
    ),
    _Known(
        bugs.grpo_biased_std,
        "your standard deviation divides by G: GRPO (as TRL) uses the sample one, divided by G − 1",
    ),
)


def check_grpo_advantages(fn: Callable[..., Any], *, device: str | torch.device = "cpu", seed: int = 0) -> Verdict:
    """Check a reader's GRPO advantages against :func:`gaebook.lm.token_mdp.grpo_advantages`.

    ``fn(rewards, group_size)`` gets float ``(B,)`` rewards grouped contiguously (rows ``k·G … k·G
    + G − 1`` answer prompt ``k``) and returns ``(R − mean) / (std + eps)`` within each group, with
    the sample standard deviation; any ``eps`` up to ``1e-4`` passes.
    """
    gen, dev = _generator(seed), _device(device)
    cases = []
    for name, n_prompts, group_size, binary, dtype in [
        ("0/1 scores, one group all wrong and one all right", 3, 4, True, torch.float64),
        ("graded scores, a group of identical scores", 5, 8, False, torch.float64),
        ("groups of 2, float32", 6, 2, True, torch.float32),
    ]:
        if binary:
            r = (torch.rand(n_prompts, group_size, generator=gen) < 0.5).double()
            r[0, :] = 0.0
            r[-1, :] = 1.0
            r[1, :2] = torch.tensor([0.0, 1.0], dtype=torch.float64)  # a group with both
        else:
            r = 4 * torch.rand(n_prompts, group_size, generator=gen, dtype=torch.float64)
            r[2, :] = 0.7
        identical = (r == r[:, :1]).all(1, keepdim=True).expand_as(r).reshape(-1)
        args = {"rewards": r.reshape(-1).to(dev, dtype)}
        cases.append(_Case(name, args, {"group_size": group_size}, {"identical": identical.to(dev)}, ("group_size",)))
    return _judge(fn, cases, grpo_advantages, _GRPO_BUGS, ("advantages",), loose=True)


def _next_step_reference(
    rewards: Tensor,
    values: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    last_value: Tensor,
    *,
    gamma: float,
    lam: float,
) -> Tensor:
    # the row after an end is the autoreset step; its observation is the ended episode's final
    # one, so the next row's value is the right bootstrap at every real step
    done = terminated | truncated
    real = torch.cat([torch.ones_like(done[..., :1]), ~done[..., :-1]], dim=-1)
    next_values = torch.cat([values[..., 1:], last_value.unsqueeze(-1)], dim=-1)
    return gae(rewards, values, next_values, terminated, truncated, gamma=gamma, lam=lam, mask=real)[0]


_NEXT_STEP_BUGS = (
    _Known(
        bugs.next_step_trains_on_autoreset,
        "you train on the autoreset step at {where}: under Gymnasium's NEXT_STEP the row after an "
        "episode end is a dummy step (reward 0, action ignored); give it no advantage (mask it)",
        "dummy",
    ),
)


def check_next_step_gae(fn: Callable[..., Any], *, device: str | torch.device = "cpu", seed: int = 0) -> Verdict:
    """Check a reader's GAE for a rollout recorded under Gymnasium's ``NEXT_STEP`` autoreset.

    ``fn(rewards, values, terminated, truncated, last_value, *, gamma, lam)`` gets float ``(N, T)``
    rewards and values (``values[..., t]`` the value of the observation row ``t`` acted on), bool
    ``(N, T)`` flags, and ``last_value`` ``(N,)``; it returns advantages ``(N, T)``, 0 at the
    autoreset rows (the rows after an episode end).
    """
    gen, dev = _generator(seed), _device(device)
    cases = []
    for name, n, t, dtype in [
        ("episode ends, one at the last row", 3, 20, torch.float64),
        ("float32", 5, 32, torch.float32),
    ]:
        ends = _flags((n, t), 0.15, gen)
        ends[0, -1] = True
        ends[1, 3] = True
        ends[..., 1:] &= ~ends[..., :-1].clone()  # an autoreset row ends nothing
        terminated = ends & _flags((n, t), 0.5, gen)
        terminated[1, 3] = True
        truncated = ends & ~terminated
        dummy = torch.cat([torch.zeros(n, 1, dtype=torch.bool), ends[..., :-1]], dim=-1)
        rewards = _normal((n, t), gen).masked_fill(dummy, 0.0)
        args = {"rewards": rewards, "values": _normal((n, t), gen)}
        args = {k: v.to(dev, dtype) for k, v in args.items()}
        args |= {"terminated": terminated.to(dev), "truncated": truncated.to(dev)}
        args["last_value"] = _normal((n,), gen).to(dev, dtype)
        cases.append(_Case(name, args, {"gamma": 0.99, "lam": 0.95}, {"dummy": dummy.to(dev)}))
    return _judge(fn, cases, _next_step_reference, _NEXT_STEP_BUGS, ("advantages",), zero_at="dummy")
