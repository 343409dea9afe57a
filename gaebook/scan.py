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

Every operation reads and writes long runs of contiguous memory, the number of dispatched
operations is O(log T), and the work is O(T log C). The rounds ping-pong between the inputs and
one spare pair of buffers, so besides copies of its inputs (which ``overwrite=True`` saves) the scan
allocates two arrays of the input's size, and smaller ones for the levels above.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["reverse_linear_scan"]

CHUNK = 32


def _doubling_(x: Tensor, p: Tensor, *, weights: bool) -> tuple[Tensor, Tensor | None]:
    """Solve the recurrence inside the last dimension of contiguous ``x`` (= b) and ``p`` (= a).

    Overwrites both. Returns the local solution and, if ``weights``, the suffix products
    ``p_j = a_j ⋯ a_{C−1}``; each is ``x``/``p`` or one spare buffer.
    """
    steps = x.shape[-1]
    spare_x, spare_p = torch.empty_like(x), torch.empty_like(p)
    shift = 1
    while shift < steps:
        # (x, p)_j ← (x_j + p_j · x_{j+s}, p_j · p_{j+s}) where j + s is inside the chunk; the
        # last s entries already reach the chunk's end and are carried over unchanged
        torch.addcmul(x[..., :-shift], p[..., :-shift], x[..., shift:], out=spare_x[..., :-shift])
        spare_x[..., -shift:] = x[..., -shift:]
        x, spare_x = spare_x, x
        if weights or 2 * shift < steps:
            torch.mul(p[..., :-shift], p[..., shift:], out=spare_p[..., :-shift])
            spare_p[..., -shift:] = p[..., -shift:]
            p, spare_p = spare_p, p
        shift *= 2
    return x, (p if weights else None)


def _solve_(b: Tensor, a: Tensor) -> Tensor:
    """Solve contiguous ``(N, T)`` inputs by the three steps of the module docstring; overwrites them."""
    width, steps = b.shape
    if steps <= CHUNK:
        return _doubling_(b, a, weights=False)[0]
    chunks = -(-steps // CHUNK)
    pad = chunks * CHUNK - steps
    if pad:  # padding after the end: b = 0 and a = 0 leave the real steps untouched
        b = torch.cat([b, b.new_zeros(width, pad)], dim=1)
        a = torch.cat([a, a.new_zeros(width, pad)], dim=1)
    local, weight = _doubling_(b.view(width, chunks, CHUNK), a.view(width, chunks, CHUNK), weights=True)
    starts = _solve_(local[..., 0].clone(), weight[..., 0].clone())  # (N, K): X_k
    # the last chunk's carry-in is X_K = 0; every other chunk k gets X_{k+1}
    local[:, :-1].addcmul_(weight[:, :-1], starts[:, 1:].unsqueeze(-1))
    x = local.view(width, chunks * CHUNK)
    return x[:, :steps] if pad else x


def reverse_linear_scan(b: Tensor, a: Tensor, *, overwrite: bool = False) -> Tensor:
    """Solve ``x_t = b_t + a_t · x_{t+1}`` backwards in time with ``x_T = 0``.

    Args:
        b: ``(..., T)`` floating tensor.
        a: ``(..., T)`` tensor of the same dtype and device (broadcast to ``b``'s shape).
        overwrite: let the scan use ``b`` and ``a`` as its workspace, which saves copying them;
            for tensors the caller no longer needs. The result never shares memory with ``a``,
            so the caller may reuse ``a``'s memory afterwards (``gaebook.gae`` writes its returns
            there).

    Returns:
        ``x`` of shape ``(..., T)``, on ``b``'s device and in its dtype. No host synchronisation.
    """
    shape = b.shape
    if b.numel() == 0:
        return torch.empty_like(b)
    steps = shape[-1]
    a = a.expand_as(b)
    if not (overwrite and b.is_contiguous() and a.is_contiguous()):
        b, a = (x.clone(memory_format=torch.contiguous_format) for x in (b, a))
    return _solve_(b.view(-1, steps), a.view(-1, steps)).reshape(shape)
