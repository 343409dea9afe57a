"""Tests of gaebook.tasks: answers, exact rewards and corrupted demonstrations."""

from __future__ import annotations

import pytest
import torch

from gaebook.tasks import Addition, BalancedParens, CreditProbe, SortDigits, Task

TASKS = [CreditProbe(5), SortDigits(2, 5), BalancedParens(6, 3), Addition(20)]


def balanced(s: str) -> bool:
    depth = 0
    for c in s:
        depth += 1 if c == "(" else -1
        if depth < 0:
            return False
    return depth == 0


def split(task: Task, demonstration: str) -> tuple[str, str]:
    """Prompt and answer of a demonstration: a CreditProbe prompt is one digit, the others end in a separator."""
    if isinstance(task, CreditProbe):
        return demonstration[:1], demonstration[1:]
    end = max(demonstration.find(sep) for sep in ">|=") + 1
    return demonstration[:end], demonstration[end:]


def test_answers_by_hand():
    assert CreditProbe(3).answer("7") == "7..."
    assert SortDigits().answer("4203>") == "0234"
    assert BalancedParens().answer("(()((|") == ")))"
    assert Addition().answer("12+7=") == "19"


@pytest.mark.parametrize("task", TASKS, ids=lambda t: type(t).__name__)
def test_prompts_answers_and_reward(task: Task):
    prompts = task.prompts(200, generator=torch.Generator().manual_seed(0))
    answers = [task.answer(p) for p in prompts]
    assert all(set(p + a) <= set(task.alphabet) for p, a in zip(prompts, answers, strict=True))
    assert max(len(a) for a in answers) <= task.max_answer_len < task.max_new_tokens
    reward = task.reward(prompts, answers)
    assert reward.dtype == torch.float32 and (reward == 1).all()
    assert (task.reward(prompts, [a + a[:1] for a in answers]) == 0).all()  # exact match only
    if isinstance(task, BalancedParens):
        assert all(balanced(p[:-1] + a) for p, a in zip(prompts, answers, strict=True))
        assert len({len(a) for a in answers}) > 3, "answer lengths should vary"
    if isinstance(task, SortDigits):
        assert all(sorted(a) == list(a) and sorted(a) == sorted(p[:-1]) for p, a in zip(prompts, answers, strict=True))


@pytest.mark.parametrize("task", TASKS, ids=lambda t: type(t).__name__)
@pytest.mark.parametrize("corruption", [0.0, 0.3, 1.0])
def test_demonstrations_are_wrong_at_the_corruption_rate(task: Task, corruption: float):
    g = torch.Generator().manual_seed(1)
    demos = task.demonstrations(400, corruption=corruption, generator=g)
    wrong = 0
    for d in demos:
        assert set(d) <= set(task.alphabet)
        prompt, answer = split(task, d)
        wrong += answer != task.answer(prompt)
    rate = wrong / len(demos)
    assert abs(rate - corruption) < 0.08, f"{rate:.3f} of the demonstrations are wrong, not {corruption}"


def test_credit_probe_corrupts_only_the_key():
    demos = CreditProbe(4).demonstrations(100, corruption=1.0, generator=torch.Generator().manual_seed(0))
    assert all(d[1] != d[0] and d[2:] == "...." for d in demos)


def test_same_generator_same_prompts():
    a = SortDigits().prompts(20, generator=torch.Generator().manual_seed(3))
    b = SortDigits().prompts(20, generator=torch.Generator().manual_seed(3))
    assert a == b


def test_bad_input():
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="filler"):
        CreditProbe(0)
    with pytest.raises(ValueError, match="min_len"):
        SortDigits(5, 3)
    with pytest.raises(ValueError, match="max_pairs"):
        BalancedParens(4, -1)
    with pytest.raises(ValueError, match="corruption"):
        Addition().demonstrations(5, corruption=1.5, generator=g)
    with pytest.raises(ValueError, match="n must be a positive int"):
        Addition().prompts(0, generator=g)
    with pytest.raises(ValueError, match="differ in length"):
        Addition().reward(["1+1="], [])
