"""Tests of gaebook.lm.distributed: data-parallel finetune on two processes computes what one process computes.

``torchrun`` runs ``ddp_worker.py`` on two gloo ranks (one iteration of ``finetune`` per case);
the test then runs the same iteration in this process on the ranks' responses joined into one
batch, from the shared generator's state, and compares the advantages, the gradient of every
update and the parameters after them.

Tolerance: the two computations are the same sums taken in a different order (each rank sums
its own tokens and the all-reduce adds the ranks' sums; the loss is a rank's token-mean
rescaled by ``world · n / N`` rather than one sum over ``N``; a rank's prompts are padded to a
different width), so they agree to float32 rounding, not bit for bit: a few units in the last
place, hence ``rtol=1e-5`` and ``atol=1e-6`` for values near zero. The parameters get
``atol=1e-5``: Adam divides each gradient by ``√v + eps``, and where a gradient is zero in exact
arithmetic (a key bias, to which the softmax is blind) its rounding noise ``δ ≈ 1e-9`` becomes a
step of ``lr · δ / eps ≈ 1e-6`` that need not agree between the two runs. Dropping the loss
scaling or the all-reduce of the whitening statistics moves the gradients by tens of percent and
the parameters by more than 1e-2.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import ddp_worker
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import gaebook
from gaebook import reductions
from gaebook.lm import distributed
from gaebook.lm import ppo as lm_ppo
from gaebook.lm.ppo import ScoredResponses
from gaebook.lm.tinygpt import Samples

TOL = {"rtol": 1e-5, "atol": 1e-6}
PARAM_TOL = {"rtol": 1e-5, "atol": 1e-5}  # see the module docstring


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """What each of two torchrun ranks recorded, by case."""
    out = tmp_path_factory.mktemp("ddp")
    root = str(Path(gaebook.__file__).parents[1])
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
    }
    # --standalone: a rendezvous on a free port, so that overlapping runs never collide
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    done = subprocess.run(
        [*command, ddp_worker.__file__, str(out)], env=env, capture_output=True, text=True, timeout=300
    )
    ranks_said = "\n".join(line for line in done.stderr.splitlines() if line.startswith("[rank"))
    assert done.returncode == 0, (ranks_said or done.stderr)[-4000:]
    return {
        case: [torch.load(out / f"{case}-{r}.pt", weights_only=False) for r in range(2)] for case in ddp_worker.CASES
    }


def joined(parts: list[ScoredResponses]) -> ScoredResponses:
    """The ranks' responses as one batch, in rank order, the prompts padded as one process pads them."""
    texts = [t for p in parts for t in p.texts]
    return ScoredResponses(
        texts=texts,
        responses=[r for p in parts for r in p.responses],
        prompts=ddp_worker.TOK.batch(texts, eos=False, pad="left"),
        samples=Samples(*(torch.cat([getattr(p.samples, f) for p in parts]) for f in ("tokens", "log_probs", "mask"))),
        correct=torch.cat([p.correct for p in parts]),
        scores=torch.cat([p.scores for p in parts]),
        ref_log_probs=torch.cat([p.ref_log_probs for p in parts]),
        rewards=torch.cat([p.rewards for p in parts]),
    )


