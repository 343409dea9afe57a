"""Tests of gaebook.advantages: the contract every chapter and benchmark relies on."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import pytest
import torch
from host_traffic import host_traffic
from hypothesis import given
from hypothesis import strategies as st
from scan_helpers import chunked, time_last_copies

from gaebook.advantages import (
    discounted_returns,
    gae,
    gae_reference,
    lambda_returns,
    next_valid_values,
    nstep_advantages,
    td_residuals,
)
from gaebook.profiling import dispatched_ops


def rollout(seed: int, shape: tuple[int, ...], p_term: float = 0.1, p_trunc: float = 0.1, p_mask: float = 0.0):
    """Random float32 inputs with flags; a generator makes every case reproducible."""
    g = torch.Generator().manual_seed(seed)
    r, v, nv = (torch.randn(shape, generator=g) for _ in range(3))
    term = torch.rand(shape, generator=g) < p_term
    trunc = torch.rand(shape, generator=g) < p_trunc
    mask = torch.rand(shape, generator=g) >= p_mask
    return r, v, nv, term, trunc, mask


shapes = st.lists(st.integers(1, 4), min_size=0, max_size=2).flatmap(
    lambda batch: st.integers(1, 40).map(lambda t: (*batch, t))
)
unit = st.floats(0.0, 1.0)


@given(
    seed=st.integers(0, 2**31 - 1),
    shape=shapes,
    gamma=unit,
    lam=unit,
    p_term=st.sampled_from([0.0, 0.1, 0.5]),
    p_trunc=st.sampled_from([0.0, 0.1, 0.5]),
    p_mask=st.sampled_from([None, 0.0, 0.3, 0.9]),
)
def test_gae_equals_reference(seed, shape, gamma, lam, p_term, p_trunc, p_mask):
    r, v, nv, term, trunc, mask = rollout(seed, shape, p_term, p_trunc, p_mask or 0.0)
    mask = None if p_mask is None else mask
    adv, ret = gae(r, v, nv, term, trunc, gamma=gamma, lam=lam, mask=mask)
    ref_adv, ref_ret = gae_reference(r, v, nv, term, trunc, gamma=gamma, lam=lam, mask=mask)
    assert adv.dtype == torch.float32 and adv.shape == r.shape
    torch.testing.assert_close(adv.double(), ref_adv, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ret.double(), ref_ret, rtol=1e-5, atol=1e-5)


@given(seed=st.integers(0, 2**31 - 1), batch=st.integers(1, 5), steps=st.integers(1, 30))
def test_per_sequence_gamma_and_lambda(seed, batch, steps):
    r, v, nv, term, trunc, mask = rollout(seed, (batch, steps), p_mask=0.3)
    g = torch.Generator().manual_seed(seed + 1)
    gamma, lam = torch.rand(batch, generator=g), torch.rand(batch, generator=g)
    adv, _ = gae(r, v, nv, term, trunc, gamma=gamma, lam=lam, mask=mask)
    for i in range(batch):  # each row must behave as if run alone with its own scalars
        row, _ = gae_reference(
            r[i], v[i], nv[i], term[i], trunc[i], gamma=gamma[i].item(), lam=lam[i].item(), mask=mask[i]
        )
        torch.testing.assert_close(adv[i].double(), row, rtol=1e-5, atol=1e-5)


@given(seed=st.integers(0, 2**31 - 1), shape=shapes, gamma=unit)
def test_lambda_zero_gives_td_residuals(seed, shape, gamma):
    r, v, nv, term, trunc, _ = rollout(seed, shape)
    adv, _ = gae(r, v, nv, term, trunc, gamma=gamma, lam=0.0)
    torch.testing.assert_close(adv, td_residuals(r, v, nv, term, gamma=gamma))
    torch.testing.assert_close(adv, nstep_advantages(r, v, nv, term, trunc, gamma=gamma, n=1))


@given(seed=st.integers(0, 2**31 - 1), shape=shapes, gamma=unit)
def test_lambda_one_without_ends_gives_monte_carlo_minus_values(seed, shape, gamma):
    r, v, _, _, _, _ = rollout(seed, shape)
    terminated = torch.zeros(shape, dtype=torch.bool)
    terminated[..., -1] = True  # one episode that ends with the rollout
    next_values = next_valid_values(v)  # consistent critic; the terminal value is ignored
    adv, _ = gae(r, v, next_values, terminated, gamma=gamma, lam=1.0)
    monte_carlo = discounted_returns(r, terminated, gamma=gamma)
    torch.testing.assert_close(adv, monte_carlo - v, rtol=1e-5, atol=1e-5)


@given(seed=st.integers(0, 2**31 - 1), steps=st.integers(1, 25), n_insert=st.integers(1, 10), lam=unit)
def test_inserting_masked_positions_changes_nothing(seed, steps, n_insert, lam):
    r, v, nv, term, trunc, _ = rollout(seed, (steps,))
    base, base_ret = gae(r, v, nv, term, trunc, gamma=0.97, lam=lam)
    g = torch.Generator().manual_seed(seed + 7)
    # interleave masked positions with arbitrary contents at random places
    where = torch.randint(0, steps + 1, (n_insert,), generator=g).sort().values
    order = torch.cat([torch.arange(steps).float(), where.float() - 0.5]).argsort()

    def extend(x, filler):
        return torch.cat([x, filler])[order]

    noise = lambda: torch.randn(n_insert, generator=g)  # noqa: E731
    coin = lambda: torch.rand(n_insert, generator=g) < 0.5  # noqa: E731
    mask = extend(torch.ones(steps, dtype=torch.bool), torch.zeros(n_insert, dtype=torch.bool))
    adv, ret = gae(
        extend(r, noise()),
        extend(v, noise()),
        extend(nv, noise()),
        extend(term, coin()),
        extend(trunc, coin()),
        gamma=0.97,
        lam=lam,
        mask=mask,
    )
    torch.testing.assert_close(adv[mask], base, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ret[mask], base_ret, rtol=1e-5, atol=1e-5)
    assert bool((adv[~mask] == 0).all()) and bool((ret[~mask] == 0).all())


def test_truncation_bootstraps_and_termination_does_not():
    r = torch.tensor([1.0, 1.0, 1.0])
    v = torch.tensor([0.5, 0.5, 0.5])
    flag = torch.tensor([False, True, False])
    none = torch.zeros(3, dtype=torch.bool)
    for bootstrap in (0.0, 10.0):
        nv = torch.tensor([0.5, bootstrap, 0.5])
        a_trunc, _ = gae(r, v, nv, none, flag, gamma=0.9, lam=0.8)
        a_term, _ = gae(r, v, nv, flag, none, gamma=0.9, lam=0.8)
        # A_1 is δ_1 alone in both cases (the trace is cut), but only truncation bootstraps
        assert a_trunc[1].item() == pytest.approx(1.0 + 0.9 * bootstrap - 0.5)
        assert a_term[1].item() == pytest.approx(1.0 - 0.5)
        delta0 = 1.0 + 0.9 * 0.5 - 0.5
        assert a_trunc[0].item() == pytest.approx(delta0 + 0.9 * 0.8 * a_trunc[1].item())


def test_episode_end_cuts_the_trace():
    r, v, nv, _, _, _ = rollout(3, (6,))
    ends = torch.tensor([False, False, True, False, False, False])
    none = torch.zeros(6, dtype=torch.bool)
    whole, _ = gae(r, v, nv, ends, none, gamma=0.9, lam=0.9)
    first, _ = gae(r[:3], v[:3], nv[:3], ends[:3], none[:3], gamma=0.9, lam=0.9)
    second, _ = gae(r[3:], v[3:], nv[3:], ends[3:], none[3:], gamma=0.9, lam=0.9)
    torch.testing.assert_close(whole, torch.cat([first, second]))


@given(seed=st.integers(0, 2**31 - 1), shape=shapes, gamma=unit, lam=unit)
def test_returns_are_lambda_returns(seed, shape, gamma, lam):
    r, v, _, term, trunc, _ = rollout(seed, shape)
    g = torch.Generator().manual_seed(seed)
    nv = next_valid_values(v, last=torch.randn(shape[:-1], generator=g))
    nv = torch.where(trunc, torch.randn(shape, generator=g), nv)  # true final observations differ
    _, ret = gae(r, v, nv, term, trunc, gamma=gamma, lam=lam)
    torch.testing.assert_close(ret, lambda_returns(r, nv, term, trunc, gamma=gamma, lam=lam), rtol=1e-5, atol=1e-5)


@given(seed=st.integers(0, 2**31 - 1), steps=st.integers(1, 30), n=st.integers(1, 35), gamma=unit)
def test_nstep_advantages_telescope(seed, steps, n, gamma):
    """Σ_{l<n} γ^l δ_{t+l} = r_t + … + γ^{n−1} r_{t+n−1} + γ^n V(s_{t+n}) − V(s_t) without episode ends."""
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(steps, generator=g, dtype=torch.float64)
    v = torch.randn(steps, generator=g, dtype=torch.float64)
    nv = next_valid_values(v, last=torch.randn((), generator=g, dtype=torch.float64))
    no = torch.zeros(steps, dtype=torch.bool)
    got = nstep_advantages(r, v, nv, no, gamma=gamma, n=n)
    for t in range(steps):
        k = min(n, steps - t)
        expected = sum(gamma**j * r[t + j].item() for j in range(k)) + gamma**k * nv[t + k - 1].item() - v[t].item()
        assert got[t].item() == pytest.approx(expected, abs=1e-9)


def test_nstep_long_window_is_lambda_one():
    r, v, nv, term, trunc, _ = rollout(11, (3, 20))
    long, _ = gae(r, v, nv, term, trunc, gamma=0.95, lam=1.0)
    torch.testing.assert_close(nstep_advantages(r, v, nv, term, trunc, gamma=0.95, n=50), long, rtol=1e-5, atol=1e-5)


def test_next_valid_values_skips_masked_positions():
    values = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0]])
    mask = torch.tensor([[True, False, False, True, False]])
    got = next_valid_values(values, mask, last=torch.tensor([9.0]))
    assert got[0, 0].item() == 4.0  # position 0 is followed by valid position 3
    assert got[0, 3].item() == 9.0  # the last valid position bootstraps from `last`
    torch.testing.assert_close(next_valid_values(values), torch.tensor([[2.0, 3.0, 4.0, 5.0, 0.0]]))


@given(
    seed=st.integers(0, 2**31 - 1),
    shape=shapes,
    p_mask=st.sampled_from([0.0, 0.3, 0.9, 1.0]),
    by_chunks=st.booleans(),
)
def test_next_valid_values_equals_a_loop_and_never_reads_masked_values(seed, shape, p_mask, by_chunks):
    g = torch.Generator().manual_seed(seed)
    values = torch.randn(shape, generator=g)
    mask = torch.rand(shape, generator=g) >= p_mask
    last = torch.randn(shape[:-1], generator=g)
    expected = torch.empty(shape)
    for index in itertools.product(*(range(k) for k in shape[:-1])):
        upcoming = last[index]
        for t in reversed(range(shape[-1])):
            expected[index][t] = upcoming
            if mask[index][t]:
                upcoming = values[index][t]
    garbage = values.masked_fill(~mask, math.nan)  # what masked positions hold must not matter
    with chunked(by_chunks):
        assert torch.equal(next_valid_values(garbage, mask, last=last), expected)


def test_discounted_returns_by_hand():
    r = torch.tensor([1.0, 2.0, 3.0, 4.0])
    ends = torch.tensor([False, True, False, False])
    got = discounted_returns(r, ends, gamma=0.5)
    torch.testing.assert_close(got, torch.tensor([1 + 0.5 * 2, 2.0, 3 + 0.5 * 4, 4.0]))


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16])
def test_dtype_is_kept(dtype):
    r, v, nv, term, trunc, mask = (x.to(dtype) if x.is_floating_point() else x for x in rollout(5, (2, 8), p_mask=0.2))
    adv, ret = gae(r, v, nv, term, trunc, gamma=0.99, lam=0.95, mask=mask)
    assert adv.dtype == dtype and ret.dtype == dtype
    ref, _ = gae_reference(r, v, nv, term, trunc, gamma=0.99, lam=0.95, mask=mask)
    tol = 1e-9 if dtype == torch.float64 else 5e-2
    torch.testing.assert_close(adv.double(), ref, rtol=tol, atol=tol)


def test_float32_accuracy_on_a_long_rollout():
    r, v, nv, term, trunc, _ = rollout(2, (100_000,), p_term=0.0, p_trunc=0.0)
    adv, _ = gae(r, v, nv, term, trunc, gamma=0.999, lam=0.99)
    ref, _ = gae_reference(r, v, nv, term, trunc, gamma=0.999, lam=0.99)
    assert ((adv.double() - ref).abs().max() / ref.abs().max()).item() < 1e-5


# --- time_dim: time-major and other layouts -------------------------------------------------------


def moved(x, time_dim: int):
    """``x`` (time last) with time moved to ``time_dim``, stored in that layout."""
    return None if x is None else x.movedim(-1, time_dim).contiguous()


# (batch shape, time_dim): time-major 2-D and 3-D, time in the middle (TorchRL's -2 with features)
layouts = st.sampled_from([((5,), 0), ((2, 3), 0), ((2, 3), 1), ((3, 2), -2), ((4,), -2)])
lengths = st.sampled_from([1, 2, 31, 32, 33, 64, 65, 100, 257]) | st.integers(1, 80)


def coefficient(draw_value: float, kind: str, batch: tuple[int, ...], seed: int):
    """A float, or a tensor of the batch shape, or of its last dimension only (broadcast)."""
    if kind == "float":
        return draw_value
    g = torch.Generator().manual_seed(seed)
    shape = batch if kind == "batch" else batch[-1:]
    return torch.rand(shape, generator=g)


@given(
    seed=st.integers(0, 2**31 - 1),
    layout=layouts,
    steps=lengths,
    gamma=unit,
    lam=unit,
    kinds=st.tuples(*[st.sampled_from(["float", "batch", "last"])] * 2),
    p_mask=st.sampled_from([None, 0.3]),
    by_chunks=st.booleans(),
)
def test_gae_time_major_equals_the_reference_on_transposed_data(
    seed, layout, steps, gamma, lam, kinds, p_mask, by_chunks
):
    batch, time_dim = layout
    r, v, nv, term, trunc, mask = rollout(seed, (*batch, steps), p_mask=p_mask or 0.0)
    mask = None if p_mask is None else mask
    gamma, lam = coefficient(gamma, kinds[0], batch, seed), coefficient(lam, kinds[1], batch, seed + 1)
    ref_adv, ref_ret = gae_reference(r, v, nv, term, trunc, gamma=gamma, lam=lam, mask=mask)  # time last
    inputs = [moved(x, time_dim) for x in (r, v, nv, term, trunc, mask)]
    with chunked(by_chunks):
        adv, ret = gae(*inputs[:5], gamma=gamma, lam=lam, mask=inputs[5], time_dim=time_dim)
    assert adv.shape == ret.shape == inputs[0].shape
    torch.testing.assert_close(adv.double(), moved(ref_adv, time_dim), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ret.double(), moved(ref_ret, time_dim), rtol=1e-5, atol=1e-5)
    # the oracle itself takes time_dim too, and returns the inputs' layout
    oracle = gae_reference(*inputs[:5], gamma=gamma, lam=lam, mask=inputs[5], time_dim=time_dim)
    assert oracle[0].stride() == inputs[0].stride()
    torch.testing.assert_close(oracle, (moved(ref_adv, time_dim), moved(ref_ret, time_dim)), rtol=0, atol=0)


@given(
    seed=st.integers(0, 2**31 - 1),
    layout=layouts,
    steps=lengths,
    gamma=unit,
    lam=unit,
    kind=st.sampled_from(["float", "batch", "last"]),
    n=st.integers(1, 5),
    by_chunks=st.booleans(),
)
def test_every_estimator_time_major_equals_time_last_on_transposed_data(
    seed, layout, steps, gamma, lam, kind, n, by_chunks
):
    batch, time_dim = layout
    r, v, nv, term, trunc, mask = rollout(seed, (*batch, steps), p_mask=0.3)
    gamma = coefficient(gamma, kind, batch, seed)
    last = torch.randn(batch, generator=torch.Generator().manual_seed(seed))
    rm, vm, nvm, termm, truncm, maskm = (moved(x, time_dim) for x in (r, v, nv, term, trunc, mask))
    kw = dict(gamma=gamma, time_dim=time_dim)
    with chunked(by_chunks):
        pairs = [
            (td_residuals(rm, vm, nvm, termm, **kw), td_residuals(r, v, nv, term, gamma=gamma)),
            (
                nstep_advantages(rm, vm, nvm, termm, truncm, n=n, **kw),
                nstep_advantages(r, v, nv, term, trunc, gamma=gamma, n=n),
            ),
            (discounted_returns(rm, termm, truncm, **kw), discounted_returns(r, term, trunc, gamma=gamma)),
            (
                lambda_returns(rm, nvm, termm, truncm, lam=lam, **kw),
                lambda_returns(r, nv, term, trunc, gamma=gamma, lam=lam),
            ),
            (next_valid_values(vm, time_dim=time_dim), next_valid_values(v)),
            (next_valid_values(vm, maskm, last=last, time_dim=time_dim), next_valid_values(v, mask, last=last)),
        ]
    for major, time_last in pairs:
        assert major.shape == rm.shape
        torch.testing.assert_close(major, moved(time_last, time_dim), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("by_chunks", [False, True])
def test_gae_solves_time_major_inputs_in_place_without_a_transposed_copy(by_chunks):
    steps, batch = 100, 7
    r, v, nv, term, trunc, mask = rollout(4, (batch, steps), p_mask=0.2)
    major = [moved(x, 0) for x in (r, v, nv, term, trunc, mask)]
    gamma = torch.full((batch,), 0.99)

    def time_major():
        return gae(*major[:5], gamma=gamma, lam=0.95, mask=major[5], check_finite=False, time_dim=0)

    def time_last():
        return gae(r, v, nv, term, trunc, gamma=gamma, lam=0.95, mask=mask, check_finite=False)

    with chunked(by_chunks):
        assert time_last_copies(time_major, steps, batch) == []
        # as many dispatched operations as the time-last call: no transpose, no extra copy
        assert sum(dispatched_ops(time_major).values()) == sum(dispatched_ops(time_last).values())
        # the check does see a transposed copy when there is one
        naive = lambda: [x.T for x in gae(*(x.T.contiguous() for x in major[:5]), gamma=gamma, lam=0.95)]  # noqa: E731
        assert time_last_copies(naive, steps, batch)


def test_gamma_broadcasts_against_the_batch_dims_of_time_major_inputs():
    r, v, nv, term, trunc, _ = rollout(6, (2, 3, 40))  # (B, N, T), time last
    gamma = torch.tensor([[0.5], [0.9]])  # (B, 1): one discount per row of the batch
    expected, _ = gae(r, v, nv, term, trunc, gamma=gamma, lam=0.9)
    for i in range(2):
        row, _ = gae(r[i], v[i], nv[i], term[i], trunc[i], gamma=float(gamma[i, 0]), lam=0.9)
        torch.testing.assert_close(expected[i], row)
    major = [moved(x, 0) for x in (r, v, nv, term, trunc)]  # (T, B, N)
    adv, _ = gae(*major, gamma=gamma, lam=0.9, time_dim=0)
    torch.testing.assert_close(adv, moved(expected, 0))
    with pytest.raises(
        ValueError, match=r"gamma has shape \(3, 1\), which does not broadcast to the batch dimensions \(2, 3\)"
    ):
        gae(*major, gamma=torch.ones(3, 1), lam=0.9, time_dim=0)


ESTIMATORS = {
    "gae": lambda x, **kw: gae(x, x, x, x < 0, gamma=0.9, lam=0.9, **kw),
    "gae_reference": lambda x, **kw: gae_reference(x, x, x, x < 0, gamma=0.9, lam=0.9, **kw),
    "td_residuals": lambda x, **kw: td_residuals(x, x, x, x < 0, gamma=0.9, **kw),
    "nstep_advantages": lambda x, **kw: nstep_advantages(x, x, x, x < 0, gamma=0.9, n=2, **kw),
    "discounted_returns": lambda x, **kw: discounted_returns(x, x < 0, gamma=0.9, **kw),
    "lambda_returns": lambda x, **kw: lambda_returns(x, x, x < 0, gamma=0.9, lam=0.9, **kw),
    "next_valid_values": lambda x, **kw: next_valid_values(x, x < 0, **kw),
}


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize(
    ("time_dim", "error", "match"),
    [
        (2, ValueError, r"time_dim=2 is out of range for inputs of 2 dimensions \(-2 to 1\)"),
        (-3, ValueError, "time_dim=-3 is out of range"),
        (0.0, TypeError, "time_dim must be an int; got float"),
        ("0", TypeError, "time_dim must be an int; got str"),
        (None, TypeError, "time_dim must be an int; got NoneType"),
        (False, TypeError, "time_dim must be an int; got bool"),
    ],
)
def test_bad_time_dim_is_a_clear_error(estimator, time_dim, error, match):
    with pytest.raises(error, match=match):
        ESTIMATORS[estimator](torch.zeros(3, 4), time_dim=time_dim)


def test_next_valid_values_wants_last_of_the_batch_shape():
    values = torch.zeros(5, 3)  # (T, N)
    with pytest.raises(ValueError, match=r"last must be a torch.float32 tensor of shape \(3,\)"):
        next_valid_values(values, last=torch.zeros(5), time_dim=0)


# --- bad input ----------------------------------------------------------------------------------

GOOD = dict(gamma=0.99, lam=0.95)


def good_inputs():
    r, v, nv, term, trunc, mask = rollout(0, (2, 5))
    return dict(rewards=r, values=v, next_values=nv, terminated=term, truncated=trunc, mask=mask)


def call(**overrides):
    kwargs = {**good_inputs(), **GOOD, **overrides}
    return gae(**kwargs)


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        (dict(values=torch.zeros(2, 4)), ValueError, "values has shape"),
        (dict(terminated=torch.zeros(2, 4, dtype=torch.bool)), ValueError, "terminated has shape"),
        (dict(mask=torch.ones(5, dtype=torch.bool)), ValueError, "mask has shape"),
        (dict(rewards=torch.zeros(2, 5, dtype=torch.int64)), TypeError, "rewards must have a real floating dtype"),
        (dict(values=torch.zeros(2, 5, dtype=torch.complex64)), TypeError, "values must have a real floating dtype"),
        (dict(next_values=torch.zeros(2, 5, dtype=torch.float64)), TypeError, "next_values has dtype"),
        (dict(terminated=torch.zeros(2, 5)), TypeError, "terminated must be a bool tensor"),
        (dict(mask=torch.ones(2, 5, dtype=torch.int64)), TypeError, "mask must be a bool tensor"),
        (dict(rewards=[[0.0] * 5] * 2), TypeError, "rewards must be a torch.Tensor"),
        (dict(rewards=torch.tensor(1.0)), ValueError, "time dimension"),
        (dict(gamma=1.5), ValueError, "gamma must lie in"),
        (dict(lam=-0.1), ValueError, "lam must lie in"),
        (dict(lam=math.nan), ValueError, "lam must lie in"),
        (dict(gamma="0.9"), TypeError, "gamma must be a float"),
        (dict(gamma=True), TypeError, "gamma must be a float"),
        (dict(lam=torch.full((2,), 1.2)), ValueError, "lam must lie in"),
        (dict(lam=torch.ones(3)), ValueError, "lam has shape"),
        (dict(gamma=torch.ones(2, dtype=torch.int64)), TypeError, "gamma must be a float or a floating tensor"),
        (dict(rewards=torch.tensor([[0.0, math.nan, 0, 0, 0]] * 2)), ValueError, "rewards contains NaN"),
        (dict(values=torch.full((2, 5), math.inf)), ValueError, "values contains NaN or inf"),
    ],
)
def test_bad_input_raises_a_clear_error(overrides, error, match):
    with pytest.raises(error, match=match):
        call(**overrides)
    with pytest.raises(error, match=match):
        gae_reference(**{**good_inputs(), **GOOD, **overrides})


def test_inputs_on_two_devices_are_rejected():
    meta = torch.zeros(2, 5, device="meta")
    with pytest.raises(ValueError, match="next_values is on meta"):
        call(next_values=meta, check_finite=False)
    with pytest.raises(ValueError, match="gamma is on meta"):
        call(gamma=torch.ones(2, device="meta"), check_finite=False)


def test_huge_finite_inputs_are_not_mistaken_for_inf():
    big = torch.full((2, 5), 3e38)  # finite, but their sum overflows float32
    adv, _ = call(rewards=big, values=torch.zeros(2, 5), next_values=torch.zeros(2, 5), lam=0.0)
    torch.testing.assert_close(adv, big)


def test_check_finite_false_skips_the_value_checks():
    adv, _ = call(rewards=torch.full((2, 5), math.nan), check_finite=False)
    assert bool(torch.isnan(adv).any())


def test_next_values_after_termination_are_ignored_even_if_not_finite():
    r, v, nv, term, trunc, _ = rollout(3, (2, 50), p_term=0.2)
    expected = gae_reference(r, v, nv, term, trunc, gamma=0.99, lam=0.95)
    garbage = nv.masked_fill(term, math.nan)
    adv, ret = gae(r, v, garbage, term, trunc, gamma=0.99, lam=0.95, check_finite=False)
    torch.testing.assert_close((adv.double(), ret.double()), expected, rtol=1e-5, atol=1e-5)


def test_nstep_rejects_bad_n():
    r, v, nv, term, trunc, _ = rollout(0, (5,))
    with pytest.raises(ValueError, match="n must be at least 1"):
        nstep_advantages(r, v, nv, term, trunc, gamma=0.9, n=0)
    with pytest.raises(TypeError, match="n must be an int"):
        nstep_advantages(r, v, nv, term, trunc, gamma=0.9, n=2.0)


def test_next_valid_values_rejects_bad_last():
    with pytest.raises(ValueError, match="last must be"):
        next_valid_values(torch.zeros(2, 5), last=torch.zeros(3))


# --- no host synchronisation ---------------------------------------------------------------------


def test_gae_makes_no_host_synchronisation():
    r, v, nv, term, trunc, mask = rollout(1, (4, 64), p_mask=0.2)
    gamma, lam = torch.full((4,), 0.99), torch.full((4,), 0.95)

    def call() -> None:
        gae(r, v, nv, term, trunc, gamma=gamma, lam=lam, mask=mask, check_finite=False)
        next_valid_values(v, mask)

    assert host_traffic(call) == Counter()


def test_the_profiler_check_can_see_a_synchronisation():
    """The check above is only meaningful if the value checks do show up as syncs."""
    r, v, nv, term, trunc, _ = rollout(1, (4, 8))
    assert host_traffic(lambda: gae(r, v, nv, term, trunc, gamma=0.99, lam=0.95, check_finite=True))["reads"] > 0
