"""Tasks with exact, verifiable rewards, generated in code (nothing is downloaded).

Every :class:`Task` makes random prompts, knows the one correct answer to each, scores responses
by exact match, and writes **demonstrations** for pretraining in which a chosen fraction of the
answers is corrupted, so that the pretrained policy starts imperfect and RL has something to fix:

* :class:`CreditProbe`: copy a digit, then ``L`` filler tokens. Only the first token matters and
  the reward arrives ``L + 1`` tokens later, at EOS: how much signal reaches the key decides
  whether RL can fix it (for GAE, the weight ``(γλ)^L``).
* :class:`SortDigits`: sort a string of digits (variable length).
* :class:`BalancedParens`: close every open parenthesis of a prefix; the answer's length is the
  prefix's depth, so response lengths vary (EOS, masks, length-adaptive λ).
* :class:`Addition`: ``a+b=`` with its sum, the task of chapter 1.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "ADDITION_ALPHABET",
    "Addition",
    "BalancedParens",
    "CreditProbe",
    "SortDigits",
    "Task",
    "addition_problems",
    "exact_match_reward",
]

ADDITION_ALPHABET = "0123456789+="
DIGITS = "0123456789"


def addition_problems(n: int, *, max_operand: int = 49, generator: torch.Generator) -> tuple[list[str], list[str]]:
    """``n`` prompts such as ``"12+7="`` and their answers such as ``"19"``.

    Operands are drawn uniformly from ``0..max_operand`` with ``generator``.
    """
    if n < 1 or max_operand < 0:
        raise ValueError(f"need n >= 1 and max_operand >= 0; got n={n}, max_operand={max_operand}")
    a, b = torch.randint(max_operand + 1, (2, n), generator=generator, device=generator.device).tolist()
    return [f"{x}+{y}=" for x, y in zip(a, b, strict=True)], [str(x + y) for x, y in zip(a, b, strict=True)]


def exact_match_reward(responses: list[str], answers: list[str]) -> Tensor:
    """1.0 where a response equals its answer exactly, else 0.0: float ``(B,)``."""
    if len(responses) != len(answers):
        raise ValueError(f"responses ({len(responses)}) and answers ({len(answers)}) differ in length")
    return torch.tensor([float(r == a) for r, a in zip(responses, answers, strict=True)])


def _randint(low: int, high: int, generator: torch.Generator) -> int:
    """One integer drawn uniformly from ``low .. high − 1``."""
    return int(torch.randint(low, high, (1,), generator=generator, device=generator.device))


def _check_positive(**values: int) -> None:
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int; got {v!r}")


class Task(ABC):
    """A prompt distribution with one exactly checkable answer per prompt.

    Subclasses set ``alphabet`` (every character of prompts and answers) and
    ``max_answer_len`` (characters), and define :meth:`random_prompt`, :meth:`answer` and
    :meth:`corrupt`.
    """

    alphabet: str
    max_answer_len: int

    @abstractmethod
    def random_prompt(self, generator: torch.Generator) -> str:
        """One prompt drawn with ``generator``."""

    @abstractmethod
    def answer(self, prompt: str) -> str:
        """The correct answer to ``prompt``."""

    @abstractmethod
    def corrupt(self, prompt: str, answer: str, generator: torch.Generator) -> str:
        """A wrong answer to ``prompt``, of the kind a noisy demonstrator writes."""

    @property
    def max_new_tokens(self) -> int:
        """A response budget: the longest answer, its EOS and two tokens of slack."""
        return self.max_answer_len + 3

    def prompts(self, n: int, *, generator: torch.Generator) -> list[str]:
        """``n`` random prompts."""
        _check_positive(n=n)
        return [self.random_prompt(generator) for _ in range(n)]

    def demonstrations(self, n: int, *, corruption: float, generator: torch.Generator) -> list[str]:
        """``n`` texts ``prompt + answer`` for pretraining; each answer is wrong with probability ``corruption``."""
        _check_positive(n=n)
        if not 0.0 <= corruption <= 1.0:
            raise ValueError(f"corruption must lie in [0, 1]; got {corruption}")
        out = []
        for p in self.prompts(n, generator=generator):
            a = self.answer(p)
            if float(torch.rand((), generator=generator, device=generator.device)) < corruption:
                a = self.corrupt(p, a, generator)
            out.append(p + a)
        return out

    def reward(self, prompts: Sequence[str], responses: Sequence[str]) -> Tensor:
        """1.0 where a response is exactly the answer to its prompt, else 0.0: float ``(B,)``."""
        return exact_match_reward(list(responses), [self.answer(p) for p in prompts])


class CreditProbe(Task):
    """Repeat the key digit, then write ``filler`` dots: prompt ``"7"``, answer ``"7......"``.

    A corrupted demonstration has a different key digit (never a wrong filler), so the pretrained
    policy writes the format reliably and gets the key right with probability about
    ``1 − corruption``. The only decision that matters is the first token, and the reward comes
    ``filler + 1`` tokens after it.
    """

    alphabet = DIGITS + "."

    def __init__(self, filler: int) -> None:
        _check_positive(filler=filler)
        self.filler = filler
        self.max_answer_len = 1 + filler

    def random_prompt(self, generator: torch.Generator) -> str:
        return str(_randint(0, 10, generator))

    def answer(self, prompt: str) -> str:
        return prompt[0] + "." * self.filler

    def corrupt(self, prompt: str, answer: str, generator: torch.Generator) -> str:
        wrong = (int(prompt[0]) + _randint(1, 10, generator)) % 10
        return f"{wrong}" + answer[1:]


class SortDigits(Task):
    """Sort digits: prompt ``"4203>"``, answer ``"0234"``; lengths ``min_len .. max_len``.

    A corrupted demonstration has one digit of the sorted answer replaced by a different one.
    """

    alphabet = DIGITS + ">"

    def __init__(self, min_len: int = 3, max_len: int = 6) -> None:
        _check_positive(min_len=min_len, max_len=max_len)
        if min_len > max_len:
            raise ValueError(f"min_len ({min_len}) must not exceed max_len ({max_len})")
        self.min_len, self.max_len = min_len, max_len
        self.max_answer_len = max_len

    def random_prompt(self, generator: torch.Generator) -> str:
        n = _randint(self.min_len, self.max_len + 1, generator)
        return "".join(map(str, torch.randint(10, (n,), generator=generator, device=generator.device).tolist())) + ">"

    def answer(self, prompt: str) -> str:
        return "".join(sorted(prompt[:-1]))

    def corrupt(self, prompt: str, answer: str, generator: torch.Generator) -> str:
        i = _randint(0, len(answer), generator)
        wrong = (int(answer[i]) + _randint(1, 10, generator)) % 10
        return answer[:i] + str(wrong) + answer[i + 1 :]


class BalancedParens(Task):
    """Close a prefix of parentheses: prompt ``"(()((|"``, answer ``")))"``.

    The prefix has depth ``d`` (``1 .. max_depth``, uniform) and ``0 .. max_pairs`` matched pairs
    ``"()"`` inserted at random places (which never changes the depth), so the answer, ``d``
    closing parentheses, varies in length. A corrupted demonstration closes one too many or one
    too few.
    """

    alphabet = "()|"

    def __init__(self, max_depth: int = 8, max_pairs: int = 4) -> None:
        _check_positive(max_depth=max_depth)
        if isinstance(max_pairs, bool) or not isinstance(max_pairs, int) or max_pairs < 0:
            raise ValueError(f"max_pairs must be a non-negative int; got {max_pairs!r}")
        self.max_depth, self.max_pairs = max_depth, max_pairs
        self.max_answer_len = max_depth + 1  # a corrupted demonstration may close one more

    def random_prompt(self, generator: torch.Generator) -> str:
        s = "(" * _randint(1, self.max_depth + 1, generator)
        for _ in range(_randint(0, self.max_pairs + 1, generator)):
            i = _randint(0, len(s) + 1, generator)
            s = s[:i] + "()" + s[i:]
        return s + "|"

    def answer(self, prompt: str) -> str:
        return ")" * (prompt.count("(") - prompt.count(")"))

    def corrupt(self, prompt: str, answer: str, generator: torch.Generator) -> str:
        if len(answer) > 1 and _randint(0, 2, generator):
            return answer[:-1]
        return answer + ")"


class Addition(Task):
    """``"a+b="`` with operands ``0 .. max_operand``, answer the sum; a corrupted answer is off by one."""

    alphabet = ADDITION_ALPHABET

    def __init__(self, max_operand: int = 49) -> None:
        _check_positive(max_operand=max_operand)
        self.max_operand = max_operand
        self.max_answer_len = len(str(2 * max_operand + 1))

    def random_prompt(self, generator: torch.Generator) -> str:
        a, b = torch.randint(self.max_operand + 1, (2,), generator=generator, device=generator.device).tolist()
        return f"{a}+{b}="

    def answer(self, prompt: str) -> str:
        a, b = prompt[:-1].split("+")
        return str(int(a) + int(b))

    def corrupt(self, prompt: str, answer: str, generator: torch.Generator) -> str:
        value = int(answer) + (1 if int(answer) == 0 or _randint(0, 2, generator) else -1)
        return str(value)
