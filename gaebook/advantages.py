"""Advantage estimators: generalized advantage estimation and the estimators it interpolates.

Layout: every estimator takes ``time_dim``, the dimension of its inputs that is time, and
every other dimension is a batch dimension. The default, ``time_dim=-1``, puts **time last**: a
batch of ``N`` rollouts of ``T`` steps is ``(N, T)`` and a batch of token sequences is ``(B, L)``.
The rollout buffers of Stable-Baselines3, CleanRL and PureJaxRL are time-major, ``(T, N)`` (or
``(T, N, ...)``): pass them with ``time_dim=0``. Either layout is solved as it lies in memory, with
no transposed copy, and the outputs have the inputs' shape and layout. (TorchRL's functional
estimators, such as ``torchrl.objectives.value.functional.generalized_advantage_estimate``, take
a ``time_dim`` too, but default to ``-2``: their tensors are ``[*B, T, *F]`` with trailing feature
dimensions, usually ``(N, T, 1)``.) Every function takes tensors and returns tensors on the same
device and with the same floating dtype (except :func:`gae_reference`, the float64 oracle).
Nothing is moved to the host unless ``check_finite=True`` asks for a value check.

For a step ``t`` of a rollout (written for time last; with another ``time_dim`` the index ``t``
runs along that dimension):

* ``rewards[..., t]`` is the reward for the action taken at ``t``;
* ``values[..., t]`` is the critic's ``V(s_t)``;
* ``next_values[..., t]`` is ``V(s_{t+1})``, the value of the state the step reached. For a
  truncated episode this is the value of the true final observation, not of the reset one;
* ``terminated[..., t]`` says that ``s_{t+1}`` is terminal (its value is zero by definition);
* ``truncated[..., t]`` says that the episode was cut at ``t`` (by a time limit or the end of
  the rollout of an episode); the value of ``s_{t+1}`` still counts.

An episode ends at ``t`` when ``terminated or truncated``: no trace crosses that boundary.
"""

from __future__ import annotations

import math
from numbers import Real

import torch
from torch import Tensor

from gaebook.scan import check_time_dim, reverse_linear_scan

__all__ = [
    "discounted_returns",
    "gae",
    "gae_reference",
    "lambda_returns",
    "next_valid_values",
    "nstep_advantages",
    "td_residuals",
]

Coefficient = float | Tensor


def _check_tensor(name: str, x: object) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    return x


def _check_inputs(
    floats: dict[str, Tensor | None],
    flags: dict[str, Tensor | None],
    check_finite: bool,
    time_dim: object,
) -> tuple[Tensor, int]:
    """Check shapes, dtypes, devices and ``time_dim``.

    Returns the first float tensor (the reference) and ``time_dim`` as an index in ``[0, ndim)``.
    """
    present = {k: _check_tensor(k, v) for k, v in floats.items() if v is not None}
    ref_name, ref = next(iter(present.items()))
    if ref.ndim == 0:
        raise ValueError(f"{ref_name} must have a time dimension; got a 0-d tensor")
    dim = check_time_dim(time_dim, ref.ndim)
    for name, x in present.items():
        if not x.dtype.is_floating_point:
            raise TypeError(
                f"{name} must have a real floating dtype (float16, bfloat16, float32, float64); got {x.dtype}"
            )
        if x.dtype != ref.dtype:
            raise TypeError(f"{name} has dtype {x.dtype} but {ref_name} has {ref.dtype}; use one dtype")
    tensors = dict(present)
    for name, f in flags.items():
        if f is None:
            continue
        _check_tensor(name, f)
        if f.dtype != torch.bool:
            raise TypeError(f"{name} must be a bool tensor; got {f.dtype} (convert with .bool())")
        tensors[name] = f
    for name, x in tensors.items():
        if x.shape != ref.shape:
            raise ValueError(
                f"{name} has shape {tuple(x.shape)} but {ref_name} has {tuple(ref.shape)}; "
                "all inputs share one shape, time at time_dim"
            )
        if x.device != ref.device:
            raise ValueError(f"{name} is on {x.device} but {ref_name} is on {ref.device}")
    # One cheap pass and one sync: a sum is finite unless an input holds NaN/inf (or the sum
    # overflows, which the per-input check below then clears).
    if check_finite and not bool(torch.isfinite(torch.stack([x.sum() for x in present.values()]).sum())):
        for name, x in present.items():
            if not bool(torch.isfinite(x).all()):
                raise ValueError(f"{name} contains NaN or inf (pass check_finite=False to skip this check)")
    return ref, dim


