"""One iteration of :func:`gaebook.lm.ppo.finetune` per case, recorded: run by ``test_distributed.py``.

Under ``torchrun`` (``python -m torch.distributed.run --standalone --nproc_per_node=2
tests/package/lm/ddp_worker.py OUT_DIR``) every rank runs :func:`run` on each case of
:data:`CASES` and saves what it recorded to ``OUT_DIR/{case}-{rank}.pt``. The test then runs
:func:`run` in one process on the ranks' batch, joined, and compares.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor
from torch.optim.optimizer import register_optimizer_step_pre_hook

from gaebook.lm import distributed
from gaebook.lm import ppo as lm_ppo
from gaebook.lm.ppo import LMPPOConfig, ScoredResponses
from gaebook.lm.tasks import BalancedParens
from gaebook.lm.tinygpt import CharTokenizer, TinyGPT

TASK = BalancedParens(max_depth=3, max_pairs=1)  # prompts and responses of varying lengths
TOK = CharTokenizer(TASK.alphabet)
SEED = 3
# One iteration of two epochs of two minibatches: four updates. A large step size makes every
# update move the parameters well beyond float32 rounding.
_COMMON = {"iterations": 1, "n_epochs": 2, "n_minibatches": 2, "lr": 1e-2, "critic_lr": 1e-2, "kl_coef": 0.1}
CASES = {
    "gae": LMPPOConfig(n_prompts=4, advantage="gae", value_pretrain_steps=1, **_COMMON),
    "grpo": LMPPOConfig(n_prompts=4, group_size=2, advantage="grpo", **_COMMON),
}


def models() -> tuple[TinyGPT, TinyGPT]:
    """The policy and a different reference (so the KL penalty is not 0 on the first iteration)."""
    torch.manual_seed(0)
    make = lambda: TinyGPT(TOK.vocab_size, max_len=16, d_model=16, n_layers=1, n_heads=2)  # noqa: E731
    return make(), make()


@contextlib.contextmanager
def _patched(obj: Any, name: str, value: Any) -> Iterator[None]:
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


def run(case: str, replay: tuple[list[ScoredResponses], list[Tensor]] | None = None) -> dict[str, Any]:
    """One iteration of ``finetune`` on ``case`` (after the critic's pretraining), recording what it computed.

    With ``replay = (batches, states)`` the ``i``-th call of ``sample_and_score`` returns
    ``batches[i]`` and leaves the shared generator in ``states[i]`` (its state once the prompts
    are drawn) instead of sampling. Returns, in lists over the calls, the batches and the shared
    generator's states before and after sampling, the advantages, each rank's part of every
    minibatch and the gradient of every update; then the parameters after the iteration and the
    history.
    """
    config = CASES[case]
    policy, reference = models()
    generator = torch.Generator().manual_seed(SEED)
    record: dict[str, Any] = {k: [] for k in ("batches", "before", "after", "advantages", "parts", "grads")}
    real_sample_and_score = lm_ppo.sample_and_score
    real_minibatches = distributed.minibatches
    estimator = lm_ppo.ADVANTAGE_ESTIMATORS[config.advantage]

    def sample_and_score(*args: Any, **kwargs: Any) -> ScoredResponses:
        record["before"].append(generator.get_state())
        if replay is None:
            drawn = real_sample_and_score(*args, **kwargs)
        else:
            drawn = replay[0][len(record["batches"])]
            generator.set_state(replay[1][len(record["batches"])])
        record["after"].append(generator.get_state())
        record["batches"].append(drawn)
        return drawn

    def advantages(*args: Any) -> lm_ppo.TokenAdvantages:
        out = estimator.fn(*args)
        record["advantages"].append(out.advantages)
        return out

    def minibatches(order: Tensor, n: int) -> list[Tensor]:
        parts = real_minibatches(order, n)
        record["parts"].append(parts)
        return parts

    def before_step(optimizer: torch.optim.Optimizer, *_: Any) -> None:
        record["grads"].append(
            [p.grad.clone() for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        )

    hook = register_optimizer_step_pre_hook(before_step)
    try:
        with (
            _patched(lm_ppo, "sample_and_score", sample_and_score),
            _patched(lm_ppo.distributed, "minibatches", minibatches),
            _patched(lm_ppo, "ADVANTAGE_ESTIMATORS", {config.advantage: replace(estimator, fn=advantages)}),
        ):
            record["history"] = lm_ppo.finetune(
                policy, TASK, TOK, config, generator=generator, reference=reference, progress=False
            )
    finally:
        hook.remove()
    record["params"] = [p.detach().clone() for p in policy.parameters()]
    return record


def main(out_dir: str) -> None:
    dist.init_process_group("gloo")
    try:
        rank = dist.get_rank()
        for case in CASES:
            torch.save(run(case), Path(out_dir) / f"{case}-{rank}.pt")
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(sys.argv[1])
