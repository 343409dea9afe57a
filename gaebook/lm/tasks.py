"""Tasks with exact, verifiable rewards, generated in code (nothing is downloaded).

Every :class:`Task` makes random prompts, knows the one correct answer to each, scores responses
by exact match, and writes **demonstrations** for pretraining in which a chosen fraction of the
answers is corrupted, so that the pretrained policy starts imperfect and RL has something to fix:

* :class:`CreditProbe`: copy a digit, then ``L`` filler tokens. Only the first token matters and
  the reward arrives ``L + 1`` tokens later, at EOS: how much signal reaches the key decides
  whether RL can fix it (for GAE, the reward enters the key's advantage with weight
  ``(γλ)^(L+1)``).
* :class:`BalancedParens`: close every open parenthesis of a prefix; the answer's length is the
  prefix's depth, so response lengths vary (EOS, masks, length-adaptive λ).
* :class:`Addition`: ``a+b=`` with its sum, the task of chapter 1.
* :class:`CopyDigits`: copy a string of digits, with a **process reward**: each digit is rewarded
  on the token that wrote it (:meth:`Task.step_rewards`), not once for the whole response.

**Randomness.** A call of :meth:`Task.prompts` or :meth:`Task.demonstrations` draws everything
it needs as one batch of uniforms on the generator's device and reads them back at once: one
kernel launch and one transfer (a host synchronisation on a GPU) per call, however many prompts.
A task then turns its share of uniforms into a prompt or a corruption in Python.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["Addition", "BalancedParens", "CopyDigits", "CreditProbe", "Task"]


def _uniforms(n: int, k: int, generator: torch.Generator) -> list[list[float]]:
    """``n`` rows of ``k`` uniforms in ``[0, 1)``: one draw on the generator's device, one read back."""
    return torch.rand(n, k, generator=generator, device=generator.device, dtype=torch.float32).tolist()


def _pick(u: float, low: int, high: int) -> int:
    """The integer of ``low .. high − 1`` that the uniform ``u`` in ``[0, 1)`` falls on."""
    return low + min(int(u * (high - low)), high - low - 1)


def _check_positive(**values: int) -> None:
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int; got {v!r}")


class Task(ABC):
    """A prompt distribution with one exactly checkable answer per prompt.

    Subclasses set ``alphabet`` (every character of prompts and answers), ``max_answer_len``
    (characters), ``prompt_draws`` and ``corrupt_draws`` (how many uniforms one prompt and one
    corruption take), and define :meth:`make_prompt`, :meth:`answer` and :meth:`corrupt`.
    """

    alphabet: str
    max_answer_len: int
    prompt_draws: int
    corrupt_draws: int

    @abstractmethod
    def make_prompt(self, u: Sequence[float]) -> str:
        """The prompt picked by ``prompt_draws`` uniforms ``u`` in ``[0, 1)``."""

    @abstractmethod
    def answer(self, prompt: str) -> str:
        """The correct answer to ``prompt``."""

    @abstractmethod
    def corrupt(self, prompt: str, answer: str, u: Sequence[float]) -> str:
        """A wrong answer to ``prompt``, of the kind a noisy demonstrator writes, picked by
        ``corrupt_draws`` uniforms ``u`` in ``[0, 1)``."""

    @property
    def max_new_tokens(self) -> int:
        """A response budget: the longest answer, its EOS and two tokens of slack."""
        return self.max_answer_len + 3

    def prompts(self, n: int, *, generator: torch.Generator) -> list[str]:
        """``n`` random prompts, from one draw of ``generator`` (see the module docstring)."""
        _check_positive(n=n)
        return [self.make_prompt(u) for u in _uniforms(n, self.prompt_draws, generator)]

    def demonstrations(self, n: int, *, corruption: float, generator: torch.Generator) -> list[str]:
        """``n`` texts ``prompt + answer`` for pretraining; each answer is wrong with probability ``corruption``.

        One draw of ``generator`` per call (see the module docstring).
        """
        _check_positive(n=n)
        if not 0.0 <= corruption <= 1.0:
            raise ValueError(f"corruption must lie in [0, 1]; got {corruption}")
        k = self.prompt_draws
        out = []
        for u in _uniforms(n, k + 1 + self.corrupt_draws, generator):
            p = self.make_prompt(u[:k])
            a = self.answer(p)
            if u[k] < corruption:
                a = self.corrupt(p, a, u[k + 1 :])
            out.append(p + a)
        return out

    def reward(self, prompts: Sequence[str], responses: Sequence[str]) -> Tensor:
        """1.0 where a response is exactly the answer to its prompt, else 0.0: float ``(B,)`` on the CPU."""
        if len(prompts) != len(responses):
            raise ValueError(f"prompts ({len(prompts)}) and responses ({len(responses)}) differ in length")
        return torch.tensor([float(r == self.answer(p)) for p, r in zip(prompts, responses, strict=True)])

    def step_rewards(self, prompts: Sequence[str], steps: Sequence[Sequence[str]]) -> list[list[float]] | None:
        """Process rewards: for each response, one reward per step; ``None`` for an outcome-only task.

        ``steps[i]`` are the tokens of the response to ``prompts[i]`` before its EOS, each written
        as its text (a character of the alphabet, or a special token's name such as ``"<pad>"``).
        ``None``, the default, means that the task rewards only whole responses: :meth:`reward`'s
        exact match, given on the response's last token. A task that returns lists rewards each
        step on the token that took it, and its :meth:`reward` then only measures accuracy
        (:func:`gaebook.lm.ppo.sample_and_score`).
        """
        return None


