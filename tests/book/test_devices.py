"""Every chapter runs on a GPU when there is one: it chooses its device in one line of its setup cell
and makes every generator and every tensor on that device.

The code cells are read with :mod:`ast` (and :mod:`tokenize` for the ``# host`` comments); none is
executed. A chapter fails when

* its setup cell (the first code cell after the install cell) has no single line
  ``DEVICE = ...torch.cuda.is_available()...``, or another cell assigns ``DEVICE`` again;
* a ``torch.Generator(...)`` is made without a device (it would draw on the CPU);
* a tensor factory (:data:`FACTORIES`) is called without ``device=``, unless its result goes straight
  to ``.to(DEVICE)`` (or ``.to(x.device)``) or one of its lines ends with a comment ``# host`` (a value
  that stays on the CPU on purpose, such as the x axis of a plot);
* a gaebook constructor whose device defaults to the CPU (:data:`CPU_BY_DEFAULT`) is called without
  ``device=``.
"""

from __future__ import annotations

import ast
import io
import json
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))
SETUP_LINE = 'DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")'

# The functions torch.<name>(...) that make a tensor on the CPU unless told otherwise.
FACTORIES = frozenset(
    {
        "arange",
        "as_tensor",
        "empty",
        "eye",
        "from_numpy",
        "full",
        "linspace",
        "logspace",
        "ones",
        "rand",
        "randint",
        "randn",
        "randperm",
        "tensor",
        "zeros",
    }
)


# gaebook's constructors with a device argument that defaults to the CPU (the environments written in
# torch take their device from their generator instead).
CPU_BY_DEFAULT = frozenset({"GymnasiumVectorEnv", "chain_mdp"})


def torch_function(call: ast.Call) -> str | None:
    """``name`` if ``call`` calls ``torch.name``, else ``None``."""
    func = call.func
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "torch":
        return func.attr
    return None


def called_name(call: ast.Call) -> str | None:
    """The name a call calls: ``f`` for ``f(...)`` and for ``module.f(...)``."""
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def is_device(node: ast.AST) -> bool:
    """``DEVICE``, or the device of a tensor: ``x.device``."""
    return (isinstance(node, ast.Name) and node.id == "DEVICE") or (
        isinstance(node, ast.Attribute) and node.attr == "device"
    )


def sent_to_device(call: ast.Call, parents: dict[ast.AST, ast.AST]) -> bool:
    """Whether ``call`` is the receiver of ``.to(DEVICE, ...)`` or ``.to(x.device, ...)``."""
    attribute = parents.get(call)
    to = parents.get(attribute) if attribute is not None else None
    return (
        isinstance(attribute, ast.Attribute)
        and attribute.attr == "to"
        and isinstance(to, ast.Call)
        and to.func is attribute
        and (any(is_device(a) for a in to.args) or any(is_device(k.value) for k in to.keywords))
    )


def host_lines(source: str) -> set[int]:
    """Lines (1-based) that end with a comment ``# host``, possibly followed by an explanation."""
    lines = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            words = token.string.lstrip("#").split()
            if words and words[0].rstrip(":,;") == "host":
                lines.add(token.start[0])
    return lines


def device_choices(tree: ast.Module) -> list[ast.Assign]:
    """The assignments ``DEVICE = ...`` anywhere in a cell."""
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "DEVICE" for t in node.targets)
    ]


def asks_for_cuda(node: ast.AST) -> bool:
    """Whether ``node`` contains a call ``torch.cuda.is_available()``."""
    return any(
        isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr == "is_available"
        and isinstance(n.func.value, ast.Attribute)
        and n.func.value.attr == "cuda"
        and isinstance(n.func.value.value, ast.Name)
        and n.func.value.value.id == "torch"
        for n in ast.walk(node)
    )


