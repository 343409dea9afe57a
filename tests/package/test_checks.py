"""gaebook.exercises: every checker passes right answers and names every known bug it applies to."""

from __future__ import annotations

import math

import pytest
import torch
from fake_cuda import NO_FAKE_CUDA, Harness

from gaebook import gae, lambda_returns
from gaebook.baselines import cleanrl_gae, masked_token_gae
from gaebook.exercises import (
    bugs,
    check_gae,
    check_grpo_advantages,
    check_lambda_returns,
    check_masked_whiten,
    check_next_step_gae,
    check_ppo_loss,
    check_token_gae,
)
from gaebook.lm.token_mdp import grpo_advantages
from gaebook.reductions import masked_whiten

# --- second, independent implementations: plain Python over lists, one row at a time ---------


def rows(x):
    return x.reshape(-1, x.shape[-1]).tolist()


def back(lists, like):
    return torch.tensor(lists, dtype=like.dtype, device=like.device).reshape(like.shape)


def loop_gae(rewards, values, next_values, terminated, truncated, *, gamma, lam):
    adv = []
    for r, v, nv, term, trunc in zip(*map(rows, (rewards, values, next_values, terminated, truncated)), strict=True):
        a, out = 0.0, [0.0] * len(r)
        for t in reversed(range(len(r))):
            delta = r[t] + (0.0 if term[t] else gamma * nv[t]) - v[t]
            a = delta + (0.0 if term[t] or trunc[t] else gamma * lam * a)
            out[t] = a
        adv.append(out)
    advantages = back(adv, rewards)
    return advantages, advantages + values


def loop_lambda_returns(rewards, next_values, terminated, truncated, *, gamma, lam):
    out_rows = []
    for r, nv, term, trunc in zip(*map(rows, (rewards, next_values, terminated, truncated)), strict=True):
        out = [0.0] * len(r)
        for t in reversed(range(len(r))):
            if term[t]:
                out[t] = r[t]
            elif trunc[t] or t == len(r) - 1:
                out[t] = r[t] + gamma * nv[t]
            else:
                out[t] = r[t] + gamma * ((1 - lam) * nv[t] + lam * out[t + 1])
        out_rows.append(out)
    return back(out_rows, rewards)


def loop_token_gae(rewards, values, mask, *, gamma, lam):
    out_rows = []
    for r, v, m in zip(*map(rows, (rewards, values, mask)), strict=True):
        out, a, next_value = [0.0] * len(r), 0.0, 0.0
        for t in reversed(range(len(r))):
            if m[t]:
                a = r[t] + gamma * next_value - v[t] + gamma * lam * a
                out[t], next_value = a, v[t]
        out_rows.append(out)
    return back(out_rows, rewards)


def loop_whiten(x, mask):
    valid = [a for a, m in zip(x.flatten().tolist(), mask.flatten().tolist(), strict=True) if m]
    mean = sum(valid) / len(valid)
    std = math.sqrt(sum((a - mean) ** 2 for a in valid) / (len(valid) - 1))
    out = [(a - mean) / std if m else 0.0 for a, m in zip(x.flatten().tolist(), mask.flatten().tolist(), strict=True)]
    return back(out, x)


def loop_ppo_loss(log_probs, old_log_probs, advantages, *, clip_coef):
    terms = []
    for lp, old, a in zip(*(x.flatten().tolist() for x in (log_probs, old_log_probs, advantages)), strict=True):
        ratio = math.exp(lp - old)
        terms.append(-min(ratio * a, min(max(ratio, 1 - clip_coef), 1 + clip_coef) * a))
    return torch.tensor(sum(terms) / len(terms), dtype=log_probs.dtype, device=log_probs.device)


def loop_grpo(rewards, group_size):
    r, out = rewards.tolist(), []
    for k in range(0, len(r), group_size):
        group = r[k : k + group_size]
        mean = sum(group) / group_size
        std = math.sqrt(sum((x - mean) ** 2 for x in group) / (group_size - 1))
        out += [(x - mean) / (std + 1e-6) for x in group]
    return back(out, rewards)