class CreditProbe(Task):
    """Repeat the key digit, then write ``filler`` dots: prompt ``"7"``, answer ``"7......"``.

    A corrupted demonstration has a different key digit (never a wrong filler), so the pretrained
    policy writes the format reliably and gets the key right with probability about
    ``1 − corruption``. The only decision that matters is the first token, and the reward comes
    ``filler + 1`` tokens after it, on the EOS that ends the response.
    """

    alphabet = "0123456789."
    prompt_draws = 1
    corrupt_draws = 1

    def __init__(self, filler: int) -> None:
        _check_positive(filler=filler)
        self.filler = filler
        self.max_answer_len = 1 + filler

    def make_prompt(self, u: Sequence[float]) -> str:
        return str(_pick(u[0], 0, 10))

    def answer(self, prompt: str) -> str:
        return prompt[0] + "." * self.filler

    def corrupt(self, prompt: str, answer: str, u: Sequence[float]) -> str:
        wrong = (int(prompt[0]) + _pick(u[0], 1, 10)) % 10
        return f"{wrong}" + answer[1:]


class BalancedParens(Task):
    """Close a prefix of parentheses: prompt ``"(()((|"``, answer ``")))"``.

    The prefix has depth ``d`` (``1 .. max_depth``, uniform) and ``0 .. max_pairs`` matched pairs
    ``"()"`` inserted at random places (which never changes the depth), so the answer, ``d``
    closing parentheses, varies in length. A corrupted demonstration closes one too many or one
    too few (always one too many at depth 1).
    """

    alphabet = "()|"
    corrupt_draws = 1

    def __init__(self, max_depth: int = 8, max_pairs: int = 4) -> None:
        _check_positive(max_depth=max_depth)
        if isinstance(max_pairs, bool) or not isinstance(max_pairs, int) or max_pairs < 0:
            raise ValueError(f"max_pairs must be a non-negative int; got {max_pairs!r}")
        self.max_depth, self.max_pairs = max_depth, max_pairs
        self.max_answer_len = max_depth + 1  # a corrupted demonstration may close one more
        self.prompt_draws = 2 + max_pairs  # depth, number of pairs, a place for each pair

    def make_prompt(self, u: Sequence[float]) -> str:
        s = "(" * _pick(u[0], 1, self.max_depth + 1)
        for place in u[2 : 2 + _pick(u[1], 0, self.max_pairs + 1)]:
            i = _pick(place, 0, len(s) + 1)
            s = s[:i] + "()" + s[i:]
        return s + "|"

    def answer(self, prompt: str) -> str:
        return ")" * (prompt.count("(") - prompt.count(")"))

    def corrupt(self, prompt: str, answer: str, u: Sequence[float]) -> str:
        if len(answer) > 1 and u[0] < 0.5:
            return answer[:-1]
        return answer + ")"


class Addition(Task):
    """``"a+b="`` with operands ``0 .. max_operand``, answer the sum; a corrupted answer is off by one."""

    alphabet = "0123456789+="
    prompt_draws = 2
    corrupt_draws = 1

    def __init__(self, max_operand: int = 49) -> None:
        _check_positive(max_operand=max_operand)
        self.max_operand = max_operand
        self.max_answer_len = len(str(2 * max_operand + 1))

    def make_prompt(self, u: Sequence[float]) -> str:
        a, b = (_pick(x, 0, self.max_operand + 1) for x in u[:2])
        return f"{a}+{b}="

    def answer(self, prompt: str) -> str:
        a, b = prompt[:-1].split("+")
        return str(int(a) + int(b))

    def corrupt(self, prompt: str, answer: str, u: Sequence[float]) -> str:
        value = int(answer) + (1 if int(answer) == 0 or u[0] < 0.5 else -1)
        return str(value)


class CopyDigits(Task):
    """Copy ``n_digits`` digits, rewarded digit by digit: prompt ``"4071="``, answer ``"4071"``.

    A process-reward task: the ``i``-th token of a response earns ``1/n_digits`` if it is the
    prompt's ``i``-th digit (:meth:`step_rewards`), so the rewards of a response sum to the fraction
    of its digits copied right, and each token's reward depends on that token alone. A corrupted
    demonstration changes each digit independently with probability 1/2 (and one digit if that
    changed none), so the pretrained policy's mistakes fall anywhere in the answer.
    """

    alphabet = "0123456789="

    def __init__(self, n_digits: int = 8) -> None:
        _check_positive(n_digits=n_digits)
        self.n_digits = n_digits
        self.max_answer_len = n_digits
        self.prompt_draws = n_digits
        self.corrupt_draws = 2 * n_digits + 1  # per digit: change it?, to what; one place if none changed

    def make_prompt(self, u: Sequence[float]) -> str:
        return "".join(str(_pick(x, 0, 10)) for x in u) + "="

    def answer(self, prompt: str) -> str:
        return prompt[:-1]

    def corrupt(self, prompt: str, answer: str, u: Sequence[float]) -> str:
        n = len(answer)
        changed = [u[2 * i] < 0.5 for i in range(n)]
        if not any(changed):
            changed[_pick(u[2 * n], 0, n)] = True
        return "".join(
            str((int(d) + _pick(u[2 * i + 1], 1, 10)) % 10) if c else d
            for i, (d, c) in enumerate(zip(answer, changed, strict=True))
        )

    def step_rewards(self, prompts: Sequence[str], steps: Sequence[Sequence[str]]) -> list[list[float]]:
        """``1/n_digits`` for each step that is the right digit in the right place, else 0."""
        if len(prompts) != len(steps):
            raise ValueError(f"prompts ({len(prompts)}) and steps ({len(steps)}) differ in length")
        share = 1.0 / self.n_digits
        out = []
        for prompt, response in zip(prompts, steps, strict=True):
            answer = self.answer(prompt)
            out.append([share if i < len(answer) and s == answer[i] else 0.0 for i, s in enumerate(response)])
        return out
