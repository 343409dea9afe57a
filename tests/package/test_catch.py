"""Tests of gaebook.catch: the rules of bsuite's Catch, step by step, autoreset, shapes, bad input."""

from __future__ import annotations

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from gaebook.catch import Catch


class ReferenceCatch:
    """One game of bsuite's ``catch`` (``bsuite/environments/catch.py``), transcribed in plain Python."""

    def __init__(self, rows: int, columns: int, ball_x: int) -> None:
        self.rows, self.columns = rows, columns
        self.ball_x, self.ball_y = ball_x, 0
        self.paddle_x, self.paddle_y = columns // 2, rows - 1

    def board(self) -> list[float]:
        board = [[0.0] * self.columns for _ in range(self.rows)]
        board[self.ball_y][self.ball_x] = 1.0
        board[self.paddle_y][self.paddle_x] = 1.0
        return [x for row in board for x in row]

    def step(self, action: int) -> tuple[list[float], float, bool]:
        dx = (-1, 0, 1)[action]  # left, no-op, right
        self.paddle_x = min(max(self.paddle_x + dx, 0), self.columns - 1)
        self.ball_y += 1
        if self.ball_y == self.paddle_y:
            return self.board(), 1.0 if self.paddle_x == self.ball_x else -1.0, True
        return self.board(), 0.0, False


def make_env(batch_shape: tuple[int, ...], seed: int = 0, **kwargs) -> Catch:
    return Catch(batch_shape, generator=torch.Generator().manual_seed(seed), **kwargs)


@pytest.mark.parametrize(("rows", "columns"), [(10, 5), (6, 9), (2, 1), (12, 12)])
def test_random_play_matches_bsuite_rules_step_by_step(rows, columns):
    n = 16
    env = make_env((n,), rows=rows, columns=columns)
    obs = env.reset()
    games = [ReferenceCatch(rows, columns, int(x)) for x in env.ball_column]
    assert obs.tolist() == [game.board() for game in games]
    g = torch.Generator().manual_seed(1)
    finished = 0
    for _ in range(5 * (rows - 1)):
        actions = torch.randint(0, 3, (n,), generator=g)
        next_obs, rewards, terminated, truncated, final_obs = env.step(actions)
        steps = [game.step(int(a)) for game, a in zip(games, actions, strict=True)]
        assert final_obs.tolist() == [s[0] for s in steps]
        assert rewards.tolist() == [s[1] for s in steps]
        assert terminated.tolist() == [s[2] for s in steps]
        assert not truncated.any()
        for i, (_, _, done) in enumerate(steps):
            if done:  # a new game, from the ball column the batched env drew
                games[i] = ReferenceCatch(rows, columns, int(env.ball_column[i]))
                finished += 1
        assert next_obs.tolist() == [game.board() for game in games]
    assert finished == 5 * n  # every game lasts exactly rows - 1 steps


def test_a_perfect_player_always_catches_and_staying_put_catches_one_column_in_five():
    env = make_env((2, 1000))
    env.reset()
    total = torch.zeros(2, 1000)
    for _ in range(env.episode_steps):
        towards = (env.ball_column - env.paddle_column).sign() + 1  # 0 left, 1 stay, 2 right
        actions = torch.stack((towards[0], torch.ones_like(towards[1])))
        _, rewards, terminated, _, _ = env.step(actions)
        total += rewards
    assert bool(terminated.all())
    assert bool((total[0] == 1).all())
    caught = (total[1] == 1).float().mean()  # the ball fell into the middle column
    assert abs(caught - 0.2) < 0.04 and bool((total[1].abs() == 1).all())


def test_boards_show_the_ball_and_the_paddle():
    env = make_env((500,), rows=7, columns=4)
    obs = env.reset()
    assert obs.shape == (500, 28) and obs.dtype == torch.float32
    assert bool((obs.sum(-1) == 2).all())
    board = obs.reshape(500, 7, 4)
    assert bool((board[:, 0].sum(-1) == 1).all()) and bool((board[:, -1, 2] == 1).all())  # paddle at 4 // 2
    columns = board[:, 0].argmax(-1)
    assert set(columns.tolist()) == {0, 1, 2, 3}  # the ball starts in every column
    g = torch.Generator().manual_seed(0)
    for _ in range(6):
        _, _, terminated, _, final_obs = env.step(torch.randint(0, 3, (500,), generator=g))
    # at the end the ball lies on the paddle's row: one 1 where it was caught, two where it was missed
    assert bool(terminated.all())
    assert set(final_obs.sum(-1).tolist()) == {1.0, 2.0}


def test_walls_stop_the_paddle():
    env = make_env((2,), columns=5)
    env.reset()
    for _ in range(4):
        env.step(torch.tensor([0, 2]))
    assert env.paddle_column.tolist() == [0, 4]