def _batch_shape(ref: Tensor, dim: int) -> torch.Size:
    """The inputs' shape without its time dimension."""
    return ref.shape[:dim] + ref.shape[dim + 1 :]


def _check_coefficient(name: str, c: object, ref: Tensor, dim: int, check_finite: bool) -> Coefficient:
    """Validate gamma or lam; return a float or a tensor that broadcasts against the inputs.

    A tensor must broadcast (NumPy's rules, aligned on the right) to the batch shape, the inputs'
    shape without dimension ``dim``; it comes back with that many dimensions and a size-1 time
    dimension inserted at ``dim``.
    """
    if isinstance(c, Tensor):
        batch = _batch_shape(ref, dim)
        if not c.dtype.is_floating_point:
            raise TypeError(f"{name} must be a float or a floating tensor; got a tensor of {c.dtype}")
        if c.device != ref.device:
            raise ValueError(f"{name} is on {c.device} but the inputs are on {ref.device}")
        try:
            ok = torch.broadcast_shapes(c.shape, batch) == batch
        except RuntimeError:
            ok = False
        if not ok:
            raise ValueError(
                f"{name} has shape {tuple(c.shape)}, which does not broadcast to the batch "
                f"dimensions {tuple(batch)} (the inputs' shape without its time dimension {dim})"
            )
        if check_finite and not bool(((c >= 0) & (c <= 1)).all()):
            raise ValueError(f"{name} must lie in [0, 1]; some entries do not")
        return c.to(ref.dtype).reshape((1,) * (len(batch) - c.ndim) + c.shape).unsqueeze(dim)
    if isinstance(c, bool) or not isinstance(c, Real):
        raise TypeError(f"{name} must be a float in [0, 1] or a tensor; got {type(c).__name__}")
    if not 0.0 <= float(c) <= 1.0:  # also rejects NaN
        raise ValueError(f"{name} must lie in [0, 1]; got {c}")
    return float(c)


def _continues(terminated: Tensor, truncated: Tensor | None, dtype: torch.dtype) -> Tensor:
    """``1 − done`` as a ``dtype`` tensor: 1 where the episode goes on after the step."""
    done = terminated if truncated is None else terminated | truncated
    return (~done).view(torch.uint8).to(dtype)  # via uint8: a bool → float cast is several times slower


def _add_scaled(x: Tensor, c: Coefficient, y: Tensor) -> Tensor:
    """``x + c·y`` in place in ``x``, for a float or a tensor ``c``."""
    return x.add_(y, alpha=c) if isinstance(c, float) else x.addcmul_(c, y)


def _td_errors(
    rewards: Tensor, values: Tensor, next_values: Tensor, terminated: Tensor, g: Coefficient
) -> tuple[Tensor, Tensor]:
    """``δ_t = r_t + γ·(1 − terminated_t)·V(s_{t+1}) − V(s_t)``, and a spare tensor of its shape."""
    # V(s_{t+1}) = 0 after termination, whatever next_values holds there (NaN included)
    bootstrap = torch.where(terminated, 0.0, next_values)
    return _add_scaled(rewards - values, g, bootstrap), bootstrap


