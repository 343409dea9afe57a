"""Language models as policies: the token-level MDP, tasks with exact rewards, and PPO for them.

The modules:

* ``token_mdp``: the token-level MDP's pieces, on tensors: per-token rewards with a KL penalty, the
  last valid token, the critic-free advantages (GRPO, RLOO, REINFORCE++) and a λ per response;
* ``tasks``: prompts with exactly checkable answers (:class:`~gaebook.lm.tasks.Addition`,
  :class:`~gaebook.lm.tasks.BalancedParens`, :class:`~gaebook.lm.tasks.CreditProbe`), and one rewarded
  step by step (:class:`~gaebook.lm.tasks.CopyDigits`);
* ``tinygpt``: a tiny causal transformer, its tokenizer, critic, pretraining and sampling, and the
  :class:`~gaebook.lm.tinygpt.Policy` and :class:`~gaebook.lm.tinygpt.Critic` protocols: what
  sampling and PPO ask of a model;
* ``ppo``: PPO on the token-level MDP (:func:`~gaebook.lm.ppo.finetune`) and its table of
  advantage estimators;
* ``hf``: Hugging Face pieces built on the machine, a character tokenizer and a tiny Llama;
* ``hf_policy``: any Hugging Face causal LM as a policy (:class:`~gaebook.lm.hf_policy.HFPolicy`)
  and a critic (:class:`~gaebook.lm.hf_policy.HFCritic`) for ``ppo``, and sampling with
  ``transformers``' own ``generate`` (:func:`~gaebook.lm.hf_policy.generate`);
* ``reward_model``: a learned reward model (:class:`~gaebook.lm.reward_model.RewardModel`, a
  Hugging Face backbone scored at ``<eos>``) trained with the Bradley–Terry loss on synthetic, noisy
  preferences, and its normalised score as ``finetune``'s ``scorer``;
* ``verl``: ``gaebook.gae`` as an advantage estimator in verl's registry, and :class:`~gaebook.lm.ppo.LMPPOConfig`
  as verl's configuration overrides;
* ``distributed``: data-parallel ``finetune`` with ``torch.distributed`` (rollouts split across the
  ranks, global whitening, gradients averaged by DDP), launched by ``torchrun``.
"""
