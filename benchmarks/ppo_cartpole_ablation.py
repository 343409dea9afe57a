"""Do the shared trunk and the value clipping of the benchmark's gaebook settings cost samples?

    python benchmarks/ppo_cartpole_ablation.py            # 8 seeds per variant
    python benchmarks/ppo_cartpole_ablation.py --seeds 4  # a shorter run

`benchmarks/ppo_cartpole.py` times gaebook with settings tuned for wall time (``GAEBOOK``: a trunk
shared by actor and critic, and ``PPOConfig``'s default value clipping), while chapter 5 measures,
with its own settings (γ = 0.99, 8 envs × 128 steps, 10 epochs of 4 minibatches), that both slow
learning on CartPole. This script measures what they change at the benchmark's settings: the four
combinations of shared/separate networks and value clipping on/off, everything else ``GAEBOOK``,
on the torch CartPole, all seeds of a variant trained at once. It counts samples, not seconds:
for each seed, the env steps until a greedy evaluation over 100 episodes first scores a mean of
at least 475 (evaluated every ``EVAL_EVERY`` iterations), and the mean training return over the run.
Nothing here is timed.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import statistics
import sys

import torch

from gaebook.envs import CartPole
from gaebook.networks import ActorCritic
from gaebook.ppo import evaluate, train
from gaebook.statistics import carry_forward

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ppo_cartpole import EVAL_EPISODES, GAEBOOK, GAEBOOK_NET, MAX_EPISODE_STEPS, SOLVED

EVAL_EVERY = 4  # iterations between greedy evaluations (2048 env steps at GAEBOOK's 512 per iteration)
VARIANTS = {  # name: (shared trunk, value clipping)
    "shared, clipped (benchmark)": (True, True),
    "shared, unclipped": (True, False),
    "separate, clipped": (False, True),
    "separate, unclipped": (False, False),
}


def run_variant(shared: bool, clip_vloss: bool, n_seeds: int, seed: int) -> tuple[list[float], list[float]]:
    """Env steps to solve (inf if never) and mean training return, one per seed."""
    config = dataclasses.replace(GAEBOOK, clip_vloss=clip_vloss)
    gen = torch.Generator().manual_seed(seed)
    net = {**GAEBOOK_NET, "shared": shared}
    agents = ActorCritic(
        CartPole.observation_size, n_actions=CartPole.n_actions, n_agents=n_seeds, generator=gen, **net
    )
    eval_gen = torch.Generator().manual_seed(seed + 1)
    solved_at = torch.full((n_seeds,), math.inf)
    batch = config.n_envs * config.n_steps

    def check(iteration: int) -> bool:
        if iteration % EVAL_EVERY and iteration != config.n_iterations:
            return False
        env = CartPole((n_seeds, EVAL_EPISODES), generator=eval_gen)
        score = evaluate(env, agents, max_steps=MAX_EPISODE_STEPS, generator=eval_gen).mean(-1)
        newly = (score >= SOLVED) & solved_at.isinf()
        solved_at[newly] = float(iteration * batch)
        return False

    env = CartPole((n_seeds, config.n_envs), generator=torch.Generator().manual_seed(seed + 2))
    history = train(env, agents, config, generator=gen, progress=False, stop=check)
    auc = carry_forward(history.episode_return).nanmean(-1)
    return solved_at.tolist(), auc.tolist()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8, help="seeds per variant (default 8)")
    parser.add_argument("--seed", type=int, default=300, help="first random seed (default 300)")
    args = parser.parse_args()
    if args.seeds < 2:
        parser.error("--seeds must be at least 2")
    torch.set_num_threads(1)
    g = GAEBOOK
    print(
        f"torch {torch.__version__}; {args.seeds} seeds per variant; GAEBOOK settings: {g.n_envs} envs x "
        f"{g.n_steps} steps, {g.n_epochs} epochs x {g.n_minibatches} minibatch, gamma {g.gamma}, lambda {g.lam}, "
        f"lr {g.lr}, budget {g.total_steps} steps; solved: greedy mean >= {SOLVED} over {EVAL_EPISODES} episodes"
    )
    print(f"\n{'variant':<30}{'solved':>8}{'median steps to solve':>24}{'mean training return':>22}")
    for name, (shared, clip_vloss) in VARIANTS.items():
        steps, auc = run_variant(shared, clip_vloss, args.seeds, args.seed)
        solved = sum(not math.isinf(s) for s in steps)
        median = statistics.median(steps)  # a seed that never solves counts as infinitely many steps
        mean_auc = sum(auc) / len(auc)
        print(f"{name:<30}{solved:>5}/{len(steps)}{median:>24.0f}{mean_auc:>22.1f}", flush=True)
    print(f"load average now {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