def loop_next_step(rewards, values, terminated, truncated, last_value, *, gamma, lam):
    out_rows = []
    lasts = last_value.tolist()
    for i, (r, v, term, trunc) in enumerate(zip(*map(rows, (rewards, values, terminated, truncated)), strict=True)):
        out, a = [0.0] * len(r), 0.0
        for t in reversed(range(len(r))):
            if t > 0 and (term[t - 1] or trunc[t - 1]):
                continue  # the autoreset step: not an action; the trace is cut just before it anyway
            next_value = v[t + 1] if t + 1 < len(r) else lasts[i]
            delta = r[t] + (0.0 if term[t] else gamma * next_value) - v[t]
            a = delta + (0.0 if term[t] or trunc[t] else gamma * lam * a)
            out[t] = a
        out_rows.append(out)
    return back(out_rows, rewards)


def gae_advantages_only(*args, **kwargs):
    return gae(*args, **kwargs)[0]


def verl_token_gae(rewards, values, mask, *, gamma, lam):
    """verl's token loop (transcribed in gaebook.baselines), its masked entries zeroed."""
    return masked_token_gae(rewards, values, mask.to(rewards.dtype), gamma, lam)[0] * mask


def vectorised_ppo_loss(log_probs, old_log_probs, advantages, *, clip_coef):
    ratio = torch.exp(log_probs - old_log_probs)
    return torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - clip_coef, 1 + clip_coef)).mean()


def masked_next_step(rewards, values, terminated, truncated, last_value, *, gamma, lam):
    done = terminated | truncated
    real = torch.cat([torch.ones_like(done[:, :1]), ~done[:, :-1]], dim=1)
    next_values = torch.cat([values[:, 1:], last_value[:, None]], dim=1)
    return gae(rewards, values, next_values, terminated, truncated, gamma=gamma, lam=lam, mask=real)[0]


def cleanrl_layout(rewards, values, next_values, terminated, truncated, *, gamma, lam, fold):
    """CleanRL's loop (gaebook.baselines) on (N, T) inputs; ``fold`` adds SB3's time-out bootstrap to the rewards."""
    done = (terminated | truncated).to(rewards.dtype)
    if fold:
        rewards = rewards + gamma * next_values * truncated
    starts = torch.cat([torch.zeros_like(done[:, :1]), done[:, :-1]], dim=1)
    advantages, _ = cleanrl_gae(rewards.T, values.T, starts.T, next_values[:, -1], done[:, -1], gamma, lam)
    return advantages.T, advantages.T + values


CORRECT = [
    (check_gae, gae),
    (check_gae, gae_advantages_only),
    (check_gae, loop_gae),
    (check_lambda_returns, lambda_returns),
    (check_lambda_returns, loop_lambda_returns),
    (check_token_gae, loop_token_gae),
    (check_token_gae, verl_token_gae),
    (check_masked_whiten, masked_whiten),
    (check_masked_whiten, loop_whiten),
    (check_ppo_loss, loop_ppo_loss),
    (check_ppo_loss, vectorised_ppo_loss),
    (check_grpo_advantages, grpo_advantages),
    (check_grpo_advantages, loop_grpo),
    (check_next_step_gae, loop_next_step),
    (check_next_step_gae, masked_next_step),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("check", "fn"), CORRECT, ids=lambda x: x.__name__)
def test_a_right_implementation_passes(check, fn, seed):
    verdict = check(fn, seed=seed)
    assert verdict.passed, verdict.message
    assert verdict and verdict.bug is None and repr(verdict).startswith("PASS")


