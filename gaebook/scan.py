"""The first-order linear recurrence behind every estimator in :mod:`gaebook.advantages`.

GAE, Monte Carlo returns and λ-returns are all ``x_t = b_t + a_t · x_{t+1}`` solved backwards in
time with ``x_T = 0``. The plain loop dispatches O(T) small operations, which on a GPU means O(T)
kernel launches and on a CPU O(T) interpreter round trips. This module solves it in blocks:

1. cut time into ``K`` chunks of ``C`` steps and solve every chunk at once with a zero carry-in,
   by recursive doubling: after the round with shift ``s``, ``(x_j, p_j)`` is the composition of
   the steps ``j … j+2s−1`` (clipped at the chunk's end), so ``log2 C`` rounds of whole-tensor
   operations give the local solution ``x^{local}_{k,j}`` and ``p_{k,j} = a_{k,j} ⋯ a_{k,C−1}``,
   the weight a carry-in would get;
2. the chunk starts then obey the same recurrence, ``X_k = x^{local}_{k,0} + p_{k,0} · X_{k+1}``,
   over ``K = T / C`` steps: solve it recursively;
3. add each chunk's carry: ``x_{k,j} = x^{local}_{k,j} + p_{k,j} · X_{k+1}``.

Time can be any dimension of the inputs (``time_dim``). A contiguous tensor of shape
``(*before, T, *after)`` is, in memory, an array ``(M, T, I)`` with ``M`` the product of the
dimensions before time and ``I`` of those after it; its chunks are the view ``(M, K, C, I)`` and
every step above works along the chunk dimension of that view. Time last (``I = 1``, as ``(N, T)``
rollouts) and time first (``M = 1``, as the time-major ``(T, N)`` buffers of SB3 or CleanRL) are
two cases of one code path: nothing is transposed, and in the time-major layout each run of steps
is a contiguous block of rows.

A small problem, of at most ``SMALL`` elements (or one chunk), costs its dispatched operations more
than its arithmetic: it is solved as a single chunk of ``T`` steps, by doubling over the whole
length in a zero-padded workspace of five arrays (each at most one and a half times its size),
where one ``addcmul`` per round updates ``x`` and ``p`` together: ``log2 T`` operations, a few more
to set up. A larger one is cut into chunks of ``C = 32`` steps, and the chunk starts are solved the
same way, recursively, until they make a small problem.

Every operation reads and writes runs of contiguous memory, the number of dispatched operations is
O(log T), and the work is O(T log C). The rounds of the chunked scan ping-pong between the inputs
and one spare pair of buffers, so besides copies of its inputs (which ``overwrite=True`` saves when
they are contiguous and ``T`` is a multiple of ``C``) it allocates two arrays of the input's size,
and smaller ones for the levels above.
"""

from __future__ import annotations

import math
from numbers import Integral

import torch
from torch import Tensor

__all__ = ["check_time_dim", "reverse_linear_scan"]

CHUNK = 32
SMALL = 2**16  # up to this many elements one chunk is faster than chunks (timed on a CPU at 1 thread)


def check_time_dim(time_dim: object, ndim: int) -> int:
    """Validate ``time_dim`` for a tensor of ``ndim`` dimensions; return it as an index in ``[0, ndim)``.

    Raises:
        TypeError: ``time_dim`` is not an int (a bool is not accepted).
        ValueError: it is out of range, or the tensor has no dimension at all.
    """
    if isinstance(time_dim, bool) or not isinstance(time_dim, Integral):
        raise TypeError(f"time_dim must be an int; got {type(time_dim).__name__}")
    if ndim == 0:
        raise ValueError("the inputs must have a time dimension; got 0-d tensors")
    index = int(time_dim)
    if not -ndim <= index < ndim:
        raise ValueError(f"time_dim={index} is out of range for inputs of {ndim} dimensions (-{ndim} to {ndim - 1})")
    return index % ndim


def _flat(shape: torch.Size, dim: int) -> tuple[int, int, int]:
    """``(M, T, I)``: the shape seen as (dimensions before time, time, dimensions after it)."""
    return math.prod(shape[:dim]), shape[dim], math.prod(shape[dim + 1 :])


