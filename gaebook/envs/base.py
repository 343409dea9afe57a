"""The contract every vector environment meets, and the base class of the environments written in torch.

A vector environment steps a batch of independent copies of a task at once: ``batch_shape`` of
them, ``(G, n_envs)`` for :func:`gaebook.ppo.train` (``n_envs`` copies for each of ``G`` agents).

* :class:`VectorEnv` is the contract, what a trainer may rely on: the sizes of observations and
  actions, the longest episode, the batch, the device, ``reset`` and ``step``;
* :class:`StepResult` is what ``step`` returns, five tensors that unpack like a tuple;
* :class:`TensorEnv` is the base class of the batched torch environments: it holds their batch,
  generator, device and dtype, and makes the checks each of them needs (constructor arguments,
  ``reset`` before ``step``, the actions) in one place;
* :func:`validate_actions`, :func:`resolve_device` and :func:`same_device` are those checks, for
  environments that do not derive from :class:`TensorEnv` (the Gymnasium adapter).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import NamedTuple, Protocol, runtime_checkable

import torch
from torch import Tensor

__all__ = ["StepResult", "TensorEnv", "VectorEnv", "resolve_device", "same_device", "validate_actions"]


class StepResult(NamedTuple):
    """What :meth:`VectorEnv.step` returns; it unpacks as ``next_obs, rewards, terminated, truncated, final_obs``.

    Shapes, with ``B = batch_shape`` and ``D = observation_size``:

    * ``next_obs`` ``(*B, D)``: the observation the policy sees next: ``final_obs`` where the
      episode goes on, the first observation of a new episode where it ended (same-step autoreset);
    * ``rewards`` ``(*B,)``, floating: the reward of the step;
    * ``terminated`` bool ``(*B,)``: the episode reached a terminal state (its value is 0);
    * ``truncated`` bool ``(*B,)``: the episode reached ``max_episode_steps`` without
      terminating (the time limit); never true together with ``terminated``;
    * ``final_obs`` ``(*B, D)``: the observation the step reached, before any reset: the one to
      bootstrap a truncated episode from.
    """

    next_obs: Tensor
    rewards: Tensor
    terminated: Tensor
    truncated: Tensor
    final_obs: Tensor


@runtime_checkable
class VectorEnv(Protocol):
    """A batch of independent copies of a task, stepped together on tensors (with same-step autoreset).

    Attributes (read-only):
        observation_size: ``D``, the length of an observation vector.
        n_actions, action_size: the action space. Exactly one of the two is an int, the other is
            ``None``. A *discrete* environment has ``n_actions``: its actions are integer (long)
            tensors ``(*batch_shape,)`` with values in ``[0, n_actions)``. A *continuous* one has
            ``action_size``: its actions are floating tensors ``(*batch_shape, action_size)``. So
            ``ActorCritic(env.observation_size, n_actions=env.n_actions,
            action_size=env.action_size, ...)`` builds the matching policy.
        max_episode_steps: the longest an episode lasts: on this step at the latest it terminates
            or is truncated.
        batch_shape: the leading dims of every tensor, e.g. ``(G, n_envs)``.
        device: where the tensors live (resolved: ``cuda:0``, not ``cuda``).

    ``reset()`` starts a new episode in every copy and returns the observations
    ``(*batch_shape, observation_size)``; ``step`` before the first ``reset`` raises ``RuntimeError``.
    ``step(actions, check_actions=True)`` advances every copy by one step and returns a
    :class:`StepResult`. Where an episode ends, the copy starts a new one within the same step:
    ``next_obs`` is already its first observation. Actions of the wrong type, dtype, shape or
    device raise ``TypeError``/``ValueError``; ``check_actions=True`` also checks their values
    (discrete: in range; continuous: finite), which reads them on the host (a synchronisation on
    CUDA): trainers stepping with their policy's own actions pass ``False``.
    """

    @property
    def observation_size(self) -> int: ...

    @property
    def n_actions(self) -> int | None: ...

    @property
    def action_size(self) -> int | None: ...

    @property
    def max_episode_steps(self) -> int: ...

    @property
    def batch_shape(self) -> tuple[int, ...]: ...

    @property
    def device(self) -> torch.device: ...

    def reset(self) -> Tensor: ...

    def step(self, actions: Tensor, *, check_actions: bool = True) -> StepResult: ...


def resolve_device(device: torch.device | str) -> torch.device:
    """The device a tensor asked to live on ``device`` ends up on.

    An accelerator named without an index (``cuda``) means its current device (``cuda:0``, say),
    as it does for ``torch.empty(..., device="cuda")``; the CPU and ``meta`` carry no index.
    """
    device = torch.device(device)
    if device.type in ("cpu", "meta"):
        return torch.device(device.type)
    if device.index is None:
        current = getattr(getattr(torch, device.type, None), "current_device", None)
        return torch.device(device.type, current() if current is not None else 0)
    return device


def same_device(a: torch.device | str, b: torch.device | str) -> bool:
    """Whether ``a`` and ``b`` are the same device once both are resolved by :func:`resolve_device`.

    So ``cuda`` (how ``torch.Generator("cuda").device`` reads) is ``cuda:0`` when device 0 is
    the current one. Devices of different types differ without asking for the current index.
    """
    a, b = torch.device(a), torch.device(b)
    return a.type == b.type and resolve_device(a) == resolve_device(b)


def validate_actions(env: VectorEnv, actions: object, *, values: bool) -> None:
    """Check that ``actions`` suit ``env``; raise ``TypeError`` or ``ValueError`` naming them if not.

    Discrete environments take an integer (not bool) tensor ``(*batch_shape,)``, continuous ones
    a floating tensor ``(*batch_shape, action_size)``, on ``env.device``. Checking the type,
    dtype, shape and device reads no values. With ``values``, the values are checked too
    (discrete: in ``[0, n_actions)``; continuous: finite, since a NaN would corrupt the state):
    that reads them on the host, a synchronisation on CUDA.
    """
    n_actions, action_size = env.n_actions, env.action_size
    if not isinstance(actions, Tensor):
        raise TypeError(f"actions must be a torch.Tensor; got {type(actions).__name__}")
    dtype = actions.dtype
    if n_actions is not None and (dtype.is_floating_point or dtype.is_complex or dtype == torch.bool):
        raise TypeError(f"actions must be an integer (long) tensor; got dtype {dtype}")
    if n_actions is None and not dtype.is_floating_point:
        raise TypeError(f"actions must be a floating tensor; got dtype {dtype}")
    shape = env.batch_shape if action_size is None else (*env.batch_shape, action_size)
    if actions.shape != shape:
        raise ValueError(f"actions must have shape {shape}; got {tuple(actions.shape)}")
    if actions.device != env.device:
        raise ValueError(f"actions must be on device {env.device}; got {actions.device}")
    if values and n_actions is not None and bool(((actions < 0) | (actions >= n_actions)).any()):
        raise ValueError(f"actions must be in [0, {n_actions}): one of {n_actions} discrete actions")
    if values and n_actions is None and not bool(torch.isfinite(actions).all()):
        raise ValueError("actions must be finite (a NaN or infinite action would corrupt the state)")


class TensorEnv(ABC):
    """Base class of the environments written in torch: a batch of copies of a task, on any device.

    It holds ``batch_shape``, ``generator`` (the source of all randomness), ``device`` and
    ``dtype`` (of observations and rewards), and checks them when the environment is made. Its
    :meth:`reset` and :meth:`step` make the checks every environment needs, then call the
    subclass's :meth:`_reset` and :meth:`_step`, which hold the task's dynamics. A subclass sets
    ``observation_size``, ``max_episode_steps`` and one of ``n_actions`` and ``action_size``
    (see :class:`VectorEnv`), as class attributes or in its constructor.

    ``step`` never moves data to the host unless ``check_actions=True`` (the default) asks it to
    check the action values, so a loop of steps on CUDA runs without synchronisation when called
    with ``check_actions=False``.
    """

    observation_size: int
    n_actions: int | None = None
    action_size: int | None = None
    max_episode_steps: int

    def __init__(
        self,
        batch_shape: tuple[int, ...],
        *,
        generator: torch.Generator,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        """Args:
        batch_shape: leading dims of the batch, a tuple of positive ints (``()`` is one copy).
        generator: the source of all randomness; must live on ``device``.
        device: where the tensors live; defaults to the generator's device.
        dtype: floating dtype of observations and rewards (and of the state, where it is real).
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
        if device is None:
            device = generator.device
        elif not isinstance(device, (str, torch.device)):
            raise TypeError(f"device must be a torch.device or a string; got {type(device).__name__}")
        if not same_device(device, generator.device):
            raise ValueError(f"generator must be on device {device}; it is on {generator.device}")
        self.batch_shape = batch_shape
        self.generator = generator
        self.device = resolve_device(device)
        self.dtype = dtype
        self._started = False

    def reset(self) -> Tensor:
        """Start a new episode in every copy; returns the observations ``(*batch_shape, observation_size)``."""
        obs = self._reset()
        self._started = True
        return obs

    def step(self, actions: Tensor, *, check_actions: bool = True) -> StepResult:
        """Advance every copy by one step, starting a new episode where one ends (same-step autoreset).

        Args:
            actions: long ``(*batch_shape,)`` in ``[0, n_actions)`` for a discrete environment,
                floating ``(*batch_shape, action_size)`` for a continuous one (the class says
                what they mean).
            check_actions: check the action values too (see :func:`validate_actions`). This
                reads them on the host (a device synchronisation on CUDA); pass ``False`` in
                hot loops. Type, dtype, shape and device are always checked.

        Returns:
            a :class:`StepResult` ``(next_obs, rewards, terminated, truncated, final_obs)``; the
            class says what the rewards and the episode ends are.
        """
        if not self._started:
            raise RuntimeError("call reset() before step()")
        validate_actions(self, actions, values=check_actions)
        return self._step(actions)

    @abstractmethod
    def _reset(self) -> Tensor:
        """Draw a new episode for every copy; return its observations ``(*batch_shape, observation_size)``."""

    @abstractmethod
    def _step(self, actions: Tensor) -> StepResult:
        """One step of the dynamics for valid ``actions``, with same-step autoreset."""
