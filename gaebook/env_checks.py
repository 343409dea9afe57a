"""Argument checks shared by the batched torch environments (:mod:`gaebook.cartpole`,
:mod:`gaebook.catch`, :mod:`gaebook.pendulum`), so that each rejects bad input the same way."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["check_action_tensor", "check_batch_args"]


def check_batch_args(
    batch_shape: object, generator: object, device: torch.device | str | None, dtype: object
) -> torch.device:
    """Check an environment's common constructor arguments; return the device it lives on.

    ``batch_shape`` must be a tuple of positive ints, ``generator`` a ``torch.Generator`` on that
    device (which defaults to the generator's), ``dtype`` a floating ``torch.dtype``.
    """
    if not isinstance(batch_shape, tuple) or not all(
        isinstance(n, int) and not isinstance(n, bool) for n in batch_shape
    ):
        raise TypeError(f"batch_shape must be a tuple of ints, e.g. (64,); got {batch_shape!r}")
    if any(n < 1 for n in batch_shape):
        raise ValueError(f"batch_shape must contain positive sizes only; got {batch_shape!r}")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator; got {type(generator).__name__}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype; got {dtype!r}")
    device = generator.device if device is None else torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    if generator.device != device:
        raise ValueError(f"generator must be on device {device}; it is on {generator.device}")
    return device


def check_action_tensor(actions: object, shape: tuple[int, ...], device: torch.device, *, discrete: bool) -> Tensor:
    """Check the type, dtype (integer if ``discrete``, else floating), shape and device of ``actions``.

    Reads no values, so it never synchronises with the device.
    """
    if not isinstance(actions, Tensor):
        raise TypeError(f"actions must be a torch.Tensor; got {type(actions).__name__}")
    if discrete and (actions.dtype.is_floating_point or actions.dtype.is_complex or actions.dtype == torch.bool):
        raise TypeError(f"actions must be an integer (long) tensor; got dtype {actions.dtype}")
    if not discrete and not actions.dtype.is_floating_point:
        raise TypeError(f"actions must be a floating tensor; got dtype {actions.dtype}")
    if actions.shape != shape:
        raise ValueError(f"actions must have shape {shape}; got {tuple(actions.shape)}")
    if actions.device != device:
        raise ValueError(f"actions must be on device {device}; got {actions.device}")
    return actions