def td_residuals(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    *,
    gamma: Coefficient,
    check_finite: bool = True,
    time_dim: int = -1,
) -> Tensor:
    """One-step temporal-difference errors ``δ_t = r_t + γ·(1 − terminated_t)·V(s_{t+1}) − V(s_t)``.

    Args:
        rewards, values, next_values: floating tensors of one shape, time at ``time_dim``.
        terminated: bool tensor of that shape; a terminal next state has value zero.
        gamma: discount in [0, 1], a float or a tensor broadcastable to the batch shape (as in :func:`gae`).
        check_finite: check inputs for NaN/inf (reads values, so it syncs with the device).
        time_dim: the dimension that is time, as in :func:`gae`.

    Returns:
        ``δ`` of the inputs' shape.
    """
    ref, dim = _check_inputs(
        {"rewards": rewards, "values": values, "next_values": next_values},
        {"terminated": terminated},
        check_finite,
        time_dim,
    )
    g = _check_coefficient("gamma", gamma, ref, dim, check_finite)
    return _td_errors(rewards, values, next_values, terminated, g)[0]


def gae(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    truncated: Tensor | None = None,
    *,
    gamma: Coefficient,
    lam: Coefficient,
    mask: Tensor | None = None,
    check_finite: bool = True,
    time_dim: int = -1,
) -> tuple[Tensor, Tensor]:
    """Generalized advantage estimation (Schulman et al., 2016) with explicit episode ends.

    ``δ_t = r_t + γ·(1 − terminated_t)·next_values_t − values_t`` and, backwards in time,
    ``A_t = δ_t + γλ·(1 − done_t)·A_{t+1}`` with ``done = terminated | truncated``; the last step
    has ``A = δ`` (``next_values`` carries the bootstrap).

    With ``mask``, positions where it is ``False`` are not the policy's actions (padding, or
    tool/observation tokens inside a sequence): they get advantage 0 and return 0, and the trace
    passes over them, ``A_t = δ_t + γλ·(1 − done_t)·A_{t'}`` with ``t'`` the next valid position.
    ``δ_t`` still uses ``next_values[t]``; build it with :func:`next_valid_values`.

    Args:
        rewards, values, next_values: floating tensors of one shape, one dtype and device: ``(..., T)``
            with time last (the default), ``(T, ...)`` with ``time_dim=0``.
        terminated: bool, same shape: the next state is terminal (no bootstrap, trace cut).
        truncated: optional bool, same shape: the episode was cut here (bootstrap, trace cut).
        gamma, lam: floats in [0, 1], or tensors that broadcast (NumPy's rules, aligned on the
            right) to the batch shape, the inputs' shape without the time dimension: ``(N,)`` gives
            each sequence its own value both for ``(N, T)`` inputs with ``time_dim=-1`` and for
            ``(T, N)`` with ``time_dim=0``; for ``(T, B, N)`` with ``time_dim=0`` it is ``(B, N)``,
            ``(N,)`` or ``(B, 1)``.
        mask: optional bool, same shape, ``True`` where the position is a policy action.
        check_finite: check for NaN/inf and, for tensor ``gamma``/``lam``, the range [0, 1]. It
            reads values, so it synchronises with the device; ``False`` skips it.
        time_dim: the dimension of the inputs that is time (an int, negative counts from the
            end). ``-1`` for time last; ``0`` for time-major buffers, which are solved in their
            own layout, without a transposed copy and with as many dispatched operations.

    Returns:
        ``(advantages, returns)``, each of the inputs' shape, time at ``time_dim``;
        ``returns = advantages + values`` (the λ-return) at valid positions and 0 at masked ones.
    """
    ref, dim = _check_inputs(
        {"rewards": rewards, "values": values, "next_values": next_values},
        {"terminated": terminated, "truncated": truncated, "mask": mask},
        check_finite,
        time_dim,
    )
    g = _check_coefficient("gamma", gamma, ref, dim, check_finite)
    lam_ = _check_coefficient("lam", lam, ref, dim, check_finite)
    deltas, decay = _td_errors(rewards, values, next_values, terminated, g)
    # γλ·(1 − done_t), written over the spare tensor (via uint8: a bool → float cast, or a masked
    # fill, is several times slower on a CPU)
    done = terminated if truncated is None else terminated | truncated
    goes_on = ~done if mask is None else ~done & mask
    decay.copy_(goes_on.view(torch.uint8)).mul_(g * lam_)
    if mask is not None:
        # A masked position contributes nothing (δ = 0) and passes the trace on unchanged (decay 1).
        skipped = ~mask
        deltas.masked_fill_(skipped, 0)
        decay.add_(skipped.view(torch.uint8))
    advantages = reverse_linear_scan(deltas, decay, time_dim=dim, overwrite=True)
    returns = torch.add(advantages, values, out=decay)  # the scan left decay's memory free
    if mask is not None:
        advantages.masked_fill_(skipped, 0)
        returns.masked_fill_(skipped, 0)
    return advantages, returns


