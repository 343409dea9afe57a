"""How fast is `gaebook.gae`? Both memory layouts, side by side with every done-aware GAE we know of.

    python benchmarks/gae_kernels.py            # all shapes, at 1 and at 2 threads (several minutes)
    python benchmarks/gae_kernels.py --quick    # the three smallest shapes, at 1 and at 2 threads
    python benchmarks/gae_kernels.py --device cuda   # gaebook and the torch peers on the GPU

Every shape N x T is run in both layouts: time last, `(N, T)` (gaebook with `time_dim=-1`), and
time-major, `(T, N)`, the layout of the rollout buffers of SB3, CleanRL and PureJaxRL (gaebook with
`time_dim=0`, solved in that layout). Each peer is fed the same numbers in its own native layout:
  * sb3       Stable-Baselines3's `RolloutBuffer.compute_returns_and_advantage`, a NumPy loop, (T, N);
  * cleanrl   the torch loop of CleanRL's ppo.py, (T, N), `dones` shifted by one;
  * trl-loop  TorchRL's `generalized_advantage_estimate`, a torch loop, (N, T, 1) with time_dim=-2;
  * trl-vec   TorchRL's `vec_generalized_advantage_estimate`: each trajectory padded to the longest,
              then a conv1d with the series of (gamma lambda)^k (cut where it falls below 1e-7);
  * assoc     the associative-scan formulation of JAX code, `gaebook.baselines.associative_scan_gae`,
              in torch's prototype `associative_scan` (odd-even recursion, as JAX's), (T, N);
  * doubling  recursive doubling over the whole length (Hillis-Steele), as the appendix's exercise
              writes it: log2 T rounds of whole-tensor operations on (N, T);
  * masked    verl's token loop, (B, L), which skips masked (observation) tokens; it is compared with
              gaebook's `mask=` and `next_valid_values` in both layouts;
  * lfilter   Spinning Up's `scipy.signal.lfilter` discounted sum: it cannot see episode ends, so it
              runs on data without any and is reported for reference only;
  * floor     one pass that reads the inputs and writes two outputs: no GAE can beat it.
A peer whose library is not installed (or fails to import) is left out, and the output says so. A
closed form with a reverse `cumsum` of `(gamma lambda)^-t delta_t` is not among them: it is not
done-aware (an episode end makes the running product zero) and `(gamma lambda)^-t` overflows float32
within ~1,500 steps.

gaebook runs with `check_finite=False`: the peers check nothing, and the check reads the values (one
host synchronisation). Every result is compared with the float64 reference loop (`gae_reference`),
and the torch methods' dispatched operations are counted (`gaebook.profiling.dispatched_ops`), a proxy
for GPU kernel launches. The fast methods are timed in interleaved rounds, so that load from other
processes falls on all of them alike, and each method's time is its best round, since load only ever
adds time. The speed targets are decided in duels: gaebook and every peer that comes within 3x of it
run alternately, and the median of the ratios of paired runs decides, so that each pair sees the same
load. On a shared machine the ratios inside one run are what count.
Everything runs at 1 thread and again at 2; the targets are checked for both and the exit code says
whether they hold.

With `--device cuda` (the default is `cpu`), gaebook and every torch peer run on the GPU, fed the
same numbers (drawn on the CPU and copied there), and `torch.cuda.synchronize()` closes every timed
region, so that a time counts the kernels and not only their launch. SB3's NumPy loop and scipy's
lfilter have no GPU version: they stay on the host, as they would beside a training loop on a GPU,
and the output says so. A thread count sets the CPU's intra-op threads, which on CUDA only the host
peers and the launching of kernels use, so there everything runs once, at 1 thread, and the targets
are checked for that run (without the load column, which compares the two thread counts on the CPU).

Methods that allocate their outputs (every torch method here; SB3 writes into its buffer) depend on
the state of the C allocator. glibc serves a block of more than 128 KiB with fresh pages from the
kernel, one page fault per 4 KiB on first touch, until the process has freed a block that large;
then it raises the threshold and reuses memory. A training process has done that long before it
computes GAE, so the benchmark frees one 16 MiB block first and measures that steady state, whatever
the process happened to do before.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from gaebook import gae, gae_reference, next_valid_values
from gaebook.baselines import associative_scan_gae, cleanrl_gae, discount_cumsum, masked_token_gae
from gaebook.profiling import dispatched_ops

GAMMA, LAM = 0.99, 0.95
# (n_sequences, n_steps): "T=128 x N=8" is 8 sequences of 128 steps, stored (8, 128) or (128, 8)
SHAPES = [(8, 128), (1, 2048), (1024, 256), (256, 1024), (16, 16384), (8, 131072)]
THREADS = (1, 2)
ROUNDS = 9
DUELS = 15
CONTENDERS = 3.0  # a peer within this factor of gaebook's time is timed against it in a duel
LOOP_OPS_MAX_STEPS = 16384  # counting a Python loop's operations beyond this takes too long
DONE_AWARE = ("sb3", "cleanrl", "trl-loop", "trl-vec", "assoc", "doubling")


def version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def hillis_steele_gae(
    rewards: torch.Tensor, values: torch.Tensor, next_values: torch.Tensor, dones: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE by recursive doubling over the whole length of ``(N, T)`` inputs (the appendix's exercise)."""
    not_done = 1.0 - dones
    b = rewards + GAMMA * next_values * not_done - values
    a = GAMMA * LAM * not_done
    shift = 1
    while shift < b.shape[-1]:
        b_next = torch.nn.functional.pad(b[..., shift:], (0, shift))
        a_next = torch.nn.functional.pad(a[..., shift:], (0, shift))
        b, a = b + a * b_next, a * a_next
        shift *= 2
    return b, b + values


