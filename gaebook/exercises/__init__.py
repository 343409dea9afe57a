"""Self-checking exercises: checkers for a reader's own estimators, and the silent bugs they diagnose.

* ``checks``: ``check_gae``, ``check_lambda_returns``, ``check_token_gae``, ``check_masked_whiten``,
  ``check_ppo_loss``, ``check_grpo_advantages`` and ``check_next_step_gae`` run a reader's function on
  hidden cases and return a :class:`~gaebook.exercises.checks.Verdict` that passes or names the mistake;
* ``bugs``: the mistakes of real code (the seeds' exponent, Monte Carlo critic targets, CleanRL #198's
  lost bootstrap, whitening over padding, GRPO over the wrong axis, the autoreset step trained on, …)
  as functions that run and give wrong numbers: the checkers' models of each mistake and the book's
  gallery (``book/silent_bugs.ipynb``).
"""

from gaebook.exercises.checks import (
    Verdict,
    check_gae,
    check_grpo_advantages,
    check_lambda_returns,
    check_masked_whiten,
    check_next_step_gae,
    check_ppo_loss,
    check_token_gae,
)

__all__ = [
    "Verdict",
    "check_gae",
    "check_grpo_advantages",
    "check_lambda_returns",
    "check_masked_whiten",
    "check_next_step_gae",
    "check_ppo_loss",
    "check_token_gae",
]
