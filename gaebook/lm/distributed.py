"""Data-parallel PPO for a language model: :func:`gaebook.lm.ppo.finetune` on several processes.

Launched with ``torchrun`` (``torchrun --nproc_per_node=2 -m gaebook.lm.distributed``, see
:func:`main`), :func:`~gaebook.lm.ppo.finetune` splits each iteration across the ranks of the
default process group (gloo on a CPU, NCCL on GPUs) and computes what one process would have
computed on the whole batch:

* **rollouts**: every rank draws the same global batch of prompts from the shared-seed
  generator and keeps its contiguous block of prompts (:func:`shard`), so a prompt's group of
  responses lives on one rank and the blocks, in rank order, are the global batch; each rank
  samples its responses with a generator of its own (:func:`rank_generator`);
* **advantages** per rank (GAE runs along each response); whitening uses the mean and variance of
  every rank's valid tokens (:func:`masked_whiten`);
* **minibatches**: one global permutation, drawn identically on every rank; each rank takes the
  responses of each global minibatch that it holds (:func:`minibatches`), which may be more or
  fewer than another rank's, or none;
* **gradients** averaged by :class:`~torch.nn.parallel.DistributedDataParallel` (:func:`wrap`),
  each rank's loss scaled by ``world_size · n_rank / n_global``, its share of the minibatch's
  valid tokens (:func:`token_mean_share`): the average of the ranks' token-means is not the
  token-mean of the minibatch when ranks hold different numbers of tokens (verl scales by its
  global token count for the same reason);
* **statistics**: every rank reports those of the global batch (:func:`gather`,
  :func:`sum_over_ranks`).

Without an initialised process group every helper leaves its input as it is (a world of one), so
``finetune`` in one process is unchanged. The masked statistics (:func:`masked_mean`,
:func:`masked_var`, :func:`masked_whiten`) take an optional ``group``; the others use the
default group.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from typing import TypeVar, cast

import torch
import torch.distributed as dist
from torch import Tensor, nn

from gaebook import reductions

__all__ = [
    "gather",
    "main",
    "masked_mean",
    "masked_var",
    "masked_whiten",
    "minibatches",
    "rank_generator",
    "shard",
    "sum_over_ranks",
    "token_mean_share",
    "world",
    "wrap",
]

T = TypeVar("T")


def _initialised() -> bool:
    return dist.is_available() and dist.is_initialized()


def world(group: dist.ProcessGroup | None = None) -> tuple[int, int]:
    """``(rank, world_size)`` in ``group`` (the default group if ``None``); ``(0, 1)`` without one."""
    if group is None and not _initialised():
        return 0, 1
    return dist.get_rank(group), dist.get_world_size(group)


def _block(n: int, name: str) -> slice:
    """This rank's contiguous block of ``n`` items, in the default group."""
    rank, size = world()
    if n % size:
        raise ValueError(f"{name} must be divisible by the number of processes ({size}); got {n}")
    per_rank = n // size
    return slice(rank * per_rank, (rank + 1) * per_rank)


def shard(items: Sequence[T], *, name: str = "len(items)") -> Sequence[T]:
    """This rank's contiguous block of ``items`` (all of them without a process group).

    ``len(items)`` must be divisible by the world size (``ValueError`` naming ``name`` if not);
    ranks ``0, 1, …`` hold the blocks in order.
    """
    return items[_block(len(items), name)]


def rank_generator(generator: torch.Generator) -> torch.Generator:
    """A generator for this rank's own randomness (sampling), on ``generator``'s device.

    Without a process group it is ``generator`` itself. Otherwise every rank draws the same
    ``world_size`` seeds from ``generator`` (so the shared generators stay in step) and seeds a new
    generator with the one at its rank: the ranks sample independently, and a rank's sampling,
    whose number of draws depends on when its responses end, never moves the shared generator.
    One host read.
    """
    if not _initialised():
        return generator
    rank, size = world()
    seeds = torch.randint(0, 2**62, (size,), generator=generator, device=generator.device)
    return torch.Generator(device=generator.device).manual_seed(int(seeds[rank]))


def wrap(model: T) -> T:
    """``model`` in :class:`~torch.nn.parallel.DistributedDataParallel` (``model`` itself without a
    process group).

    The wrapper copies rank 0's parameters and buffers to every rank when it is made, and averages
    the gradients over the ranks in ``backward``. It is typed as ``model`` so that it can be passed
    where ``model`` is called, but only its ``forward`` is ``model``'s: train through the wrapper,
    read attributes and sample on ``model``.
    """
    if not _initialised():
        return model
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module to be trained data-parallel; got {type(model).__name__}")
    device = next(model.parameters()).device
    ddp = nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    return cast(T, ddp)


