"""gaebook's GAE as an advantage estimator of verl 0.9.1, and the book's PPO-GAE in verl's configuration.

* :func:`gae_advantage_return` has the signature of verl's own
  ``verl.trainer.ppo.core_algos.compute_gae_advantage_return`` and computes the same numbers with
  :func:`gaebook.gae`: the bootstrap of each token is the value of the next token of the response
  mask (:func:`gaebook.next_valid_values`), so multi-turn observation tokens are skipped as verl
  skips them, and the advantages are whitened over the mask afterwards
  (:func:`gaebook.reductions.masked_whiten`), as verl whitens inside its GAE.
* :func:`register_gae_estimator` puts it into verl's table of advantage estimators
  (``core_algos.register_adv_est``), where ``core_algos.get_adv_estimator_fn(name)`` finds it.
* :data:`EXTERNAL_MODULE` is the value of ``VERL_USE_EXTERNAL_MODULES`` that makes every process
  importing verl (its Ray task runner and workers included) import this module, which then
  registers the estimator under :data:`ESTIMATOR_NAME`.
* :func:`ppo_trainer_overrides` writes an :class:`~gaebook.lm.ppo.LMPPOConfig` as Hydra overrides
  of verl's ``ppo_trainer`` configuration; :func:`chapter6_overrides` does it for chapter 6's run,
  and :func:`validated_ppo_trainer` composes and checks such a configuration as verl's ``main`` does.

verl is imported only inside the functions that need it: the module imports without it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from gaebook.advantages import gae, next_valid_values
from gaebook.lm.ppo import LMPPOConfig
from gaebook.lm.tasks import BalancedParens
from gaebook.reductions import masked_whiten

__all__ = [
    "CHAPTER6_PPO_GAE",
    "CHAPTER6_TASK",
    "ENV_VAR",
    "ESTIMATOR_NAME",
    "EXTERNAL_MODULE",
    "chapter6_overrides",
    "gae_advantage_return",
    "ppo_trainer_overrides",
    "register_gae_estimator",
    "validated_ppo_trainer",
]

ESTIMATOR_NAME = "gaebook_gae"
"""The name under which :func:`register_gae_estimator` registers by default (``algorithm.adv_estimator``)."""

ENV_VAR = "VERL_USE_EXTERNAL_MODULES"
"""The environment variable that verl reads in ``verl/__init__.py``: a comma-separated list of modules
that ``import verl`` imports (``verl.utils.import_utils.import_external_libs``)."""

EXTERNAL_MODULE = __name__
"""``"gaebook.lm.verl"``: put it in :data:`ENV_VAR` and this module registers :func:`gae_advantage_return`
under :data:`ESTIMATOR_NAME` in every process that imports verl."""

CHAPTER6_PPO_GAE = LMPPOConfig(iterations=40, n_prompts=64, gamma=1.0, lam_actor=0.95, kl_coef=0.01)
"""The settings of chapter 6's PPO-GAE run (its ``LM_CONFIG``) on :data:`CHAPTER6_TASK`."""

CHAPTER6_TASK = BalancedParens(max_depth=8, max_pairs=4)
"""Chapter 6's task, which fixes the prompt and response lengths of :func:`chapter6_overrides`."""

# gaebook's KL estimator names → verl's: ``algorithm.kl_penalty`` (the reward's; gaebook admits k1
# only) and ``actor.kl_loss_type`` (the loss term's)
_KL_PENALTY = {"k1": "kl", "k2": "mse", "k3": "low_var_kl"}


def _mask(response_mask: object, like: Tensor) -> Tensor:
    """verl's response mask (int64, float or bool ``(bs, response_length)``) as a bool tensor."""
    if not isinstance(response_mask, Tensor):
        raise TypeError(f"response_mask must be a torch.Tensor; got {type(response_mask).__name__}")
    if response_mask.shape != like.shape:
        raise ValueError(
            f"response_mask has shape {tuple(response_mask.shape)} but token_level_rewards has {tuple(like.shape)}"
        )
    return response_mask if response_mask.dtype == torch.bool else response_mask != 0


def _coefficient(name: str, value: object, config: Any) -> float:
    """``gamma`` or ``lam`` as given, or else from verl's ``algorithm`` config (``config.gamma``, ``config.lam``)."""
    if value is None:
        if config is None:
            raise TypeError(f"{name} is missing: pass {name}= or config= (verl's algorithm config, which holds it)")
        value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a float in [0, 1]; got {type(value).__name__}")
    return float(value)