# --- data and peers -------------------------------------------------------------------------------

HOST_PEERS = ("sb3", "lfilter")  # NumPy and SciPy: on the host whatever the device


@dataclass
class Case:
    """One shape: its data in every layout, the peers' calls and the float64 references."""

    n: int
    steps: int
    calls: dict[str, Callable[[], object]] = field(default_factory=dict)
    results: dict[str, Callable[[], torch.Tensor | np.ndarray]] = field(default_factory=dict)
    references: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = field(default_factory=dict)


def make_case(n: int, steps: int, peers: set[str], device: torch.device) -> Case:
    """A rollout with episode ends (float32), stored in each method's layout, and its references.

    The torch methods get it on ``device``, the host peers (:data:`HOST_PEERS`) on the CPU.
    ``results`` give each method's advantages as a time-last ``(N, T)`` array to compare with the
    reference; ``references`` holds, per kind of data, the float64 advantages (on the CPU) and the
    positions to compare.
    """
    g = torch.Generator().manual_seed(steps + n)  # on the CPU: the same numbers on every device
    values_ext = torch.randn(n, steps + 1, generator=g)
    r = torch.randn(n, steps, generator=g)
    v, nv = values_ext[:, :-1].contiguous(), values_ext[:, 1:].contiguous()
    term = torch.rand(n, steps, generator=g) < 0.01
    mask = torch.arange(steps).expand(n, steps) < torch.randint(steps // 2, steps + 1, (n, 1), generator=g)
    r, v, nv, term, mask = (x.to(device) for x in (r, v, nv, term, mask))
    major = [x.T.contiguous() for x in (r, v, nv, term, mask)]
    rm, vm, nvm, termm, maskm = major
    case = Case(n, steps)
    calls, results = case.calls, case.results

    # gaebook, in both layouts
    calls["gb (N,T)"] = lambda: gae(r, v, nv, term, gamma=GAMMA, lam=LAM, check_finite=False)
    calls["gb (T,N)"] = lambda: gae(rm, vm, nvm, termm, gamma=GAMMA, lam=LAM, check_finite=False, time_dim=0)
    results["gb (N,T)"] = lambda: calls["gb (N,T)"]()[0]
    results["gb (T,N)"] = lambda: calls["gb (T,N)"]()[0].T

    if "sb3" in peers:
        from gymnasium import spaces
        from stable_baselines3.common.buffers import RolloutBuffer

        buf = RolloutBuffer(
            steps, spaces.Box(-1, 1, (1,)), spaces.Discrete(2), device="cpu", gae_lambda=LAM, gamma=GAMMA, n_envs=n
        )
        buf.rewards[:], buf.values[:] = rm.cpu().numpy(), vm.cpu().numpy()
        starts = np.zeros((steps, n), dtype=np.float32)  # SB3 marks the first step of an episode
        starts[1:] = termm[:-1].cpu().numpy()
        buf.episode_starts[:] = starts
        last_values, last_dones = nv[:, -1].cpu().clone(), term[:, -1].cpu().numpy().astype(np.float32)
        calls["sb3"] = lambda: buf.compute_returns_and_advantage(last_values, last_dones)
        results["sb3"] = lambda: (calls["sb3"](), buf.advantages.T.copy())[1]

    dones = torch.zeros(steps, n, device=device)  # CleanRL: 1 where s_t began an episode
    dones[1:] = termm[:-1].float()
    next_done = term[:, -1].float()
    calls["cleanrl"] = lambda: cleanrl_gae(rm, vm, dones, nv[:, -1], next_done, GAMMA, LAM)
    results["cleanrl"] = lambda: calls["cleanrl"]()[0].T

    if "trl-loop" in peers or "trl-vec" in peers:
        from torchrl.objectives.value.functional import (
            generalized_advantage_estimate,
            vec_generalized_advantage_estimate,
        )

        r3, v3, nv3, term3 = (x.unsqueeze(-1) for x in (r, v, nv, term))  # [*B, T, F]
        calls["trl-loop"] = lambda: generalized_advantage_estimate(GAMMA, LAM, v3, nv3, r3, term3, term3)
        calls["trl-vec"] = lambda: vec_generalized_advantage_estimate(GAMMA, LAM, v3, nv3, r3, term3, term3)
        results["trl-loop"] = lambda: calls["trl-loop"]()[0].squeeze(-1)
        results["trl-vec"] = lambda: calls["trl-vec"]()[0].squeeze(-1)

    if "assoc" in peers:
        term_f = termm.float()
        calls["assoc"] = lambda: associative_scan_gae(rm, vm, nvm, term_f, GAMMA, LAM)
        results["assoc"] = lambda: calls["assoc"]()[0].T

    term_f_last = term.float()
    calls["doubling"] = lambda: hillis_steele_gae(r, v, nv, term_f_last)
    results["doubling"] = lambda: calls["doubling"]()[0]

    # masked token sequences: no episode ends inside, the response ends at the last valid token
    no_end, no_end_m = torch.zeros_like(term), torch.zeros_like(termm)
    calls["gb+mask (N,T)"] = lambda: gae(
        r, v, next_valid_values(v, mask), no_end, gamma=GAMMA, lam=LAM, mask=mask, check_finite=False
    )
    calls["gb+mask (T,N)"] = lambda: gae(
        rm,
        vm,
        next_valid_values(vm, maskm, time_dim=0),
        no_end_m,
        gamma=GAMMA,
        lam=LAM,
        mask=maskm,
        check_finite=False,
        time_dim=0,
    )
    results["gb+mask (N,T)"] = lambda: calls["gb+mask (N,T)"]()[0]
    results["gb+mask (T,N)"] = lambda: calls["gb+mask (T,N)"]()[0].T
    maskf = mask.float()
    calls["masked"] = lambda: masked_token_gae(r, v, maskf, GAMMA, LAM)
    results["masked"] = lambda: calls["masked"]()[0]

    if "lfilter" in peers:  # it cannot cut traces: the same numbers with no episode ends at all
        deltas = (r + GAMMA * nv - v).cpu().numpy()
        calls["lfilter"] = lambda: discount_cumsum(deltas, GAMMA * LAM)
        results["lfilter"] = lambda: calls["lfilter"]().copy()

    out_a, out_r = torch.empty_like(r), torch.empty_like(r)

    def memory_floor() -> None:
        torch.addcmul(r, v, nv, out=out_a)
        torch.add(out_a, v, out=out_r)

    calls["floor"] = memory_floor

    ref, _ = gae_reference(r, v, nv, term, gamma=GAMMA, lam=LAM)
    ref_m, _ = gae_reference(r, v, next_valid_values(v, mask), no_end, gamma=GAMMA, lam=LAM, mask=mask)
    case.references["done"] = (ref.cpu(), None)
    case.references["mask"] = (ref_m.cpu(), mask.cpu())
    if "lfilter" in peers:
        case.references["none"] = (gae_reference(r, v, nv, no_end, gamma=GAMMA, lam=LAM)[0].cpu(), None)
    return case


def reference_of(method: str) -> str:
    return "mask" if "mask" in method else "none" if method == "lfilter" else "done"


def relative_error(x: torch.Tensor | np.ndarray, ref: torch.Tensor, where: torch.Tensor | None) -> float:
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).cpu().double()
    if where is not None:
        x, ref = x[where], ref[where]
    return ((x - ref).abs().max() / ref.abs().max()).item()


