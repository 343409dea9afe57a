"""Tasks with exact, verifiable rewards, generated in code (nothing is downloaded)."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["ADDITION_ALPHABET", "addition_problems", "exact_match_reward"]

ADDITION_ALPHABET = "0123456789+="


def addition_problems(n: int, *, max_operand: int = 49, generator: torch.Generator) -> tuple[list[str], list[str]]:
    """``n`` prompts such as ``"12+7="`` and their answers such as ``"19"``.

    Operands are drawn uniformly from ``0..max_operand`` with ``generator``.
    """
    if n < 1 or max_operand < 0:
        raise ValueError(f"need n >= 1 and max_operand >= 0; got n={n}, max_operand={max_operand}")
    a, b = torch.randint(max_operand + 1, (2, n), generator=generator).tolist()
    return [f"{x}+{y}=" for x, y in zip(a, b)], [str(x + y) for x, y in zip(a, b)]


def exact_match_reward(responses: list[str], answers: list[str]) -> Tensor:
    """1.0 where a response equals its answer exactly, else 0.0: float ``(B,)``."""
    if len(responses) != len(answers):
        raise ValueError(f"responses ({len(responses)}) and answers ({len(answers)}) differ in length")
    return torch.tensor([float(r == a) for r, a in zip(responses, answers)])