def gae_advantage_return(
    token_level_rewards: Tensor,
    values: Tensor | None = None,
    response_mask: Tensor | None = None,
    gamma: float | None = None,
    lam: float | None = None,
    config: Any = None,
    **kwargs: Any,
) -> tuple[Tensor, Tensor]:
    """verl's GAE computed by :func:`gaebook.gae`: ``(advantages, returns)``, each ``(bs, response_length)``.

    The arguments are those of ``verl.trainer.ppo.core_algos.compute_gae_advantage_return`` (verl
    0.9.1), and ``config``, verl's ``algorithm`` configuration, from which ``gamma`` and ``lam``
    are read when they are not given; other keyword arguments of verl's dispatch (``index``,
    ``reward_baselines``) are accepted and ignored.

    At every position of the response mask the result equals verl's to float32 precision:
    ``returns`` are the λ-returns ``A + V``, ``advantages`` are whitened over the mask's positions
    (unbiased variance, as verl's ``verl.utils.torch_functional.masked_whiten``; verl divides by
    ``sqrt(var + 1e-8)``, gaebook by ``sqrt(var) + 1e-8``, the same unless the variance is below
    about 1e-6). At masked positions both are 0 here; verl leaves there the advantage carried from
    the next response token, which none of its losses read (they aggregate over the mask).

    Args:
        token_level_rewards: floating ``(bs, response_length)``, the rewards of the response tokens.
        values: floating of the same shape and dtype, the critic's values of the same tokens.
        response_mask: bool, int or float ``(bs, response_length)``, nonzero at the policy's tokens;
            zeros inside a response are observation (tool) tokens, which the trace passes over.
        gamma, lam: floats in ``[0, 1]``, or ``None`` to read ``config.gamma`` and ``config.lam``.
        config: verl's ``algorithm`` config (``AlgoConfig`` or a ``DictConfig``), or ``None``.

    Returns:
        ``(advantages, returns)`` on the inputs' device, in their dtype.
    """
    if not isinstance(token_level_rewards, Tensor):
        raise TypeError(f"token_level_rewards must be a torch.Tensor; got {type(token_level_rewards).__name__}")
    if token_level_rewards.ndim != 2:
        raise ValueError(
            f"token_level_rewards must be (bs, response_length); got shape {tuple(token_level_rewards.shape)}"
        )
    if values is None:
        raise TypeError(
            "values is missing: GAE needs the critic's values (bs, response_length). verl 0.9.1's compute_advantage "
            "passes values, gamma and lam only to its built-in 'gae'; other registered estimators get "
            "token_level_rewards, response_mask and config"
        )
    if not isinstance(values, Tensor) or values.shape != token_level_rewards.shape:
        raise ValueError(
            f"values must be a tensor of token_level_rewards' shape {tuple(token_level_rewards.shape)}; "
            f"got {getattr(values, 'shape', type(values).__name__)}"
        )
    mask = _mask(response_mask, token_level_rewards)
    g, lam_ = _coefficient("gamma", gamma, config), _coefficient("lam", lam, config)
    with torch.no_grad():
        next_values = next_valid_values(values, mask)  # 0 after the last response token: EOS is terminal
        advantages, returns = gae(
            token_level_rewards,
            values,
            next_values,
            torch.zeros_like(mask),
            gamma=g,
            lam=lam_,
            mask=mask,
            check_finite=False,
        )
        return masked_whiten(advantages, mask), returns


def _core_algos() -> Any:
    try:
        from verl.trainer.ppo import core_algos
    except ImportError as e:
        raise ImportError("gaebook.lm.verl needs verl: pip install 'gaebook[llm]'") from e
    return core_algos