def cell_problems(source: str) -> list[tuple[int, str]]:
    """``(line, problem)`` for every generator or tensor factory of a cell that does not choose a device."""
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    host = host_lines(source)
    problems = []
    for call in (node for node in ast.walk(tree) if isinstance(node, ast.Call)):
        name = torch_function(call)
        on_device = any(k.arg == "device" for k in call.keywords)
        marked_host = bool(host & set(range(call.lineno, (call.end_lineno or call.lineno) + 1)))
        if name == "Generator" and not (call.args or on_device):
            problems.append((call.lineno, "torch.Generator() without a device: pass DEVICE"))
        elif name in FACTORIES and not (on_device or sent_to_device(call, parents) or marked_host):
            problems.append(
                (call.lineno, f"torch.{name}(...) without device=: pass device=DEVICE, or mark the line '# host'")
            )
        elif called_name(call) in CPU_BY_DEFAULT and not on_device:
            problems.append((call.lineno, f"{called_name(call)}(...) without device=: pass device=DEVICE"))
    return sorted(problems)


def notebook_problems(path: Path) -> list[str]:
    """Every breach of the rules in the module docstring, naming the notebook, the cell and the line."""
    cells = json.loads(path.read_text())["cells"]
    code = [(i, "".join(c["source"])) for i, c in enumerate(cells) if c["cell_type"] == "code"]
    problems = []
    setup_index, setup = code[1]  # code[0] is the install cell
    choices = device_choices(ast.parse(setup))
    if len(choices) != 1 or not asks_for_cuda(choices[0].value) or choices[0].lineno != choices[0].end_lineno:
        problems.append(f"{path.name}, cell {setup_index} (the setup cell): no single line {SETUP_LINE!r}")
    for index, source in code[1:]:
        if index != setup_index:
            problems += [
                f"{path.name}, cell {index}, line {node.lineno}: DEVICE is chosen once, in the setup cell"
                for node in device_choices(ast.parse(source))
            ]
        lines = source.splitlines()
        problems += [
            f"{path.name}, cell {index}, line {line}: {problem}\n    {lines[line - 1].strip()}"
            for line, problem in cell_problems(source)
        ]
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_chapter_runs_on_the_device_it_chooses(path):
    problems = notebook_problems(path)
    assert not problems, f"{len(problems)} device problems:\n" + "\n".join(problems)


CELL = """\
g = torch.Generator().manual_seed(0)
ok = torch.Generator(DEVICE)
x = torch.zeros(3)
y = torch.zeros(3, device=DEVICE)
z = torch.arange(3).to(DEVICE)
w = torch.arange(3).to("cpu")
a = torch.from_numpy(np.ones(3)).to(y.device)
grid = torch.linspace(0, 1, 50)  # host: the x axis of a plot
u = torch.rand(
    3, generator=ok
)  # host
v = x.new_zeros(3) + torch.zeros_like(y) + torch.eye(3)  # a host copy
env = gaebook.envs.GymnasiumVectorEnv("CartPole-v1", 8, seed=0)
mdp = chain_mdp(5, device=DEVICE)
"""


def test_the_checks_find_what_they_promise():
    problems = dict(cell_problems(CELL))
    assert sorted(problems) == [1, 3, 6, 12, 13]
    assert problems[3].startswith("torch.zeros(...)") and problems[12].startswith("torch.eye(...)")
    assert problems[13].startswith("GymnasiumVectorEnv(...)")


SETUPS = {
    SETUP_LINE: True,
    f"{SETUP_LINE}  # a GPU when there is one": True,
    'DEVICE = torch.device("cpu")': False,
    'DEVICE = torch.device(\n    "cuda" if torch.cuda.is_available() else "cpu"\n)': False,
    f'{SETUP_LINE}\nDEVICE = torch.device("cpu")': False,
    SETUP_LINE.replace("DEVICE", "device"): False,
}


@pytest.mark.parametrize("setup", SETUPS)
def test_the_setup_cell_chooses_the_device_in_one_line(setup, tmp_path):
    cells = [{"cell_type": "code", "source": "import sys"}, {"cell_type": "code", "source": setup}]
    path = tmp_path / "chapter.ipynb"
    path.write_text(json.dumps({"cells": cells}))
    assert (notebook_problems(path) == []) == SETUPS[setup]


def test_a_second_choice_of_the_device_is_a_problem(tmp_path):
    cells = [{"cell_type": "code", "source": source} for source in ("import sys", SETUP_LINE, "x = 1\n" + SETUP_LINE)]
    path = tmp_path / "chapter.ipynb"
    path.write_text(json.dumps({"cells": cells}))
    assert notebook_problems(path) == ["chapter.ipynb, cell 2, line 2: DEVICE is chosen once, in the setup cell"]
