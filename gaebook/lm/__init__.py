"""Language models as policies: the token-level MDP, tasks with exact rewards, and PPO for them.

The modules:

* ``token_mdp``: the token-level MDP's pieces, on tensors: per-token rewards with a KL penalty, the
  last valid token, the critic-free advantages (GRPO, RLOO, REINFORCE++) and a λ per response;
* ``tasks``: prompts with exactly checkable answers (:class:`~gaebook.lm.tasks.Addition`,
  :class:`~gaebook.lm.tasks.BalancedParens`, :class:`~gaebook.lm.tasks.CreditProbe`);
* ``tinygpt``: a tiny causal transformer, its tokenizer, critic, pretraining and sampling;
* ``ppo``: PPO on the token-level MDP (:func:`~gaebook.lm.ppo.finetune`) and its table of
  advantage estimators;
* ``distributed``: data-parallel ``finetune`` with ``torch.distributed`` (rollouts split across the
  ranks, global whitening, gradients averaged by DDP), launched by ``torchrun``.
"""