# --- timing ---------------------------------------------------------------------------------------


def interleaved(calls: dict[str, Callable[[], object]], budget: float, sync: Callable[[], None]) -> dict[str, float]:
    """Time per call in milliseconds: each method's best round of interleaved rounds.

    Each round runs every method for about ``budget / ROUNDS`` seconds (at least once) and records
    its mean time per call; a method slower than that is run once per round, in as many rounds as
    fit in ``budget`` (at least one). Load from other processes only ever adds time, so the best
    round is the one it disturbed least. ``sync`` waits for the device before and after each timed
    region.
    """
    once = {}
    for name, fn in calls.items():
        fn()  # warm-up
        sync()
        start = time.perf_counter()
        fn()
        sync()
        once[name] = time.perf_counter() - start
    slot = budget / ROUNDS
    repeats = {name: max(1, int(slot / max(t, 1e-7))) for name, t in once.items()}
    rounds = {name: ROUNDS if t <= slot else max(1, min(ROUNDS, int(budget / t))) for name, t in once.items()}
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for round_ in range(ROUNDS):
        for name, fn in calls.items():
            if round_ >= rounds[name]:
                continue
            sync()
            start = time.perf_counter()
            for _ in range(repeats[name]):
                fn()
            sync()
            samples[name].append((time.perf_counter() - start) / repeats[name])
    return {name: 1e3 * min(s) for name, s in samples.items()}


