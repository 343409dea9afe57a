"""What the two PPO trainers share besides the loss: checks of their configurations and the averaging
of the statistics of one iteration's updates.

:mod:`gaebook.ppo` trains many agents side by side on classic control, :mod:`gaebook.lm.ppo` a
language model on a verifiable task. Both validate a frozen dataclass of hyperparameters with the
``check_*`` functions, each of which raises ``ValueError`` naming the field, and average the
statistics of :func:`gaebook.ppo.ppo_loss` with :class:`RunningMeans`. The masked and per-agent
statistics (means, explained variance) are in :mod:`gaebook.reductions`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from torch import Tensor

__all__ = ["RunningMeans", "check_choice", "check_non_negative", "check_positive_int", "check_unit_interval"]


def check_positive_int(name: str, value: object) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is an ``int`` of at least 1 (a ``bool``
    is not accepted as an int)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int; got {value!r}")


def check_non_negative(name: str, value: object) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is a number ``≥ 0``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"{name} must be a non-negative number; got {value!r}")


def check_unit_interval(name: str, value: object) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is a number in ``[0, 1]`` (a discount or a λ)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1]; got {value!r}")


def check_choice(name: str, value: object, choices: Collection[str]) -> None:
    """Raise ``ValueError`` naming ``name`` if ``value`` is not one of ``choices``."""
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {listed}; got {value!r}")


class RunningMeans:
    """Means of named statistics over the updates of one iteration, kept on their device.

    ``add`` takes the statistics of one update (tensors of any one shape per name, e.g. ``(G,)``
    per agent); ``means`` returns their averages over the updates added so far. Nothing is read
    back to the host.
    """

    def __init__(self) -> None:
        self._sums: dict[str, Tensor] = {}
        self.count = 0

    def add(self, stats: Mapping[str, Tensor]) -> None:
        if self.count and stats.keys() != self._sums.keys():
            raise ValueError(f"stats must have the names {sorted(self._sums)}; got {sorted(stats)}")
        self._sums = {k: v if not self.count else self._sums[k] + v for k, v in stats.items()}
        self.count += 1

    def means(self) -> dict[str, Tensor]:
        if not self.count:
            raise ValueError("no statistics were added: the means of nothing are undefined")
        return {k: v / self.count for k, v in self._sums.items()}