def register_gae_estimator(name: str = ESTIMATOR_NAME) -> Callable[..., tuple[Tensor, Tensor]]:
    """Register :func:`gae_advantage_return` in verl's table of advantage estimators under ``name``.

    ``verl.trainer.ppo.core_algos.get_adv_estimator_fn(name)`` then returns it. Registering it again
    under the same name does nothing (verl's ``register_adv_est`` accepts the same function twice);
    a name that verl already gives to another function, such as ``"gae"``, is a ``ValueError``.
    The table lives in the process that calls this: verl's Ray task runner and workers are other
    processes, which register through :data:`EXTERNAL_MODULE`.

    Returns:
        :func:`gae_advantage_return`.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string; got {name!r}")
    core_algos = _core_algos()
    taken = core_algos.ADV_ESTIMATOR_REGISTRY.get(name)
    if taken is not None and taken is not gae_advantage_return:
        raise ValueError(f"name {name!r} is already registered in verl for {taken.__qualname__}; choose another name")
    core_algos.register_adv_est(name)(gae_advantage_return)
    return gae_advantage_return


def ppo_trainer_overrides(
    config: LMPPOConfig,
    *,
    model_path: str,
    max_prompt_length: int,
    max_response_length: int,
    estimator: str = ESTIMATOR_NAME,
) -> list[str]:
    """``config`` as Hydra overrides of verl's ``ppo_trainer`` configuration (verl 0.9.1), for one GPU.

    Advantages by ``estimator`` (registered through :data:`EXTERNAL_MODULE`, which the overrides
    put into the Ray workers' environment), with ``gamma`` and ``lam_actor``; the KL penalty in the
    reward (``k1`` is verl's ``"kl"``) with a fixed coefficient, or an adaptive one
    (``kl_target``, ``kl_horizon``: verl's ``kl_ctrl``); the KL as a loss term of the actor
    (``kl_loss_coef``, ``kl_loss_estimator``: ``k2`` is verl's ``"mse"``, ``k3`` its
    ``"low_var_kl"``); the loss aggregation (``loss_agg_mode``, verl's names, for the actor and,
    through verl's default, the critic); a critic; ``n_prompts`` prompts per step
    (``data.train_batch_size``), ``group_size`` responses each, ``n_minibatches`` minibatches of
    ``n_prompts / n_minibatches`` prompts, ``n_epochs`` epochs; the clip range for the ratio and the
    values, the step sizes, the gradient clip, the entropy weight and the temperature. Both models
    load from ``model_path``; the rollout engine is vLLM.

    Settings without a counterpart in verl's configuration are refused (``ValueError``): a λ for
    the critic other than the actor's, the length-adaptive λ, unwhitened advantages (verl's GAE
    whitens), no value clipping, value pretraining, overlong filtering (``mask_truncated``). The
    truncation penalty belongs to verl's reward function, and ``vf_coef`` has no role there: the
    critic has its own optimiser.
    """
    if config.advantage != "gae":
        raise ValueError(f"config.advantage must be 'gae' (the estimator is {estimator!r}); got {config.advantage!r}")
    refused = {
        "lam_critic": config.lam_critic is not None and config.lam_critic != config.lam_actor,
        "adaptive_lam_alpha": config.adaptive_lam_alpha is not None,
        "whiten_advantages": not config.whiten_advantages,
        "clip_vloss": not config.clip_vloss,
        "value_pretrain_steps": config.value_pretrain_steps > 0,
        "mask_truncated": config.mask_truncated,
    }
    for name, bad in refused.items():
        if bad:
            raise ValueError(f"config.{name}={getattr(config, name)!r} has no counterpart in verl's ppo_trainer")
    if config.n_prompts % config.n_minibatches:
        raise ValueError(
            f"config.n_minibatches ({config.n_minibatches}) must divide config.n_prompts ({config.n_prompts}): "
            "verl counts minibatches in prompts"
        )
    if not isinstance(model_path, str) or not model_path:
        raise ValueError(f"model_path must be a non-empty string; got {model_path!r}")
    for name, length in (("max_prompt_length", max_prompt_length), ("max_response_length", max_response_length)):
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise ValueError(f"{name} must be a positive int; got {length!r}")
    minibatch = config.n_prompts // config.n_minibatches
    per_gpu = minibatch * config.group_size  # one micro-batch per minibatch
    actor, critic, rollout = "actor_rollout_ref.actor", "critic", "actor_rollout_ref.rollout"
    settings: dict[str, object] = {
        "algorithm.adv_estimator": estimator,
        "algorithm.gamma": config.gamma,
        "algorithm.lam": config.lam_actor,
        "algorithm.use_kl_in_reward": config.kl_coef > 0,
        "algorithm.kl_penalty": _KL_PENALTY[config.kl_estimator],
        "algorithm.kl_ctrl.type": "fixed" if config.kl_target is None else "adaptive",
        "algorithm.kl_ctrl.kl_coef": config.kl_coef,
        **(
            {}
            if config.kl_target is None
            else {"algorithm.kl_ctrl.target_kl": config.kl_target, "algorithm.kl_ctrl.horizon": config.kl_horizon}
        ),
        "data.train_batch_size": config.n_prompts,
        "data.max_prompt_length": max_prompt_length,
        "data.max_response_length": max_response_length,
        "trainer.total_training_steps": config.iterations,
        "trainer.n_gpus_per_node": 1,
        "trainer.nnodes": 1,
        "actor_rollout_ref.model.path": model_path,
        f"{rollout}.name": "vllm",
        f"{rollout}.n": config.group_size,
        f"{rollout}.temperature": config.temperature,
        f"{rollout}.log_prob_micro_batch_size_per_gpu": per_gpu,
        "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu": per_gpu,
        f"{actor}.use_kl_loss": config.kl_loss_coef > 0,
        **(
            {
                f"{actor}.kl_loss_coef": config.kl_loss_coef,
                f"{actor}.kl_loss_type": _KL_PENALTY[config.kl_loss_estimator],
            }
            if config.kl_loss_coef > 0
            else {}
        ),
        f"{actor}.ppo_epochs": config.n_epochs,
        f"{actor}.ppo_mini_batch_size": minibatch,
        f"{actor}.ppo_micro_batch_size_per_gpu": per_gpu,
        f"{actor}.clip_ratio": config.clip_coef,
        f"{actor}.optim.lr": config.lr,
        f"{actor}.grad_clip": config.max_grad_norm,
        f"{actor}.entropy_coeff": config.ent_coef,
        f"{actor}.loss_agg_mode": config.loss_agg_mode,
        f"{critic}.enable": True,  # verl enables a critic by itself only for its own "gae"
        f"{critic}.model.path": model_path,
        f"{critic}.ppo_epochs": config.n_epochs,
        f"{critic}.ppo_mini_batch_size": minibatch,
        f"{critic}.ppo_micro_batch_size_per_gpu": per_gpu,
        f"{critic}.cliprange_value": config.clip_coef,
        f"{critic}.optim.lr": config.critic_lr,
        f"{critic}.grad_clip": config.max_grad_norm,
        f"+ray_kwargs.ray_init.runtime_env.env_vars.{ENV_VAR}": EXTERNAL_MODULE,
    }
    return [f"{key}={value}" for key, value in settings.items()]


def chapter6_overrides(model_path: str) -> list[str]:
    """:func:`ppo_trainer_overrides` of chapter 6's run: :data:`CHAPTER6_PPO_GAE` on :data:`CHAPTER6_TASK`.

    The longest prompt is ``<bos>``, the deepest prefix with every inserted pair, and ``|``; the
    response budget is the task's ``max_new_tokens``.
    """
    task = CHAPTER6_TASK
    return ppo_trainer_overrides(
        CHAPTER6_PPO_GAE,
        model_path=model_path,
        max_prompt_length=1 + task.max_depth + 2 * task.max_pairs + 1,
        max_response_length=task.max_new_tokens,
    )


def validated_ppo_trainer(overrides: list[str]) -> Any:
    """verl's ``ppo_trainer`` configuration with ``overrides``, composed and checked as verl's own ``main`` does.

    ``main`` in ``verl/trainer/main_ppo.py`` (verl 0.9.1) is a Hydra application on the configuration
    module ``verl.trainer.config``; before it starts Ray it calls ``auto_set_device`` and
    ``validate_config(config, use_reference_policy=need_reference_policy(config),
    use_critic=need_critic(config))``. This does the same steps, on the CPU, and stops there: what
    follows, ``run_ppo``, starts Ray and workers whose process groups need NCCL, that is, GPUs.

    Returns:
        The composed ``DictConfig``; verl's checks raise (``AssertionError``, ``ValueError`` or
        Hydra's ``InstantiationException``) if it is inconsistent.
    """
    _core_algos()  # the clear error if verl is missing
    from hydra import compose, initialize_config_module
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config
    from verl.utils.device import auto_set_device

    with initialize_config_module("verl.trainer.config", version_base=None):
        config = compose("ppo_trainer", overrides=overrides)
    auto_set_device(config)
    validate_config(config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))
    return config


# verl imports the modules named in VERL_USE_EXTERNAL_MODULES when it is imported (verl/__init__.py):
# listed there, this module registers its estimator in every such process.
if EXTERNAL_MODULE in os.environ.get(ENV_VAR, "").split(","):
    register_gae_estimator()