# Every bug of the gallery, the checker it belongs to, and words its hint must contain.
BUGS = [
    (check_gae, bugs.gae_seed000_exponent, "T−t+1"),
    (check_gae, bugs.gae_returns_never_computed, "never computed"),
    (check_gae, bugs.gae_monte_carlo_targets, "Monte Carlo returns"),
    (check_gae, bugs.gae_truncation_as_termination, "CleanRL #198"),
    (check_gae, bugs.gae_crosses_episode_end, "crosses an episode end at t ="),
    (check_gae, bugs.gae_ignores_truncation, "crosses a truncation at t ="),
    (check_gae, bugs.gae_bootstraps_after_termination, "bootstrap after termination at t ="),
    (check_lambda_returns, bugs.lambda_returns_monte_carlo, "Monte Carlo returns"),
    (check_lambda_returns, bugs.lambda_returns_truncation_as_termination, "CleanRL #198"),
    (check_lambda_returns, bugs.lambda_returns_ignore_truncation, "crosses a truncation at t ="),
    (check_lambda_returns, bugs.lambda_returns_bootstrap_after_termination, "bootstrap after termination"),
    (check_token_gae, bugs.token_gae_through_mask, "runs through masked positions"),
    (check_masked_whiten, bugs.whiten_over_padding, "whiten over padding"),
    (check_masked_whiten, bugs.whiten_per_row, "each row"),
    (check_masked_whiten, bugs.whiten_biased_variance, "n − 1"),
    (check_ppo_loss, bugs.ppo_min_of_losses, "smaller of the two losses"),
    (check_ppo_loss, bugs.ppo_inverted_ratio, "upside down"),
    (check_ppo_loss, bugs.ppo_objective_not_loss, "objective"),
    (check_ppo_loss, bugs.ppo_no_clip, "do not clip"),
    (check_grpo_advantages, bugs.grpo_over_batch, "over the batch, not the group"),
    (check_grpo_advantages, bugs.grpo_wrong_axis, "wrong axis"),
    (check_grpo_advantages, bugs.grpo_no_eps, "identical scores"),
    (check_grpo_advantages, bugs.grpo_biased_std, "G − 1"),
    (check_next_step_gae, bugs.next_step_trains_on_autoreset, "autoreset step at t ="),
]


def test_the_table_covers_every_bug_of_the_gallery():
    assert sorted(bug.__name__ for _, bug, _ in BUGS) == sorted(bugs.__all__)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("check", "bug", "words"), BUGS, ids=lambda x: getattr(x, "__name__", None))
def test_every_bug_is_rejected_with_its_own_hint(check, bug, words, seed):
    verdict = check(bug, seed=seed)
    assert not verdict.passed
    assert verdict.bug == bug.__name__, verdict.message
    assert words in verdict.message
    assert repr(verdict).startswith("FAIL") and not verdict


def test_the_hint_points_at_the_episode_end_the_trace_crosses():
    verdict = check_gae(bugs.gae_crosses_episode_end)
    t = int(verdict.message.split("t = ")[1].split(" ")[0])
    row = int(verdict.message.split("(row ")[1].split(")")[0])
    # the same case as the checker's second one: rebuild it through a spy
    seen = {}

    def spy(rewards, values, next_values, terminated, truncated, *, gamma, lam):
        seen.setdefault("flags", []).append(terminated | truncated)
        return gae(rewards, values, next_values, terminated, truncated, gamma=gamma, lam=lam)

    check_gae(spy)
    assert any(bool(done[row, t]) for done in seen["flags"])


def test_real_code_is_diagnosed_too():
    """Not the bug models: CleanRL's own loop as transcribed, with and without SB3's fold, and verl's."""
    as_is = check_gae(lambda *a, **k: cleanrl_layout(*a, **k, fold=False))
    assert as_is.bug == "gae_truncation_as_termination" and "CleanRL #198" in as_is.message
    assert check_gae(lambda *a, **k: cleanrl_layout(*a, **k, fold=True))
    raw_verl = check_token_gae(lambda r, v, m, **k: masked_token_gae(r, v, m.to(r.dtype), k["gamma"], k["lam"])[0])
    assert not raw_verl and "not 0 at" in raw_verl.message  # verl leaves its trace at masked tokens


# --- generic hints ---------------------------------------------------------------------------


