"""How fast is `gaebook.gae`? Side by side with the GAE loops of other libraries, in one run.

    python benchmarks/gae_kernels.py            # all shapes (a few minutes on 2 CPU cores)
    python benchmarks/gae_kernels.py --quick    # the three smallest shapes

Peers, each on the same data:
  * sb3      Stable-Baselines3's `RolloutBuffer.compute_returns_and_advantage` (a NumPy loop);
  * cleanrl  the torch loop of CleanRL's ppo.py (time-major, `dones` shifted by one);
  * masked   verl's token loop that skips masked (observation) tokens; gaebook runs the
             same case with `mask=` and `next_valid_values`;
  * lfilter  Spinning Up's `scipy.signal.lfilter` discounted sum: it cannot see episode ends,
             so it runs on data without any and is reported for reference only;
  * floor    one pass that reads the inputs and writes two outputs: no GAE can beat it.
Every result is compared with the float64 reference loop (`gae_reference`), and the torch
methods' dispatched operations are counted (`gaebook.profiling.dispatched_ops`), a proxy for GPU
kernel launches. The targets of the project are checked at the end; the exit code says whether
they hold.

Methods that allocate their outputs (every torch method here; SB3 writes into its buffer) depend on
the state of the C allocator. glibc serves a block of more than 128 KiB with fresh pages from the
kernel, one page fault per 4 KiB on first touch, until the process has freed a block that large;
then it raises the threshold and reuses memory. A training process has done that long before it
computes GAE, so the benchmark frees one 16 MiB block first and measures that steady state, whatever
the process happened to do before.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer

from gaebook import gae, gae_reference, next_valid_values
from gaebook.baselines import cleanrl_gae, discount_cumsum, masked_token_gae
from gaebook.profiling import dispatched_ops

GAMMA, LAM = 0.99, 0.95
# (n_sequences, n_steps): the shapes, "T=128 x N=8" is 8 sequences of 128 steps
SHAPES = [(8, 128), (1, 2048), (1024, 256), (256, 1024), (16, 16384), (8, 131072)]


def timed(fn: Callable[[], object], budget: float) -> float:
    """Median wall time of ``fn`` in milliseconds over repeats filling about ``budget`` seconds."""
    fn()  # warm-up
    start = time.perf_counter()
    fn()
    once = time.perf_counter() - start
    repeats = max(3, min(200, int(budget / max(once, 1e-6))))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def make_data(n: int, steps: int, seed: int) -> dict[str, torch.Tensor]:
    """A rollout with episode ends (time last, float32), and its float64 reference advantages."""
    g = torch.Generator().manual_seed(seed)
    values = torch.randn(n, steps + 1, generator=g)
    done = torch.rand(n, steps, generator=g) < 0.01
    return {
        "rewards": torch.randn(n, steps, generator=g),
        "values": values[:, :-1].contiguous(),
        "next_values": values[:, 1:].contiguous(),
        "terminated": done,
        "mask": torch.arange(steps).expand(n, steps) < torch.randint(steps // 2, steps + 1, (n, 1), generator=g),
    }


def relative_error(x: torch.Tensor | np.ndarray, ref: torch.Tensor) -> float:
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).double()
    return ((x - ref).abs().max() / ref.abs().max()).item()


# --- peers ----------------------------------------------------------------------------------------


def sb3_buffer(d: dict[str, torch.Tensor]) -> tuple[RolloutBuffer, torch.Tensor, np.ndarray]:
    n, steps = d["rewards"].shape
    buf = RolloutBuffer(
        steps, spaces.Box(-1, 1, (1,)), spaces.Discrete(2), device="cpu", gae_lambda=LAM, gamma=GAMMA, n_envs=n
    )
    buf.rewards[:] = d["rewards"].T.numpy()
    buf.values[:] = d["values"].T.numpy()
    starts = np.zeros((steps, n), dtype=np.float32)  # SB3 marks the first step of an episode
    starts[1:] = d["terminated"].T[:-1].numpy()
    buf.episode_starts[:] = starts
    last_values = d["next_values"][:, -1].clone()
    last_dones = d["terminated"][:, -1].numpy().astype(np.float32)
    return buf, last_values, last_dones


def memory_floor(rewards, values, next_values, out_a, out_r):
    torch.addcmul(rewards, values, next_values, out=out_a)
    torch.add(out_a, values, out=out_r)


# --- the run ---------------------------------------------------------------------------------------


def run_shape(n: int, steps: int, budget: float) -> dict[str, float]:
    d = make_data(n, steps, seed=steps + n)
    r, v, nv, term, mask = d["rewards"], d["values"], d["next_values"], d["terminated"], d["mask"]
    row: dict[str, float] = {}

    ref, _ = gae_reference(r, v, nv, term, gamma=GAMMA, lam=LAM)
    call = lambda: gae(r, v, nv, term, gamma=GAMMA, lam=LAM)  # noqa: E731
    row["gaebook"], row["gaebook_err"] = timed(call, budget), relative_error(call()[0], ref)
    row["gaebook_ops"] = sum(dispatched_ops(call).values())

    buf, last_values, last_dones = sb3_buffer(d)
    sb3 = lambda: buf.compute_returns_and_advantage(last_values, last_dones)  # noqa: E731
    row["sb3"] = timed(sb3, budget)
    row["sb3_err"] = relative_error(buf.advantages.T.copy(), ref)

    dones = torch.zeros(steps, n)
    dones[1:] = term.T[:-1].float()
    rt, vt = r.T.contiguous(), v.T.contiguous()
    clean = lambda: cleanrl_gae(rt, vt, dones, nv[:, -1], term[:, -1].float(), GAMMA, LAM)  # noqa: E731
    row["cleanrl"], row["cleanrl_err"] = timed(clean, budget), relative_error(clean()[0].T, ref)
    row["cleanrl_ops"] = sum(dispatched_ops(clean).values())

    # masked token sequences: no episode ends inside, the response ends at the last valid token
    no_end = torch.zeros_like(term)
    ref_m, _ = gae_reference(r, v, next_valid_values(v, mask), no_end, gamma=GAMMA, lam=LAM, mask=mask)
    ours_m = lambda: gae(r, v, next_valid_values(v, mask), no_end, gamma=GAMMA, lam=LAM, mask=mask)  # noqa: E731
    maskf = mask.float()
    theirs_m = lambda: masked_token_gae(r, v, maskf, GAMMA, LAM)  # noqa: E731
    row["gaebook_masked"], row["masked"] = timed(ours_m, budget), timed(theirs_m, budget)
    row["gaebook_masked_err"] = relative_error(ours_m()[0][mask], ref_m[mask])
    row["masked_err"] = relative_error(theirs_m()[0][mask], ref_m[mask])
    row["masked_ops"] = sum(dispatched_ops(theirs_m).values())

    # lfilter cannot cut traces: compare on the same numbers with no episode ends at all
    deltas = (r + GAMMA * nv - v).numpy()
    ref_l, _ = gae_reference(r, v, nv, no_end, gamma=GAMMA, lam=LAM)
    spin = lambda: discount_cumsum(deltas, GAMMA * LAM)  # noqa: E731
    row["lfilter"], row["lfilter_err"] = timed(spin, budget), relative_error(spin().copy(), ref_l)

    out_a, out_r = torch.empty_like(r), torch.empty_like(r)
    row["floor"] = timed(lambda: memory_floor(r, v, nv, out_a, out_r), budget)
    return row


def steady_allocator() -> None:
    """Free one large block, as any training process has, so that glibc reuses freed memory."""
    block = np.empty(16 * 2**20, dtype=np.uint8)
    del block


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the three smallest shapes")
    parser.add_argument("--budget", type=float, default=1.0, help="seconds of repeats per method and shape")
    args = parser.parse_args()
    torch.manual_seed(0)
    steady_allocator()
    shapes = SHAPES[:3] if args.quick else SHAPES
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, gamma={GAMMA}, lambda={LAM}")
    names = ("gaebook", "sb3", "cleanrl", "gb+mask", "masked", "lfilter")
    head = f"{'N x T':>12} " + " ".join(f"{c:>9}" for c in names) + f" {'floor':>8}  (ms)"
    print(head)
    rows = {}
    for n, steps in shapes:
        row = rows[(n, steps)] = run_shape(n, steps, args.budget)
        cols = ("gaebook", "sb3", "cleanrl", "gaebook_masked", "masked", "lfilter")
        print(f"{n:>5} x {steps:<6}" + "".join(f"{row[c]:>10.3f}" for c in cols) + f"{row['floor']:>9.3f}", flush=True)

    print("\nratios (peer time / gaebook time; masked: loop / gaebook with mask), ops dispatched, max relative error")
    print(
        f"{'N x T':>12} {'sb3':>8} {'cleanrl':>8} {'masked':>8} {'lfilter':>8} {'floor':>7}"
        f" {'ops gb':>7} {'ops cl':>7} {'ops mk':>7} {'err gb':>8} {'err sb3':>8}"
    )
    for (n, steps), row in rows.items():
        print(
            f"{n:>5} x {steps:<6}"
            f"{row['sb3'] / row['gaebook']:>8.1f}x{row['cleanrl'] / row['gaebook']:>8.1f}x"
            f"{row['masked'] / row['gaebook_masked']:>8.1f}x{row['lfilter'] / row['gaebook']:>8.2f}x"
            f"{row['floor'] / row['gaebook']:>7.2f}x"
            f"{row['gaebook_ops']:>8}{row['cleanrl_ops']:>8}{row['masked_ops']:>8}"
            f"{max(row['gaebook_err'], row['gaebook_masked_err']):>9.1e}{row['sb3_err']:>9.1e}"
        )

    checks = []
    for (n, steps), row in rows.items():
        tag = f"{n}x{steps}"
        for peer, ours in (("sb3", "gaebook"), ("cleanrl", "gaebook"), ("masked", "gaebook_masked")):
            checks.append((f"{tag}: not slower than {peer}", row[peer] >= row[ours]))
        if steps >= 2048:
            checks.append((f"{tag}: >= 20x sb3", row["sb3"] >= 20 * row["gaebook"]))
            checks.append((f"{tag}: >= 100x cleanrl", row["cleanrl"] >= 100 * row["gaebook"]))
        if (n, steps) == (256, 1024):
            checks.append((f"{tag}: >= 3x sb3", row["sb3"] >= 3 * row["gaebook"]))
        checks.append((f"{tag}: relative error <= 1e-5", max(row["gaebook_err"], row["gaebook_masked_err"]) <= 1e-5))
    by_steps = sorted((steps, row["gaebook_ops"]) for (_, steps), row in rows.items())
    (t0, ops0), (t1, ops1) = by_steps[0], by_steps[-1]
    checks.append(
        (
            f"ops grow like log T: {ops0} at T={t0}, {ops1} at T={t1}",
            ops1 < 2 * ops0 * max(1.0, np.log2(t1) / np.log2(t0)),
        )
    )
    print("\ntargets")
    for text, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {text}")
    failed = sum(not ok for _, ok in checks)
    print(f"{len(checks) - failed} of {len(checks)} targets met")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