def minibatches(order: Tensor, n_minibatches: int) -> list[Tensor]:
    """This rank's part of each of the ``n_minibatches`` global minibatches of ``order``.

    ``order`` is a long ``(B,)`` permutation of the global batch, the same on every rank; global
    minibatch ``j`` is ``order.chunk(n_minibatches)[j]``. A rank's part holds the minibatch's
    responses in the rank's :func:`shard` of the batch, as indices into that shard (in the order
    of ``order``, on its device); parts differ in length between ranks and may be empty. Without a
    process group the parts are the global minibatches. One host read of ``order`` per call
    (the parts' lengths depend on it).
    """
    chunks = order.chunk(n_minibatches)
    if not _initialised():
        return list(chunks)
    block = _block(len(order), "len(order)")
    parts = []
    for chunk in order.cpu().chunk(n_minibatches):
        mine = chunk[(chunk >= block.start) & (chunk < block.stop)] - block.start
        parts.append(mine.to(order.device))
    return parts


def _all_reduce(x: Tensor, group: dist.ProcessGroup | None) -> Tensor:
    """The sum of ``x`` over the ranks of ``group`` (``x`` itself without a process group)."""
    if group is not None or _initialised():
        dist.all_reduce(x, group=group)
    return x


def token_mean_share(loss: Tensor, stats: Mapping[str, Tensor], mask: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """Turn a masked token-mean over this rank's part of a minibatch into its share of the global one.

    ``loss`` and ``stats`` are token-means over the valid positions of ``mask`` (bool, this rank's
    part of the minibatch, e.g. ``(b, T)``); with ``n`` this rank's valid tokens and ``N`` their
    sum over the ranks, returns ``loss · world_size · n / N`` (so that the gradient averaged by
    :class:`~torch.nn.parallel.DistributedDataParallel` is that of the global token-mean) and each
    statistic times ``n / N`` (so that their :func:`sum_over_ranks` is the global token-mean).
    Unchanged without a process group. One all-reduce; no host read.
    """
    if not _initialised():
        return loss, dict(stats)
    n = mask.sum().to(loss.dtype)
    share = n / _all_reduce(n.clone(), None).clamp_min(1)
    return loss * (share * world()[1]), {k: v * share for k, v in stats.items()}


def sum_over_ranks(stats: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Each statistic summed over the ranks (one all-reduce); unchanged without a process group."""
    if not _initialised():
        return dict(stats)
    names = sorted(stats)
    total = _all_reduce(torch.stack([stats[k] for k in names]), None)
    return dict(zip(names, total.unbind(), strict=True))


def gather(x: Tensor) -> Tensor:
    """Every rank's ``x`` concatenated along the first dimension, in rank order: the global batch's rows.

    Every rank's ``x`` must have the same shape, e.g. ``(b, T)`` or ``(b,)`` with ``b`` rows per
    rank, giving ``(world_size · b, …)``. ``x`` itself without a process group.
    """
    if not _initialised():
        return x
    wire = x.to(torch.uint8) if x.dtype == torch.bool else x  # gloo gathers no bools
    parts = [torch.empty_like(wire) for _ in range(world()[1])]
    dist.all_gather(parts, wire.contiguous())
    return torch.cat(parts).to(x.dtype)


def _check(x: object, mask: object) -> None:
    if not isinstance(x, Tensor) or not x.dtype.is_floating_point:
        raise TypeError(f"x must be a floating torch.Tensor; got {getattr(x, 'dtype', type(x).__name__)}")
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor; got {getattr(mask, 'dtype', type(mask).__name__)}")
    if mask.shape != x.shape:
        raise ValueError(f"mask has shape {tuple(mask.shape)} but x has {tuple(x.shape)}")


def _mean_and_count(x: Tensor, mask: Tensor, group: dist.ProcessGroup | None) -> tuple[Tensor, Tensor]:
    m = mask.to(x.dtype)
    total = _all_reduce(torch.stack([(x * m).sum(), m.sum()]), group)
    return total[0] / total[1].clamp_min(1), total[1]


def masked_mean(x: Tensor, mask: Tensor, *, group: dist.ProcessGroup | None = None) -> Tensor:
    """The mean of ``x`` over the positions where ``mask`` is ``True`` on every rank of ``group``.

    :func:`gaebook.reductions.masked_mean` of all the ranks' positions pooled: ``x`` floating and
    ``mask`` bool of one shape (which may differ between ranks); a 0-d tensor, the same on every
    rank (0 if no position is valid). ``group=None`` is the default group, or this process alone
    without one. One all-reduce.
    """
    _check(x, mask)
    return _mean_and_count(x, mask, group)[0]


def _var(x: Tensor, mask: Tensor, group: dist.ProcessGroup | None) -> tuple[Tensor, Tensor]:
    mean, n = _mean_and_count(x, mask, group)
    squares = _all_reduce((((x - mean) ** 2) * mask.to(x.dtype)).sum(), group)
    return mean, squares / (n - 1).clamp_min(1)


def masked_var(x: Tensor, mask: Tensor, *, group: dist.ProcessGroup | None = None) -> Tensor:
    """The unbiased variance of ``x`` over the valid positions of every rank of ``group``: a 0-d tensor.

    Two passes (the mean, then the squared deviations from it), as a single process computes it;
    arguments as :func:`masked_mean`. Two all-reduces.
    """
    _check(x, mask)
    return _var(x, mask, group)[1]


def masked_whiten(
    x: Tensor, mask: Tensor, *, group: dist.ProcessGroup | None = None, shift_mean: bool = True, eps: float = 1e-8
) -> Tensor:
    """:func:`gaebook.reductions.masked_whiten` with the statistics of every rank's valid positions.

    ``(x − mean) / (std + eps)`` with :func:`masked_mean` and the square root of
    :func:`masked_var` over all the ranks of ``group``, so that each rank's whitened block equals
    the corresponding block of the whole batch whitened in one process; 0 at masked positions.
    Without ``group`` and without a process group it is :func:`gaebook.reductions.masked_whiten`.

    Args:
        x: floating, e.g. this rank's advantages ``(b, T)``.
        mask: bool of the same shape.
        group: the process group; ``None`` is the default one.
        shift_mean, eps: as :func:`gaebook.reductions.masked_whiten`.
    """
    if group is None and not _initialised():
        return reductions.masked_whiten(x, mask, shift_mean=shift_mean, eps=eps)
    _check(x, mask)
    mean, var = _var(x, mask, group)
    white = (x - mean) / (var.sqrt() + eps)
    if not shift_mean:
        white = white + mean
    return white.masked_fill(~mask, 0.0)


def main(argv: Sequence[str] | None = None) -> None:
    """Fine-tune a pretrained TinyGPT on a task with PPO on every process of a ``torchrun`` launch.

    ``torchrun --nproc_per_node=2 -m gaebook.lm.distributed --advantage gae --iterations 20``: NCCL
    with one GPU per process when CUDA is available, gloo on the CPU otherwise. Every rank builds
    and pretrains the same policy from the same seed; rank 0 prints the history.
    """
    from gaebook.lm import ppo, tasks
    from gaebook.lm.tinygpt import CharTokenizer, TinyGPT, pretrain

    parser = argparse.ArgumentParser(prog="torchrun --nproc_per_node=N -m gaebook.lm.distributed")
    parser.add_argument("--task", choices=("credit", "parens", "addition"), default="parens")
    parser.add_argument("--advantage", default="gae")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--n-prompts", type=int, default=64)
    parser.add_argument("--group-size", type=int, default=1)
    parser.add_argument("--pretrain-steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    dist.init_process_group("nccl" if cuda else "gloo")
    try:
        task = {"credit": tasks.CreditProbe(4), "parens": tasks.BalancedParens(), "addition": tasks.Addition()}[
            args.task
        ]
        tok = CharTokenizer(task.alphabet)
        generator = torch.Generator(device=device).manual_seed(args.seed)
        torch.manual_seed(args.seed)
        policy = TinyGPT(tok.vocab_size, max_len=32, d_model=64, n_layers=2, n_heads=4).to(device)
        data = tok.batch(task.demonstrations(2000, corruption=0.5, generator=generator)).to(device)
        pretrain(policy, data, steps=args.pretrain_steps, generator=generator, progress=False)
        config = ppo.LMPPOConfig(
            iterations=args.iterations, n_prompts=args.n_prompts, group_size=args.group_size, advantage=args.advantage
        )
        history = ppo.finetune(policy, task, tok, config, generator=generator, progress=world()[0] == 0)
        if world()[0] == 0:
            for i, (reward, kl) in enumerate(zip(history.reward.tolist(), history.kl.tolist(), strict=True)):
                print(f"iteration {i + 1:3d}  reward {reward:+.3f}  kl {kl:.4f}")
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
