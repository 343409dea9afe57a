"""gaebook: the library behind *GAE: From Theory to Practice*.

The advantage estimators are re-exported here; the other modules are imported by name
(``gaebook.mdp``, ``gaebook.lm``, ``gaebook.token_mdp``, ``gaebook.lm_ppo``, ``gaebook.tasks``,
``gaebook.plotting``).
"""

from gaebook.advantages import (
    discounted_returns,
    gae,
    gae_reference,
    lambda_returns,
    next_valid_values,
    nstep_advantages,
    td_residuals,
)

__all__ = [
    "discounted_returns",
    "gae",
    "gae_reference",
    "lambda_returns",
    "next_valid_values",
    "nstep_advantages",
    "td_residuals",
]
__version__ = "0.1.0"