@pytest.mark.parametrize("case", list(ddp_worker.CASES))
def test_two_ranks_compute_what_one_process_computes(ranks, case):
    r0, r1 = ranks[case]
    config = ddp_worker.CASES[case]
    # rollouts: both ranks drew the same prompts (their shared generators stayed in step) and
    # kept one half each, so the halves, in rank order, are the batch one process would draw
    assert len(r0["batches"]) == config.value_pretrain_steps + 1
    for before0, before1, after0, after1 in zip(r0["before"], r1["before"], r0["after"], r1["after"], strict=True):
        assert torch.equal(before0, before1) and torch.equal(after0, after1)
    batches = [joined(halves) for halves in zip(r0["batches"], r1["batches"], strict=True)]
    for batch, before in zip(batches, r0["before"], strict=True):
        prompts = ddp_worker.TASK.prompts(config.n_prompts, generator=torch.Generator().set_state(before))
        assert batch.texts == [p for p in prompts for _ in range(config.group_size)]
    assert all(len(b.texts) == config.batch_size // 2 for b in r0["batches"] + r1["batches"])

    one = ddp_worker.run(case, replay=(batches, r0["after"]))

    # advantages: per rank, whitened with the statistics of both ranks' tokens
    torch.testing.assert_close(torch.cat([r0["advantages"][0], r1["advantages"][0]]), one["advantages"][0], **TOL)
    # minibatches: each global minibatch of one process, split between the ranks by where its
    # responses live; the ranks' parts hold different numbers of tokens (what the loss scaling is for)
    half = config.batch_size // 2
    unequal = False
    # one call per pretraining step, on its batch, then one per epoch, on the last batch
    calls = list(range(config.value_pretrain_steps)) + [config.value_pretrain_steps] * config.n_epochs
    for i, parts0, parts1, whole in zip(calls, r0["parts"], r1["parts"], one["parts"], strict=True):
        mask0, mask1 = r0["batches"][i].samples.mask, r1["batches"][i].samples.mask
        for p0, p1, w in zip(parts0, parts1, whole, strict=True):
            assert sorted(torch.cat([p0, p1 + half]).tolist()) == sorted(w.tolist())
            unequal |= bool(mask0[p0].sum() != mask1[p1].sum())
    assert unequal
    # gradients: every update's (the critic's pretraining, then PPO's), averaged by DDP (the same
    # on both ranks), is one process's
    updates = (config.value_pretrain_steps + config.n_epochs) * config.n_minibatches
    assert len(r0["grads"]) == len(one["grads"]) == updates
    for g0, g1, g in zip(r0["grads"], r1["grads"], one["grads"], strict=True):
        assert all(torch.equal(a, b) for a, b in zip(g0, g1, strict=True))
        torch.testing.assert_close(g0, g, **TOL)
    # parameters after the iteration: the same on both ranks, and one process's
    assert all(torch.equal(a, b) for a, b in zip(r0["params"], r1["params"], strict=True))
    torch.testing.assert_close(r0["params"], one["params"], **PARAM_TOL)
    # history: every rank reports the global batch's statistics
    for field in ("reward", "accuracy", "kl", "length", "truncated", "policy_loss", "value_loss", "entropy"):
        for r in (r0, r1):
            torch.testing.assert_close(
                getattr(r["history"], field), getattr(one["history"], field), equal_nan=True, **TOL
            )
    torch.testing.assert_close(
        r0["history"].explained_variance, one["history"].explained_variance, equal_nan=True, **TOL
    )


X = torch.tensor(
    [
        [0.5, -1.0, 2.0, 0.0],
        [3.0, 1.5, -2.5, 4.0],
        [-0.5, 0.25, 1.0, -3.0],
        [2.0, 2.0, -1.0, 0.5],
        [1.0, -4.0, 0.0, 0.0],
    ]
)
MASK = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)


@pytest.fixture
def world_of_one():
    """A gloo process group of one process (an in-memory store: no port)."""
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_global_statistics_of_one_process_are_the_local_ones(world_of_one):
    # the same arithmetic as gaebook.reductions, bit for bit, with and without an explicit group
    for group in (None, dist.group.WORLD):
        assert torch.equal(distributed.masked_mean(X, MASK, group=group), reductions.masked_mean(X, MASK))
        assert torch.equal(distributed.masked_whiten(X, MASK, group=group), reductions.masked_whiten(X, MASK))
        assert torch.equal(
            distributed.masked_whiten(X, MASK, group=group, shift_mean=False),
            reductions.masked_whiten(X, MASK, shift_mean=False),
        )
        torch.testing.assert_close(distributed.masked_var(X, MASK, group=group), X[MASK].var())