def test_a_function_that_changes_its_inputs_in_place_is_told_so():
    def in_place(rewards, values, next_values, terminated, truncated, *, gamma, lam):
        advantages, returns = gae(rewards, values, next_values, terminated, truncated, gamma=gamma, lam=lam)
        rewards.zero_()
        return advantages, returns

    verdict = check_gae(in_place)
    assert not verdict and "changes its input rewards in place" in verdict.message


def test_a_wrong_shape_dtype_or_type_is_told_so():
    assert "shape" in check_grpo_advantages(lambda r, g: grpo_advantages(r, g).view(-1, g)).message
    assert "keep the inputs' dtype" in check_masked_whiten(lambda x, m: masked_whiten(x, m).float()).message
    assert "return a torch.Tensor" in check_grpo_advantages(lambda r, g: grpo_advantages(r, g).tolist()).message
    assert "returns 3 values" in check_gae(lambda *a, **k: (*gae(*a, **k), None)).message


def test_empty_returns_are_told_they_are_never_filled():
    def empty_returns(*args, **kwargs):
        return gae(*args, **kwargs)[0], torch.empty(0)

    assert "returns are empty: is it ever filled?" in check_gae(empty_returns).message


def test_an_exception_is_reported_not_raised():
    def broken(rewards, values, next_values, terminated, truncated, *, gamma, lam):
        raise RuntimeError("boom")

    verdict = check_gae(broken)
    assert not verdict and "RuntimeError: boom" in verdict.message


def test_nan_and_a_stray_value_at_a_masked_position_are_located():
    def nan_at_end(x, mask):
        out = masked_whiten(x, mask)
        out[0, -1] = torch.nan
        return out

    assert "NaN or inf in your whitened values at t = " in check_masked_whiten(nan_at_end).message
    raw = check_token_gae(lambda r, v, m, **k: loop_token_gae(r, v, m, **k) + (~m) * 1.0).message
    assert "advantages are not 0 at t =" in raw


def test_an_unknown_mistake_gets_the_first_wrong_entry():
    verdict = check_gae(lambda *a, **k: gae(*a, **k)[0] * 1.01)
    assert not verdict and verdict.bug is None and "no known bug gives your numbers" in verdict.message
    assert "at t = 0 (row 0):" in verdict.message
    loss = check_ppo_loss(lambda *a, **k: 2 * vectorised_ppo_loss(*a, **k))
    assert loss.bug is None and loss.message.startswith("your loss is wrong at the output")


def test_bad_arguments_are_refused():
    with pytest.raises(TypeError, match="fn must be a function"):
        check_gae("gae")
    with pytest.raises(TypeError, match="seed must be an int"):
        check_gae(gae, seed=1.5)
    with pytest.raises(TypeError, match="device must be"):
        check_gae(gae, device=0.5)
    with pytest.raises(ValueError, match="not a device"):
        check_gae(gae, device="gpu7")


def test_the_cases_are_built_on_the_requested_device():
    devices = set()

    def spy(rewards, group_size):
        devices.add(rewards.device)
        return grpo_advantages(rewards, group_size)

    assert check_grpo_advantages(spy, device=torch.device("cpu"))
    assert devices == {torch.device("cpu")}


@NO_FAKE_CUDA
@pytest.mark.parametrize(("check", "bug"), [(check, bug) for check, bug, _ in BUGS], ids=lambda x: x.__name__)
def test_every_bug_runs_on_its_inputs_device_without_host_syncs(check, bug):
    """The gallery's functions are tensor functions too: run them on (fake) CUDA inputs of a hidden case."""
    calls = []

    def spy(*args, **kwargs):
        calls.append((args, kwargs))
        return bug(*args, **kwargs)

    check(spy)
    args, kwargs = calls[0]
    harness = Harness.from_environment()
    on_device = [harness.tensor(a) if isinstance(a, torch.Tensor) else a for a in args]
    harness.assert_on_device(harness.run(bug, *on_device, **kwargs))
