"""The first-order linear recurrence behind every estimator in :mod:`gaebook.advantages`.

GAE, Monte Carlo returns and λ-returns are all ``x_t = b_t + a_t · x_{t+1}`` solved backwards in
time with ``x_T = 0``. The plain loop dispatches O(T) small operations, which on a GPU means O(T)
kernel launches and on a CPU O(T) interpreter round trips. This module solves it in blocks:

1. cut time into ``K`` chunks of ``C`` steps and, inside every chunk at once, run the loop with a
   zero carry-in, keeping ``p_j = a_j · a_{j+1} ⋯ a_{C−1}``, the weight a carry-in would get;
2. the chunk starts then obey the same recurrence, ``X_k = x^{local}_{k,0} + p_{k,0} · X_{k+1}``,
   over ``K = T / C`` steps: solve it recursively;
3. add each chunk's carry: ``x_{k,j} = x^{local}_{k,j} + p_{k,j} · X_{k+1}``.

Every loop step works on a whole ``(N, K)`` slab, so the number of dispatched operations is
O(C · log_C T) instead of O(T), and the arithmetic is a few multiply-adds per element.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["reverse_linear_scan"]

CHUNK = 16


def _sequential(b: Tensor, a: Tensor) -> Tensor:
    """The plain loop over the last (time) dimension of ``(N, T)`` tensors."""
    x = torch.empty(b.shape, dtype=b.dtype, device=b.device)
    x[:, -1] = b[:, -1]
    for t in range(b.shape[1] - 2, -1, -1):
        torch.addcmul(b[:, t], a[:, t], x[:, t + 1], out=x[:, t])
    return x


def _solve(b: Tensor, a: Tensor) -> Tensor:
    """Solve ``(N, T)`` inputs (time last, any strides) by the three steps of the module docstring.

    The chunks are views ``(N, K, CHUNK)`` of the inputs, so nothing is copied or transposed:
    each loop step reads and writes a strided ``(N, K)`` slab.
    """
    width, steps = b.shape
    if steps <= 2 * CHUNK:
        return _sequential(b, a)
    chunks = -(-steps // CHUNK)
    pad = chunks * CHUNK - steps
    if pad:  # padding after the end: b = 0 and a = 0 leave the real steps untouched
        b = torch.cat([b, b.new_zeros(width, pad)], dim=1)
        a = torch.cat([a, a.new_zeros(width, pad)], dim=1)
    b, a = b.reshape(width, chunks, CHUNK), a.reshape(width, chunks, CHUNK)
    local = torch.empty(b.shape, dtype=b.dtype, device=b.device)
    weight = torch.empty_like(local)
    local[..., -1], weight[..., -1] = b[..., -1], a[..., -1]
    for j in range(CHUNK - 2, -1, -1):
        torch.addcmul(b[..., j], a[..., j], local[..., j + 1], out=local[..., j])
        torch.mul(a[..., j], weight[..., j + 1], out=weight[..., j])
    starts = _solve(local[..., 0], weight[..., 0])  # (N, K): X_k, the solution at chunk k's first step
    carry_in = torch.cat([starts[:, 1:], starts.new_zeros(width, 1)], dim=1)  # X_{k+1}
    x = torch.addcmul(local, weight, carry_in.unsqueeze(-1))
    return x.reshape(width, chunks * CHUNK)[:, :steps]


def reverse_linear_scan(b: Tensor, a: Tensor) -> Tensor:
    """Solve ``x_t = b_t + a_t · x_{t+1}`` backwards in time with ``x_T = 0``.

    Args:
        b: ``(..., T)`` floating tensor.
        a: ``(..., T)`` tensor of the same dtype and device (broadcast to ``b``'s shape).

    Returns:
        ``x`` of shape ``(..., T)``, on ``b``'s device and in its dtype. No host synchronisation.
    """
    shape = b.shape
    if b.numel() == 0:
        return torch.empty_like(b)
    steps = shape[-1]
    return _solve(b.reshape(-1, steps), a.expand_as(b).reshape(-1, steps)).reshape(shape)