def gae_reference(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    truncated: Tensor | None = None,
    *,
    gamma: Coefficient,
    lam: Coefficient,
    mask: Tensor | None = None,
    check_finite: bool = True,
    time_dim: int = -1,
) -> tuple[Tensor, Tensor]:
    """The textbook reverse loop, one sequence at a time in float64 Python arithmetic.

    Same arguments and meaning as :func:`gae`; it is the oracle the fast version is tested
    against, and slow on purpose (it copies everything to the host). Returns contiguous float64
    tensors of the inputs' shape, time at ``time_dim``, on the inputs' device.
    """
    ref, dim = _check_inputs(
        {"rewards": rewards, "values": values, "next_values": next_values},
        {"terminated": terminated, "truncated": truncated, "mask": mask},
        check_finite,
        time_dim,
    )
    batch = _batch_shape(ref, dim)
    n_steps = ref.shape[dim]
    n_seq = math.prod(batch)

    def rows(x: Tensor | None, fill: bool = False) -> list[list]:
        if x is None:
            return [[fill] * n_steps for _ in range(n_seq)]
        return x.movedim(dim, -1).reshape(n_seq, n_steps).tolist()

    def per_sequence(name: str, c: Coefficient) -> list[float]:
        c = _check_coefficient(name, c, ref, dim, check_finite)
        if isinstance(c, float):
            return [c] * n_seq
        return c.squeeze(dim).double().expand(batch).reshape(n_seq).tolist()

    r, v, nv = rows(rewards), rows(values), rows(next_values)
    term, trunc, valid = rows(terminated), rows(truncated), rows(mask, fill=True)
    gammas, lams = per_sequence("gamma", gamma), per_sequence("lam", lam)
    adv = [[0.0] * n_steps for _ in range(n_seq)]
    ret = [[0.0] * n_steps for _ in range(n_seq)]
    for i in range(n_seq):
        g, lam_i = gammas[i], lams[i]
        next_advantage = 0.0  # advantage at the next valid position
        for t in reversed(range(n_steps)):
            if not valid[i][t]:
                continue
            delta = r[i][t] + g * (0.0 if term[i][t] else nv[i][t]) - v[i][t]
            done = term[i][t] or trunc[i][t]
            a = delta + (0.0 if done else g * lam_i * next_advantage)
            adv[i][t], ret[i][t] = a, a + v[i][t]
            next_advantage = a

    def as_tensor(x: list[list[float]]) -> Tensor:
        time_last = torch.tensor(x, dtype=torch.float64, device=ref.device).reshape(*batch, n_steps)
        return time_last.movedim(-1, dim).contiguous()

    return as_tensor(adv), as_tensor(ret)