def duel(
    ours: Callable[[], object],
    theirs: Callable[[], object],
    times: tuple[float, float],
    budget: float,
    sync: Callable[[], None],
) -> float:
    """The median over alternating runs of (their time / our time): each pair sees the same load.

    ``times`` are the two methods' times per call in milliseconds, which size each run to about
    ``budget / (2 DUELS)`` seconds; ``sync`` waits for the device before and after each run.
    """
    repeats = [max(1, int(budget / (2 * DUELS) / (t / 1e3))) for t in times]
    ratios = []
    for _ in range(DUELS):
        taken = []
        for fn, count in ((ours, repeats[0]), (theirs, repeats[1])):
            sync()
            start = time.perf_counter()
            for _ in range(count):
                fn()
            sync()
            taken.append((time.perf_counter() - start) / count)
        ratios.append(taken[1] / taken[0])
    return statistics.median(ratios)


def steady_allocator() -> None:
    """Free one large block, as any training process has, so that glibc reuses freed memory."""
    block = np.empty(16 * 2**20, dtype=np.uint8)
    del block


# --- report ---------------------------------------------------------------------------------------


def available_peers() -> tuple[set[str], list[str], list[str]]:
    """The peers that can run here, and lines saying which are there and which are not."""
    have, there, missing = set(DONE_AWARE) | {"masked"}, [], []
    for peer, package in (("sb3", "stable-baselines3"), ("lfilter", "scipy")):
        if version(package):
            there.append(f"{peer} ({package} {version(package)})")
            have.add(peer)
        else:
            missing.append(f"{peer} (needs {package})")
            have.discard(peer)
    if not version("torchrl"):
        missing.append("trl-loop, trl-vec (need torchrl)")
        have -= {"trl-loop", "trl-vec"}
    else:
        try:
            import torchrl.objectives.value.functional  # noqa: F401
        except Exception as e:  # installed but broken, e.g. by the version of one of its dependencies
            missing.append(f"trl-loop, trl-vec (torchrl {version('torchrl')} fails to import: {type(e).__name__}: {e})")
            have -= {"trl-loop", "trl-vec"}
        else:
            there.append(f"trl-loop, trl-vec (torchrl {version('torchrl')})")
    try:
        from torch._higher_order_ops.associative_scan import associative_scan  # noqa: F401

        there.append(f"assoc (torch {torch.__version__} associative_scan, a prototype)")
    except ImportError:
        missing.append("assoc (needs torch._higher_order_ops.associative_scan)")
        have.discard("assoc")
    there += ["cleanrl, doubling, masked (transcribed here or in gaebook.baselines)"]
    return have, there, missing


