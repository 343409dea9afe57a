"""gaebook: the library behind *GAE: From Theory to Practice*.

The advantage estimators are re-exported here; the other modules are imported by name:

* estimators and their machinery: ``advantages``, ``scan`` (the chunked linear scan),
  ``baselines`` (other libraries' loops, transcribed for comparison), ``profiling``;
* reinforcement learning: ``networks`` (actor-critics), ``ppo``, ``mdp`` (exact finite MDPs), and
  what both PPO trainers share: ``training`` (config checks, running means of statistics) and
  ``reductions`` (masked and per-agent means, whitening, explained variance);
* environments: the subpackage ``envs``, one contract (``envs.base``) met by CartPole, Pendulum
  and Catch as batched tensors (``envs.cartpole``, ``envs.pendulum``, ``envs.catch``), Gymnasium's
  vector environments (``envs.gymnasium``) and reward scaling (``envs.wrappers``);
* language models: the subpackage ``lm``: the token-level MDP (``lm.token_mdp``), tasks with exact
  rewards (``lm.tasks``), a tiny transformer (``lm.tinygpt``) and PPO for it (``lm.ppo``);
* ``plotting``: the book's figure helpers; ``glue``: a chapter's values recorded for its text, with
  or without myst-nb; ``results``: the records of benchmark runs that chapters quote;
* self-checking exercises: the subpackage ``exercises``, checkers that run a reader's own estimator on
  hidden cases and name the known bug it makes (``exercises.checks``), and those bugs (``exercises.bugs``).
"""

from gaebook.__about__ import __version__ as __version__
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
