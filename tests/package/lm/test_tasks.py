"""Tests of gaebook.lm.tasks: answers, exact rewards and corrupted demonstrations."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
import torch
from host_traffic import host_traffic

from gaebook import gae
from gaebook.lm.tasks import Addition, BalancedParens, CopyDigits, CreditProbe, Task
from gaebook.lm.tinygpt import CharTokenizer
from gaebook.profiling import dispatched_ops

TASKS = [CreditProbe(5), BalancedParens(6, 3), Addition(20), CopyDigits(5)]


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
    end = max(demonstration.find(sep) for sep in "|=") + 1
    return demonstration[:end], demonstration[end:]


def test_answers_by_hand():
    assert CreditProbe(3).answer("7") == "7..."
    assert BalancedParens().answer("(()((|") == ")))"
    assert Addition().answer("12+7=") == "19"
    assert CopyDigits(4).answer("4071=") == "4071"


def test_copy_digits_rewards_each_digit_on_its_own_step():
    task = CopyDigits(4)
    steps = [list("4071"), list("4171"), ["4", "<pad>", "7", "1", "5"], [], list("40")]
    rewards = task.step_rewards(["4071="] * 5, steps)
    assert rewards == [[0.25] * 4, [0.25, 0.0, 0.25, 0.25], [0.25, 0.0, 0.25, 0.25, 0.0], [], [0.25, 0.25]]
    # the outcome tasks reward only whole responses
    assert all(t.step_rewards(["1"], [["1"]]) is None for t in TASKS if not isinstance(t, CopyDigits))


def test_copy_digits_demonstrations_are_wrong_digit_by_digit():
    task = CopyDigits(6)
    demos = task.demonstrations(2000, corruption=1.0, generator=torch.Generator().manual_seed(4))
    wrong = torch.tensor([[a != b for a, b in zip(d[:6], d[7:], strict=True)] for d in demos]).float()
    assert (wrong.sum(1) >= 1).all(), "a corrupted demonstration has at least one wrong digit"
    # each digit independently with probability 1/2, one more where none was changed: 1/2 + 2^-6/6 per place
    assert torch.allclose(wrong.mean(0), torch.full((6,), 0.5 + 2**-6 / 6), atol=0.04)
    assert len({tuple(row.tolist()) for row in wrong}) > 50, "mistakes fall anywhere in the answer"


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
    if isinstance(task, Addition):
        operands = [int(x) for p in prompts for x in p[:-1].split("+")]
        assert set(operands) == set(range(21)), "every operand 0..max_operand should be drawn"
    if isinstance(task, CreditProbe):
        assert set(prompts) == set("0123456789")


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
    a = BalancedParens().prompts(20, generator=torch.Generator().manual_seed(3))
    b = BalancedParens().prompts(20, generator=torch.Generator().manual_seed(3))
    assert a == b


def test_bad_input():
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="filler"):
        CreditProbe(0)
    with pytest.raises(ValueError, match="max_pairs"):
        BalancedParens(4, -1)
    with pytest.raises(ValueError, match="corruption"):
        Addition().demonstrations(5, corruption=1.5, generator=g)
    with pytest.raises(ValueError, match="n must be a positive int"):
        Addition().prompts(0, generator=g)
    with pytest.raises(ValueError, match="differ in length"):
        Addition().reward(["1+1="], [])
    with pytest.raises(ValueError, match="n_digits"):
        CopyDigits(0)
    with pytest.raises(ValueError, match=r"prompts \(1\) and steps \(0\) differ in length"):
        CopyDigits(2).step_rewards(["12="], [])


def test_balanced_parens_draws_every_depth_and_number_of_pairs():
    task = BalancedParens(max_depth=5, max_pairs=3)
    prompts = task.prompts(2000, generator=torch.Generator().manual_seed(2))
    depths = Counter(len(task.answer(p)) for p in prompts)
    pairs = Counter(p.count(")") for p in prompts)
    assert set(depths) == set(range(1, 6)) and set(pairs) == set(range(4))
    assert min(depths.values()) > 300 and min(pairs.values()) > 400  # uniform: 400 and 500 expected


def test_the_reward_reaches_the_credit_probes_key_with_weight_gamma_lambda_to_the_filler_plus_one():
    """For GAE the reward of a CreditProbe response enters the key's advantage with weight (γλ)^(L+1)."""
    task, gamma, lam = CreditProbe(6), 0.9, 0.8
    response = CharTokenizer(task.alphabet).encode(task.answer("3"), eos=True)  # key, L dots, EOS
    n = len(response)
    values = torch.rand(n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    next_values = torch.cat([values[1:], values.new_zeros(1)])
    terminated = torch.arange(n) == n - 1
    advantage_of_key = []
    for score in (0.0, 1.0):  # the reward is the score, on the last token
        rewards = torch.where(terminated, score, 0.0).double()
        advantage_of_key.append(gae(rewards, values, next_values, terminated, gamma=gamma, lam=lam)[0][0])
    weight = (advantage_of_key[1] - advantage_of_key[0]).item()
    assert weight == pytest.approx((gamma * lam) ** (task.filler + 1), rel=1e-12)
    assert weight != pytest.approx((gamma * lam) ** task.filler, rel=1e-3)


@pytest.mark.parametrize("task", TASKS, ids=lambda t: type(t).__name__)
def test_one_draw_per_call_however_many_prompts(task: Task):
    """Prompts and demonstrations take one draw and no read from the device, whatever their number."""

    def calls(n: int) -> list[Callable[[], object]]:
        g = torch.Generator().manual_seed(0)
        return [lambda: task.prompts(n, generator=g), lambda: task.demonstrations(n, corruption=0.5, generator=g)]

    for few, many in zip(calls(3), calls(300), strict=True):
        assert dispatched_ops(few) == dispatched_ops(many) == Counter({"aten::rand": 1})
        assert host_traffic(many) == Counter()