def threads_text(threads: int) -> str:
    return f"{threads} thread{'s' if threads > 1 else ''}"


def setting_text(device: torch.device, threads: int) -> str:
    """What a run was: its thread count on the CPU; on a GPU, the device and the host's thread count."""
    return threads_text(threads) if device.type == "cpu" else f"{device}, host at {threads_text(threads)}"


Duels = dict[tuple[int, int], dict[str, tuple[str, float]]]


Rows = dict[tuple[int, int], dict[str, float]]


def print_tables(setting: str, rows: Rows, peers: list[str], duels: Duels, one_thread: Rows, host: str) -> None:
    """The tables of one run; ``host`` is a note on the methods that ran on the host, if any ran elsewhere."""
    print(f"\n=== {setting}: time per call (ms) ===")
    columns = ["gb (N,T)", "gb (T,N)", *peers, "gb+mask (N,T)", "gb+mask (T,N)", "masked", "lfilter", "floor"]
    columns = [c for c in columns if any(c in row for row in rows.values())]
    width = max(10, *(len(c) + 1 for c in columns))
    print(f"{'N x T':>13}" + "".join(f"{c:>{width}}" for c in columns))
    for (n, steps), row in rows.items():
        print(f"{n:>6} x {steps:<6}" + "".join(f"{row[c]:>{width}.3f}" if c in row else " " * width for c in columns))
    if host:
        print(host)
    print(
        f"\n=== {setting}: the closest done-aware peer's time / gaebook's, in duels (median of"
        f" {DUELS} alternating pairs); masked loop / gaebook with mask ==="
    )
    heads = ("peer (N,T)", "ratio", "peer (T,N)", "ratio", "(T,N)/(N,T)", "mask (N,T)", "mask (T,N)", "load")
    widths = (11, 8, 11, 8, 12, 11, 11, 7)
    print(f"{'N x T':>13}" + "".join(f"{h:>{w}}" for h, w in zip(heads, widths, strict=True)))
    for (n, steps), row in rows.items():
        (peer_l, ratio_l), (peer_m, ratio_m) = duels[(n, steps)]["(N,T)"], duels[(n, steps)]["(T,N)"]
        print(
            f"{n:>6} x {steps:<6}{peer_l:>11}{ratio_l:>7.2f}x{peer_m:>11}{ratio_m:>7.2f}x"
            f"{row['gb (T,N)'] / row['gb (N,T)']:>12.2f}"
            f"{row['masked'] / row['gb+mask (N,T)']:>10.1f}x{row['masked'] / row['gb+mask (T,N)']:>10.1f}x"
            + (f"{row['floor'] / one_thread[(n, steps)]['floor']:>7.2f}" if rows is not one_thread else f"{'-':>7}")
        )
    if rows is not one_thread:
        print(
            "  load: the floor's time / its time at 1 thread. On an idle machine it is at most 1; more means that"
            " other processes took a core (intra-op threads then wait for each other): rerun to compare speed."
        )