def _one_chunk(b: Tensor, a: Tensor, dim: int) -> Tensor:
    """Solve a small problem by doubling over the whole length, in few dispatched operations.

    ``b`` and ``a`` (any strides, time at ``dim``) are only read. The workspace holds five slabs
    ``(x0, x1, 0, p0, p1)``, each ``(M, T + H, I)`` with ``H`` the largest shift, zero-filled, so
    the padding after the end has ``b = a = 0`` (which changes nothing). The slabs are placed so
    that the pairs ``[x_i, p_i]`` and ``[x_i, 0]`` are strided views, and one ``addcmul`` per round
    updates both halves, ``[x, p] ← [x, 0] + [p, p] · [x, p]_{+s}``, ping-ponging between pairs 0
    and 1; the last round writes ``x`` alone into the result. Returns a new contiguous tensor of
    ``b``'s shape.
    """
    shape = b.shape
    outer, steps, inner = _flat(shape, dim)
    out = torch.empty(shape, dtype=b.dtype, device=b.device)
    if steps == 1:
        return out.copy_(b)
    shifts = 1 << (steps - 1).bit_length() - 1
    row = (steps + shifts) * inner
    size = outer * row  # one slab
    strides = (row, inner, 1)
    work = torch.zeros(5 * size, dtype=b.dtype, device=b.device)
    # b and a go into the first T steps of x0 and p0, seen in b's own shape (time at dim)
    in_strides = [
        row * math.prod(shape[d + 1 : dim]) if d < dim else inner if d == dim else math.prod(shape[d + 1 :])
        for d in range(len(shape))
    ]
    work.as_strided(shape, in_strides, 0).copy_(b)
    work.as_strided(shape, in_strides, 3 * size).copy_(a)

    def pair(offset: int, apart: int) -> Tensor:
        return work.as_strided((2, outer, steps, inner), (apart, *strides), offset)

    both = (pair(0, 3 * size), pair(size, 3 * size))  # [x_i, p_i]
    keep = (pair(0, 2 * size), pair(size, size))  # [x_i, 0]
    weight = (pair(3 * size, 0), pair(4 * size, 0))  # [p_i, p_i]
    cur, shift = 0, 1
    while 2 * shift < steps:
        later = pair(cur * size + shift * inner, 3 * size)  # [x_i, p_i] shifted by s
        torch.addcmul(keep[cur], weight[cur], later, out=both[1 - cur])
        cur, shift = 1 - cur, 2 * shift
    later = pair(cur * size + shift * inner, 3 * size)
    torch.addcmul(keep[cur][0], weight[cur][0], later[0], out=out.view(outer, steps, inner))
    return out


def _doubling_(x: Tensor, p: Tensor) -> tuple[Tensor, Tensor]:
    """Solve every chunk of contiguous ``(M, K, C, I)`` views: ``x`` holds b and ``p`` holds a.

    Overwrites both, ping-ponging with one spare pair of buffers (the pairs whose partner lies
    past the chunk's end are copied over). Returns the local solution and the suffix products
    ``p_{k,j} = a_{k,j} ⋯ a_{k,C−1}``; each is ``x``/``p`` or its spare, never the other's.
    """
    steps = x.shape[2]
    spare_x, spare_p = torch.empty_like(x), torch.empty_like(p)
    shift = 1
    while shift < steps:
        head = steps - shift
        torch.addcmul(x[:, :, :head], p[:, :, :head], x[:, :, shift:], out=spare_x[:, :, :head])
        spare_x[:, :, head:] = x[:, :, head:]
        torch.mul(p[:, :, :head], p[:, :, shift:], out=spare_p[:, :, :head])
        spare_p[:, :, head:] = p[:, :, head:]
        x, spare_x, p, spare_p = spare_x, x, spare_p, p
        shift *= 2
    return x, p


