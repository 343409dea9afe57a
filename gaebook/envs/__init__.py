"""Vector environments: batches of independent copies of a task, stepped together on tensors.

Every environment here meets one contract, :class:`VectorEnv`, which is what
:func:`gaebook.ppo.train` and :func:`gaebook.ppo.evaluate` step. The modules:

* ``base``: the contract (:class:`VectorEnv`, :class:`StepResult`) and :class:`TensorEnv`, the base
  class of the environments written in torch, with the checks they share;
* ``cartpole``, ``pendulum``, ``catch``: :class:`CartPole` and :class:`Pendulum` (Gymnasium's
  ``CartPole-v1`` and ``Pendulum-v1``) and :class:`Catch` (bsuite's game), as batches of tensors;
* ``gymnasium``: :class:`GymnasiumVectorEnv`, Gymnasium's own vector environments behind the contract;
* ``wrappers``: :class:`ScaledRewards`, an environment with its rewards multiplied by a constant.
"""

from gaebook.envs.base import StepResult, TensorEnv, VectorEnv
from gaebook.envs.cartpole import CartPole
from gaebook.envs.catch import Catch
from gaebook.envs.gymnasium import GymnasiumVectorEnv
from gaebook.envs.pendulum import Pendulum, angle_normalize
from gaebook.envs.wrappers import ScaledRewards

__all__ = [
    "CartPole",
    "Catch",
    "GymnasiumVectorEnv",
    "Pendulum",
    "ScaledRewards",
    "StepResult",
    "TensorEnv",
    "VectorEnv",
    "angle_normalize",
]
