"""`make gpu-check`: on a machine with a GPU, check that gaebook runs there as the book promises.

    python tools/gpu_check.py

With a CUDA device it runs, and reports each as PASS or FAIL (the exit code is 1 if any failed):

1. the package tests, with the conformance suite (tests/package/test_fake_cuda*.py) on the GPU
   instead of fake CUDA (``GAEBOOK_TEST_DEVICE=cuda``);
2. the hot paths with ``torch.cuda.set_sync_debug_mode("error")``, so that any synchronisation with
   the host raises, even one made inside a kernel: every advantage estimator, a loop of steps of
   each batched environment, one PPO iteration (the second of a run: the first sets up the
   optimiser) and LM sampling with the early stop at EOS off;
3. every chapter, executed by nbval;
4. the speed benchmark on the GPU, ``benchmarks/gae_kernels.py --device cuda``: gaebook's ``gae``
   and the torch peers timed there (SB3's NumPy loop and scipy's lfilter on the host); it fails if
   the benchmark misses one of its targets.

Without a CUDA device it prints that list and exits 0: none of these runs, the benchmark included.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

# Everything the hot paths use of gaebook, in one place.
from gaebook import discounted_returns, gae, lambda_returns, next_valid_values, nstep_advantages
from gaebook.envs import CartPole, Catch, Pendulum
from gaebook.lm.tinygpt import CharTokenizer, TinyGPT, sample
from gaebook.networks import ActorCritic
from gaebook.ppo import PPOConfig, train

ROOT = Path(__file__).resolve().parent.parent


def strict(device: torch.device, on: bool) -> None:
    """Make every synchronisation with the host an error (``on``) or allowed again, on a GPU."""
    if device.type == "cuda":
        torch.cuda.set_sync_debug_mode("error" if on else "default")


def estimators(device: torch.device) -> None:
    g = torch.Generator(device).manual_seed(0)
    r, v, nv = (torch.randn(64, 1000, generator=g, device=device) for _ in range(3))
    term, trunc, mask = (torch.rand(64, 1000, generator=g, device=device) < p for p in (0.01, 0.01, 0.9))
    lam = torch.full((64,), 0.95, device=device)
    strict(device, True)
    try:
        gae(r, v, nv, term, trunc, gamma=0.99, lam=lam, mask=mask, check_finite=False)
        next_valid_values(v, mask)
        lambda_returns(r, nv, term, trunc, gamma=0.99, lam=0.95, check_finite=False)
        discounted_returns(r, term, trunc, gamma=0.99, check_finite=False)
        nstep_advantages(r, v, nv, term, trunc, gamma=0.99, n=8, check_finite=False)
    finally:
        strict(device, False)


def step_loop(
    make_env: Callable[[torch.Generator], CartPole | Pendulum | Catch],
    random_actions: Callable[[torch.Generator, torch.device], torch.Tensor],
) -> Callable[[torch.device], None]:
    """A loop of steps of ``make_env(generator)`` taking ``random_actions(generator, device)``."""

    def run(device: torch.device) -> None:
        g = torch.Generator(device).manual_seed(0)
        env = make_env(g)
        env.reset()
        strict(device, True)
        try:
            for _ in range(200):
                env.step(random_actions(g, device), check_actions=False)
        finally:
            strict(device, False)

    return run


def ppo_iteration(device: torch.device) -> None:
    g = torch.Generator(device).manual_seed(0)
    env = CartPole((2, 8), generator=g)
    agent = ActorCritic(4, n_actions=2, n_agents=2, generator=g)
    config = PPOConfig(n_envs=8, n_steps=32, total_steps=3 * 8 * 32, n_minibatches=4)

    def second_iteration_only(done: int) -> bool:
        strict(device, done == 1)
        return done == 2

    try:
        train(env, agent, config, generator=g, progress=False, stop=second_iteration_only)
    finally:
        strict(device, False)


def lm_sampling(device: torch.device) -> None:
    tok = CharTokenizer("0123456789+=")
    torch.manual_seed(0)
    model = TinyGPT(tok.vocab_size, max_len=24).to(device)
    prompts = tok.batch(["12+7=", "3+4=", "40+40="], eos=False, pad="left").to(device)
    g = torch.Generator(device).manual_seed(0)
    strict(device, True)
    try:
        sample(model, prompts, max_new_tokens=12, generator=g, stop_at_eos=False)
    finally:
        strict(device, False)


HOT_PATHS: dict[str, Callable[[torch.device], None]] = {
    "advantage estimators": estimators,
    "CartPole steps": step_loop(
        lambda g: CartPole((64,), generator=g), lambda g, d: torch.randint(2, (64,), generator=g, device=d)
    ),
    "Pendulum steps": step_loop(
        lambda g: Pendulum((64,), generator=g), lambda g, d: 4 * torch.rand(64, 1, generator=g, device=d) - 2
    ),
    "Catch steps": step_loop(
        lambda g: Catch((64,), generator=g), lambda g, d: torch.randint(3, (64,), generator=g, device=d)
    ),
    "a PPO iteration": ppo_iteration,
    "LM sampling without the EOS stop": lm_sampling,
}


def pytest(*args: str, env: dict[str, str] | None = None) -> Callable[[torch.device], None]:
    def run(device: torch.device) -> None:
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
        subprocess.run(command, cwd=ROOT, env={**os.environ, **(env or {})}, check=True)

    return run


def on_device(script: str) -> Callable[[torch.device], None]:
    """Run ``script`` (a path from the repository's root) with ``--device`` set to the device checked."""

    def run(device: torch.device) -> None:
        subprocess.run([sys.executable, script, "--device", str(device)], cwd=ROOT, check=True)

    return run


def checks() -> dict[str, Callable[[torch.device], None]]:
    """Every check of the module docstring, by name, in the order they run."""
    return {
        "package tests, conformance suite on the GPU": pytest("tests/package", env={"GAEBOOK_TEST_DEVICE": "cuda"}),
        **{f"no sync: {name}": check for name, check in HOT_PATHS.items()},
        "chapters (nbval)": pytest("--nbval-lax", "--nbval-current-env", *sorted(map(str, ROOT.glob("book/*.ipynb")))),
        "benchmarks/gae_kernels.py --device cuda (its targets)": on_device("benchmarks/gae_kernels.py"),
    }


def main() -> int:
    if not torch.cuda.is_available():
        print("gpu-check: no CUDA device here (torch.cuda.is_available() is False), so nothing was run.")
        print(__doc__)
        return 0
    device = torch.device("cuda", torch.cuda.current_device())
    planned, failed = checks(), []
    for name, check in planned.items():
        start = time.perf_counter()
        try:
            check(device)
        except Exception as e:  # report every check, then fail
            failed.append(name)
            print(f"FAIL {name}: {type(e).__name__}: {e}")
        else:
            print(f"PASS {name} ({time.perf_counter() - start:.0f} s)")
    print(f"gpu-check on {torch.cuda.get_device_name(device)}: {len(planned) - len(failed)} of {len(planned)} passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