def _chunked_(b: Tensor, a: Tensor) -> Tensor:
    """Solve contiguous ``(M, T, I)`` inputs, ``T`` a multiple of ``CHUNK``, by the three steps above.

    Overwrites ``b`` and ``a``; the result is in ``b``'s memory or a spare buffer, never in ``a``'s.
    """
    outer, steps, inner = b.shape
    chunks = steps // CHUNK
    local, weight = _doubling_(b.view(outer, chunks, CHUNK, inner), a.view(outer, chunks, CHUNK, inner))
    starts = _solve(local[:, 1:, 0], weight[:, 1:, 0], 1)  # (M, K − 1, I): X_1 … X_{K−1}
    # every chunk k but the last gets the carry X_{k+1}; the last one's is X_K = 0
    local[:, :-1].addcmul_(weight[:, :-1], starts.view(outer, chunks - 1, 1, inner))
    return local.view(outer, steps, inner)


def _workspace(b: Tensor, a: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """Contiguous ``(M, T', I)`` copies of ``b`` and ``a`` (time at ``dim``), padded to whole chunks.

    ``T'`` is ``T`` rounded up to a multiple of ``CHUNK``; the padding after the end has ``b = 0``
    and ``a = 0``, which leaves the real steps untouched. One copy of each input, whatever its strides.
    """
    outer, steps, inner = _flat(b.shape, dim)
    padded = -(-steps // CHUNK) * CHUNK
    out_b, out_a = (torch.empty(outer, padded, inner, dtype=b.dtype, device=b.device) for _ in range(2))
    out_b[:, :steps].view(b.shape).copy_(b)
    out_a[:, :steps].view(b.shape).copy_(a)
    if padded > steps:
        out_b[:, steps:], out_a[:, steps:] = 0, 0
    return out_b, out_a


def _solve(b: Tensor, a: Tensor, dim: int) -> Tensor:
    """Solve ``b`` and ``a`` (any strides, time at ``dim``; only read) into an ``(M, T, I)`` result.

    A small problem, at most one chunk or ``SMALL`` elements, costs its dispatched operations more
    than its arithmetic: it is one chunk of ``T`` steps. A larger one is cut into chunks.
    """
    outer, steps, inner = _flat(b.shape, dim)
    if steps <= CHUNK or b.numel() <= SMALL:
        return _one_chunk(b, a, dim).view(outer, steps, inner)
    return _chunked_(*_workspace(b, a, dim))[:, :steps]


def reverse_linear_scan(b: Tensor, a: Tensor, *, time_dim: int = -1, overwrite: bool = False) -> Tensor:
    """Solve ``x_t = b_t + a_t · x_{t+1}`` backwards in time with ``x_T = 0``.

    Args:
        b: floating tensor with time at dimension ``time_dim``: ``(..., T)`` by default, ``(T, ...)``
            with ``time_dim=0``.
        a: tensor of the same dtype and device (broadcast to ``b``'s shape).
        time_dim: which dimension of ``b`` is time; any one is solved in its own layout, without a
            transposed copy.
        overwrite: let the scan use ``b`` and ``a`` as its workspace, which saves copying them when
            both are contiguous and the problem is solved by chunks (more than ``SMALL`` elements,
            ``T`` a multiple of 32; a small one is only read); for tensors the caller no longer
            needs. The result never shares memory with ``a``, so the caller may reuse ``a``'s memory
            afterwards (``gaebook.gae`` writes its returns there).

    Returns:
        ``x`` of ``b``'s shape, on its device and in its dtype, with time at ``time_dim`` and the
        other dimensions in ``b``'s order (contiguous, or a view of a padded contiguous array).
        No host synchronisation.
    """
    dim = check_time_dim(time_dim, b.ndim)
    shape = b.shape
    if b.numel() == 0:
        return torch.empty_like(b)
    a = a.expand_as(b)
    outer, steps, inner = _flat(shape, dim)
    if overwrite and steps % CHUNK == 0 and b.numel() > SMALL and b.is_contiguous() and a.is_contiguous():
        x = _chunked_(b.view(outer, steps, inner), a.view(outer, steps, inner))
    else:
        x = _solve(b, a, dim)
    return x.view(shape)  # splits the outer and inner dimensions back: a view, even of a padded array