def test_global_statistics_check_their_arguments():
    with pytest.raises(TypeError, match="mask"):
        distributed.masked_mean(X, MASK.float())
    with pytest.raises(TypeError, match="x"):
        distributed.masked_var(MASK, MASK)
    with pytest.raises(ValueError, match="mask has shape"):
        distributed.masked_mean(X, MASK[:2])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _on_two_ranks(rank: int, port: int) -> None:
    """The helpers on rank ``rank`` of two: rank 0 holds rows 0-1 of X, rank 1 rows 2-4."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        rows = slice(0, 2) if rank == 0 else slice(2, 5)
        x, mask = X[rows], MASK[rows]
        # the statistics pool both ranks' valid positions, whatever each holds
        torch.testing.assert_close(distributed.masked_mean(x, mask), X[MASK].mean(), **TOL)
        torch.testing.assert_close(distributed.masked_var(x, mask), X[MASK].var(), **TOL)
        for shift_mean in (True, False):
            whole = reductions.masked_whiten(X, MASK, shift_mean=shift_mean)
            torch.testing.assert_close(distributed.masked_whiten(x, mask, shift_mean=shift_mean), whole[rows], **TOL)
        assert not torch.allclose(reductions.masked_whiten(x, mask), reductions.masked_whiten(X, MASK)[rows])
        # a loss that is a token-mean over this rank's tokens, rescaled, averages to the global token-mean
        loss, stats = distributed.token_mean_share(reductions.masked_mean(x, mask), {"m": x[mask].mean()}, mask)
        torch.testing.assert_close(
            distributed.sum_over_ranks({"loss": loss / 2, **stats}),
            {"loss": X[MASK].mean(), "m": X[MASK].mean()},
            **TOL,
        )
        # blocks, gathering, and the parts of a global permutation's minibatches
        assert list(distributed.shard(range(6))) == ([0, 1, 2] if rank == 0 else [3, 4, 5])
        with pytest.raises(ValueError, match="n_prompts must be divisible"):
            distributed.shard(range(5), name="n_prompts")
        assert torch.equal(distributed.gather(MASK[:2] if rank == 0 else MASK[2:4]), MASK[:4])
        parts = distributed.minibatches(torch.tensor([5, 0, 3, 1, 4, 2]), 2)  # minibatches [5, 0, 3], [1, 4, 2]
        expected = [[0], [1, 2]] if rank == 0 else [[2, 0], [1]]  # rank 0 holds 0-2, rank 1 holds 3-5
        assert [p.tolist() for p in parts] == expected
        parts = distributed.minibatches(torch.tensor([3, 2, 0, 1]), 2)
        assert [p.tolist() for p in parts] == ([[], [0, 1]] if rank == 0 else [[1, 0], []])
        # each rank samples from a generator of its own; the shared one stays in step
        shared = torch.Generator().manual_seed(0)
        own = distributed.rank_generator(shared)
        draws = distributed.gather(torch.rand(1, 4, generator=own))
        assert not torch.equal(draws[0], draws[1])
        assert torch.equal(*distributed.gather(torch.rand(1, 4, generator=shared)))
        # the one estimator that whitens inside gaebook.lm.token_mdp refuses to run on part of a batch
        with pytest.raises(ValueError, match="reinforce"):
            lm_ppo.ADVANTAGE_ESTIMATORS["reinforce++"].fn(None, None, ddp_worker.CASES["gae"])
    finally:
        dist.destroy_process_group()


def test_helpers_on_two_processes():
    mp.spawn(_on_two_ranks, args=(_free_port(),), nprocs=2)


def test_helpers_without_a_process_group_change_nothing():
    order = torch.tensor([3, 1, 0, 2])
    assert [p.tolist() for p in distributed.minibatches(order, 2)] == [[3, 1], [0, 2]]
    assert distributed.gather(X) is X and distributed.shard([1, 2, 3]) == [1, 2, 3]
    g = torch.Generator()
    assert distributed.rank_generator(g) is g
    loss = torch.tensor(0.5)
    assert distributed.token_mean_share(loss, {"a": loss}, MASK) == (loss, {"a": loss})
    model = torch.nn.Linear(2, 2)
    assert distributed.wrap(model) is model