def device_argument(text: str) -> torch.device:
    """``--device``: ``cpu``, or ``cuda`` (``cuda:i``) when there is such a CUDA device; else a clear error."""
    try:
        device = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a device: use cpu or cuda (cuda:i)") from None
    if device.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"{text!r}: the benchmark runs on cpu or cuda (cuda:i) only")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"{text!r}: no CUDA device here (torch.cuda.is_available() is False)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(f"{text!r}: no such CUDA device here ({torch.cuda.device_count()} found)")
    return device


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (``argv``, else ``sys.argv``); a bad one exits with a usage message (status 2)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the three smallest shapes")
    parser.add_argument("--budget", type=float, default=1.0, help="seconds of timing per method and shape")
    parser.add_argument(
        "--device",
        type=device_argument,
        default="cpu",
        help="cpu (the default) or cuda (cuda:i): where gaebook and the torch peers run",
    )
    return parser.parse_args(argv)


def main() -> int:
    args = parse_args()
    device: torch.device = args.device
    on_gpu = device.type == "cuda"
    sync: Callable[[], None] = (lambda: torch.cuda.synchronize(device)) if on_gpu else (lambda: None)
    warnings.filterwarnings("ignore", module="torchrl")  # its import warns about optional extensions
    torch.manual_seed(0)
    steady_allocator()
    shapes = SHAPES[:3] if args.quick else SHAPES
    have, there, missing = available_peers()
    peers = [p for p in DONE_AWARE if p in have]
    print(f"torch {torch.__version__}, float32, gamma={GAMMA}, lambda={LAM}; gaebook with check_finite=False")
    print("peers available: " + "; ".join(there))
    print("peers missing: " + ("; ".join(missing) if missing else "none"))
    host = ""
    if on_gpu:
        on_host = [p for p in HOST_PEERS if p in have]
        print(f"device: {device} ({torch.cuda.get_device_name(device)}): gaebook and every torch peer run there")
        host = (
            f"  {', '.join(on_host)} ran on the host (NumPy, SciPy); every other column on {device}" if on_host else ""
        )
        print(
            f"one run, at {threads_text(THREADS[0])}: a thread count sets only the CPU's threads, which on {device}"
            " serve the host peers and the launching of kernels; the targets are checked for that run"
        )

    def named(peer: str) -> str:
        return f"{peer} on the host" if on_gpu and peer in HOST_PEERS else peer

    cases = {}
    errors: dict[tuple[int, int], dict[str, float]] = {}
    ops: dict[tuple[int, int], dict[str, int]] = {}
    for n, steps in shapes:
        case = cases[(n, steps)] = make_case(n, steps, have, device)
        errors[(n, steps)] = {
            m: relative_error(get(), *case.references[reference_of(m)]) for m, get in case.results.items()
        }
        ops[(n, steps)] = {
            m: sum(dispatched_ops(case.calls[m]).values())
            for m in ("gb (N,T)", "gb (T,N)", "cleanrl", "trl-loop", "trl-vec", "assoc", "doubling", "masked")
            if m in case.calls and (steps <= LOOP_OPS_MAX_STEPS or m not in ("cleanrl", "trl-loop", "masked"))
        }

    timings: dict[int, dict[tuple[int, int], dict[str, float]]] = {}
    duels: dict[int, Duels] = {}
    for threads in THREADS[:1] if on_gpu else THREADS:
        torch.set_num_threads(threads)
        setting = setting_text(device, threads)
        rows = timings[threads] = {}
        duels[threads] = {}
        for key, case in cases.items():
            row = rows[key] = interleaved(case.calls, args.budget, sync)
            duels[threads][key] = {}
            for layout in ("(N,T)", "(T,N)"):
                ours = f"gb {layout}"
                # every peer that might be faster meets gaebook in a duel; the closest one is kept
                contenders = [p for p in peers if row[p] < CONTENDERS * row[ours]] or [min(peers, key=row.__getitem__)]
                ratios = {
                    p: duel(case.calls[ours], case.calls[p], (row[ours], row[p]), args.budget, sync) for p in contenders
                }
                closest = min(ratios, key=ratios.__getitem__)
                duels[threads][key][layout] = (closest, ratios[closest])
            print(f"  {setting}, {key[0]} x {key[1]}: done", file=sys.stderr, flush=True)
        print_tables(setting, rows, peers, duels[threads], timings[THREADS[0]], host)

    print("\n=== dispatched operations (the same at any thread count) and max relative error vs float64 ===")
    op_cols = ["gb (N,T)", "gb (T,N)", "cleanrl", "trl-loop", "trl-vec", "assoc", "doubling", "masked"]
    print(f"{'N x T':>13}" + "".join(f"{c:>10}" for c in op_cols))
    for key, row in ops.items():
        print(f"{key[0]:>6} x {key[1]:<6}" + "".join(f"{row[c]:>10}" if c in row else f"{'-':>10}" for c in op_cols))
    err_cols = ["gb (N,T)", "gb (T,N)", "gb+mask (N,T)", "gb+mask (T,N)", *peers, "masked", "lfilter"]
    err_cols = [c for c in err_cols if c in next(iter(errors.values()))]
    print(f"\n{'N x T':>13}" + "".join(f"{c:>14}" for c in err_cols))
    for key, row in errors.items():
        print(f"{key[0]:>6} x {key[1]:<6}" + "".join(f"{row[c]:>14.1e}" for c in err_cols))

    checks = []
    for threads, rows in timings.items():
        for (n, steps), row in rows.items():
            tag = f"{setting_text(device, threads)}, {n}x{steps}"
            for layout in ("(N,T)", "(T,N)"):
                ours, ours_masked = row[f"gb {layout}"], row[f"gb+mask {layout}"]
                closest, ratio = duels[threads][(n, steps)][layout]
                checks.append(
                    (
                        f"{tag}: gaebook {layout} faster than every done-aware peer"
                        f" (closest: {named(closest)}, {ratio:.2f}x)",
                        ratio > 1,
                    )
                )
                checks.append(
                    (f"{tag}: gaebook {layout} with mask faster than the masked loop", ours_masked < row["masked"])
                )
                if steps >= 2048:
                    checks.append(
                        (f"{tag}: gaebook {layout} >= 20x {named('sb3')}", "sb3" not in row or row["sb3"] >= 20 * ours)
                    )
                    checks.append((f"{tag}: gaebook {layout} >= 100x cleanrl", row["cleanrl"] >= 100 * ours))
    for (n, steps), row in errors.items():
        worst = max(row[m] for m in ("gb (N,T)", "gb (T,N)", "gb+mask (N,T)", "gb+mask (T,N)"))
        checks.append((f"{n}x{steps}: gaebook's relative error <= 1e-5 in both layouts ({worst:.1e})", worst <= 1e-5))
    same_ops = all(row["gb (N,T)"] == row["gb (T,N)"] for row in ops.values())
    checks.append(("gaebook dispatches as many operations for (T,N) as for (N,T)", same_ops))
    by_steps = sorted((steps, row["gb (N,T)"]) for (_, steps), row in ops.items())
    (t0, ops0), (t1, ops1) = by_steps[0], by_steps[-1]
    log_growth = max(1.0, np.log2(t1) / np.log2(t0))
    checks.append((f"ops grow like log T: {ops0} at T={t0}, {ops1} at T={t1}", ops1 < 2 * ops0 * log_growth))
    print("\n=== targets ===")
    for text, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {text}")
    failed = sum(not ok for _, ok in checks)
    print(f"{len(checks) - failed} of {len(checks)} targets met")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