def test_autoreset_starts_new_games():
    env = make_env((64,), seed=3)
    env.reset()
    env.ball_row = torch.arange(64) % 9  # games at every stage
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        row = env.ball_row.clone()
        next_obs, rewards, terminated, _, final_obs = env.step(torch.randint(0, 3, (64,), generator=g))
        assert torch.equal(terminated, row + 1 == 9)
        assert torch.equal(rewards != 0, terminated)
        assert torch.equal(next_obs[~terminated], final_obs[~terminated])
        assert bool((env.ball_row[terminated] == 0).all()) and bool((env.paddle_column[terminated] == 2).all())
        assert torch.equal(next_obs, env.board(env.ball_row, env.ball_column, env.paddle_column))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_batch_shapes_are_independent_copies(dtype):
    env = make_env((3, 5), dtype=dtype)
    flat = make_env((15,), dtype=dtype)
    obs = env.reset()
    flat.reset()
    assert obs.shape == (3, 5, 50) and obs.dtype == dtype
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        flat.ball_row, flat.ball_column, flat.paddle_column = (
            x.reshape(15) for x in (env.ball_row, env.ball_column, env.paddle_column)
        )
        actions = torch.randint(0, 3, (3, 5), generator=g)
        next_obs, rewards, terminated, truncated, final_obs = env.step(actions)
        assert next_obs.shape == final_obs.shape == (3, 5, 50)
        assert rewards.shape == terminated.shape == truncated.shape == (3, 5)
        assert rewards.dtype == dtype and terminated.dtype == truncated.dtype == torch.bool
        _, flat_rewards, flat_terminated, _, flat_final = flat.step(actions.reshape(15))
        assert torch.equal(final_obs.reshape(15, 50), flat_final)
        assert torch.equal(rewards.reshape(15), flat_rewards) and torch.equal(terminated.reshape(15), flat_terminated)


def test_a_single_unbatched_game():
    env = make_env(())
    assert env.reset().shape == (50,)
    next_obs, rewards, terminated, _truncated, final_obs = env.step(torch.tensor(1))
    assert next_obs.shape == final_obs.shape == (50,) and rewards.shape == terminated.shape == ()


def test_same_seed_same_games_other_seed_other_games():
    def run(seed: int) -> list[torch.Tensor]:
        env = make_env((4, 8), seed=seed)
        out = [env.reset()]
        g = torch.Generator().manual_seed(7)
        for _ in range(40):
            out.extend(env.step(torch.randint(0, 3, (4, 8), generator=g)))
        return out

    a, b, c = run(0), run(0), run(1)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


def test_bad_input_raises_clear_errors():
    g = torch.Generator().manual_seed(0)
    with pytest.raises(TypeError, match="batch_shape"):
        Catch(64, generator=g)
    with pytest.raises(ValueError, match="batch_shape"):
        Catch((4, 0), generator=g)
    with pytest.raises(TypeError, match="generator"):
        Catch((4,), generator=0)
    with pytest.raises(ValueError, match="generator"):
        Catch((4,), generator=g, device="meta")
    with pytest.raises(TypeError, match="dtype"):
        Catch((4,), generator=g, dtype=torch.long)
    with pytest.raises(TypeError, match="rows"):
        Catch((4,), generator=g, rows=10.0)
    with pytest.raises(ValueError, match="rows"):
        Catch((4,), generator=g, rows=1)
    with pytest.raises(ValueError, match="columns"):
        Catch((4,), generator=g, columns=0)
    with pytest.raises(TypeError, match="columns"):
        Catch((4,), generator=g, columns=True)

    env = Catch((2, 3), generator=g)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(torch.zeros(2, 3, dtype=torch.long))
    env.reset()
    with pytest.raises(TypeError, match="actions"):
        env.step([[0, 1, 2], [1, 0, 1]])
    with pytest.raises(TypeError, match="actions"):
        env.step(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="actions must have shape"):
        env.step(torch.zeros(6, dtype=torch.long))
    with pytest.raises(ValueError, match="actions must be on device"):
        env.step(torch.zeros(2, 3, dtype=torch.long, device="meta"))
    for bad in (3, -1):
        with pytest.raises(ValueError, match="actions must be 0"):
            env.step(torch.full((2, 3), bad))


def test_step_does_not_synchronise_without_the_action_check():
    env = make_env((16,))
    env.reset()
    env.ball_row = torch.full((16,), 8)  # make the reset branch run too
    actions = torch.ones(16, dtype=torch.long)

    def host_syncs(check_actions: bool) -> set[str]:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(3):
                env.step(actions, check_actions=check_actions)
        return {e.name for e in prof.events()} & {"aten::item", "aten::_local_scalar_dense", "aten::is_nonzero"}

    assert host_syncs(check_actions=False) == set()
    assert "aten::item" in host_syncs(check_actions=True)