def next_valid_values(
    values: Tensor, mask: Tensor | None = None, *, last: Tensor | None = None, time_dim: int = -1
) -> Tensor:
    """``next_values`` for :func:`gae`: the value of the next valid position.

    Without ``mask`` this is ``values`` shifted one step back in time, ending in ``last``. With
    ``mask`` the next position skips masked ones (as multi-turn LLM rollouts need: tool output
    between two turns is not an action of the policy), and the last valid position gets ``last``.

    Args:
        values: floating, time at ``time_dim``: ``(..., T)`` by default, ``(T, ...)`` with ``time_dim=0``.
        mask: optional bool of the same shape, ``True`` at valid positions.
        last: optional bootstrap value after the final valid position, of the batch shape
            (``values``' shape without the time dimension); zeros if omitted (the sequence ended at
            a terminal state, as an LLM response that emitted EOS).
        time_dim: the dimension that is time, as in :func:`gae`.

    Returns:
        ``values``' shape; entries at masked positions are the next valid value too and are
        ignored by :func:`gae`. Exact for finite values (a copy, not an estimate), in
        O(log T) dispatched operations with the scan of :mod:`gaebook.scan`.
    """
    ref, dim = _check_inputs({"values": values}, {"mask": mask}, False, time_dim)
    batch = _batch_shape(ref, dim)
    if last is None:
        last = ref.new_zeros(batch)
    else:
        _check_tensor("last", last)
        if last.shape != batch or last.dtype != ref.dtype or last.device != ref.device:
            raise ValueError(
                f"last must be a {ref.dtype} tensor of shape {tuple(batch)} on {ref.device}; "
                f"got {last.dtype} {tuple(last.shape)} on {last.device}"
            )
    n_steps = values.shape[dim]
    if mask is None:
        return torch.cat([values.narrow(dim, 1, n_steps - 1), last.unsqueeze(dim)], dim=dim)
    # y_t, the value at the first valid position at or after t (last past the end), obeys the scan's
    # recurrence y_t = m_t·v_t + (1 − m_t)·y_{t+1}: every product is by 0 or 1, so it is exact
    passes = (~mask).view(torch.uint8).to(values.dtype)
    first = torch.where(mask, values, 0.0)  # the values at masked positions, NaN included, are never read
    first.select(dim, -1).addcmul_(passes.select(dim, -1), last)  # y_T = last
    upcoming = reverse_linear_scan(first, passes, time_dim=dim, overwrite=True)
    return torch.cat([upcoming.narrow(dim, 1, n_steps - 1), last.unsqueeze(dim)], dim=dim)


def nstep_advantages(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    truncated: Tensor | None = None,
    *,
    gamma: Coefficient,
    n: int,
    check_finite: bool = True,
    time_dim: int = -1,
) -> Tensor:
    """The ``n``-step advantage ``Â⁽ⁿ⁾_t = Σ_{l<n} γ^l δ_{t+l}``, cut at episode ends and at ``T``.

    Equivalently ``r_t + … + γ^{n−1} r_{t+n−1} + γ^n V(s_{t+n}) − V(s_t)`` (the sum telescopes).
    A window that meets an episode end or the end of the rollout stops there, bootstrapping
    from ``next_values`` at that step (or not at all if the episode terminated).

    Args:
        rewards, values, next_values: floating, one shape, time at ``time_dim``.
        terminated, truncated: bool, same shape, as in :func:`gae`.
        gamma: float in [0, 1] or tensor broadcastable to the batch shape (as in :func:`gae`).
        n: positive number of steps; ``n = 1`` gives ``δ``, ``n ≥ T`` the Monte Carlo-like limit.
        time_dim: the dimension that is time, as in :func:`gae`.

    Returns:
        The inputs' shape.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int; got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n must be at least 1; got {n}")
    ref, dim = _check_inputs(
        {"rewards": rewards, "values": values, "next_values": next_values},
        {"terminated": terminated, "truncated": truncated},
        check_finite,
        time_dim,
    )
    g = _check_coefficient("gamma", gamma, ref, dim, check_finite)
    deltas = _td_errors(rewards, values, next_values, terminated, g)[0]
    carry_on = (g * _continues(terminated, truncated, deltas.dtype)).expand_as(deltas)
    n_steps = deltas.shape[dim]
    total = deltas.clone()
    weight = torch.ones_like(deltas)
    for shift in range(1, min(n, n_steps)):
        # weight[t] = Π_{j<shift} γ(1 − done_{t+j}); it multiplies δ_{t+shift}
        kept = n_steps - shift
        weight = weight.narrow(dim, 0, kept) * carry_on.narrow(dim, shift - 1, kept)
        total.narrow(dim, 0, kept).addcmul_(weight, deltas.narrow(dim, shift, kept))
    return total


def discounted_returns(
    rewards: Tensor,
    terminated: Tensor,
    truncated: Tensor | None = None,
    *,
    gamma: Coefficient,
    check_finite: bool = True,
    time_dim: int = -1,
) -> Tensor:
    """Monte Carlo returns ``G_t = r_t + γ·(1 − done_t)·G_{t+1}``, with ``G = r`` at the last step.

    No bootstrap: a truncated episode's return simply stops (use :func:`lambda_returns` with
    ``lam=1`` to bootstrap from the critic instead).

    Args:
        rewards: floating, time at ``time_dim``.
        terminated, truncated: bool, same shape.
        gamma: float in [0, 1] or tensor broadcastable to the batch shape (as in :func:`gae`).
        time_dim: the dimension that is time, as in :func:`gae`.

    Returns:
        ``rewards``' shape.
    """
    ref, dim = _check_inputs(
        {"rewards": rewards}, {"terminated": terminated, "truncated": truncated}, check_finite, time_dim
    )
    g = _check_coefficient("gamma", gamma, ref, dim, check_finite)
    decay = (g * _continues(terminated, truncated, rewards.dtype)).expand_as(rewards)
    return reverse_linear_scan(rewards, decay, time_dim=dim)


def lambda_returns(
    rewards: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    truncated: Tensor | None = None,
    *,
    gamma: Coefficient,
    lam: Coefficient,
    check_finite: bool = True,
    time_dim: int = -1,
) -> Tensor:
    """The λ-return by its own recursion, ``G^λ_t = r_t + γ(1 − terminated_t)[(1 − λ)V(s_{t+1}) + λG^λ_{t+1}]``.

    At an episode end (or the last step) the bracket is just ``V(s_{t+1})``. It needs no
    ``values``: it is the critic's regression target. Whenever ``next_values[t] == values[t+1]``
    inside an episode (as in any real rollout) it equals ``advantages + values`` from
    :func:`gae`, the identity chapter 4 proves.

    Args:
        rewards, next_values: floating, one shape, time at ``time_dim``.
        terminated, truncated: bool, same shape.
        gamma, lam: floats in [0, 1] or tensors broadcastable to the batch shape (as in :func:`gae`).
        time_dim: the dimension that is time, as in :func:`gae`.

    Returns:
        The inputs' shape.
    """
    ref, dim = _check_inputs(
        {"rewards": rewards, "next_values": next_values},
        {"terminated": terminated, "truncated": truncated},
        check_finite,
        time_dim,
    )
    g = _check_coefficient("gamma", gamma, ref, dim, check_finite)
    lam_ = _check_coefficient("lam", lam, ref, dim, check_finite)
    alive = (~terminated).to(rewards.dtype)
    cont = _continues(terminated, truncated, rewards.dtype)
    cont.select(dim, -1).zero_()  # the rollout's last step bootstraps fully from next_values
    # G_t = [r_t + γ·alive·(1 − λ·cont)·V_{t+1}] + [γλ·cont]·G_{t+1}   (cont implies alive)
    base = rewards + g * alive * (1 - lam_ * cont) * next_values
    return reverse_linear_scan(base, (g * lam_ * cont).expand_as(rewards), time_dim=dim, overwrite=True)
