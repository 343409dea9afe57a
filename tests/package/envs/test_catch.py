"""Tests of gaebook.envs.Catch beyond the contract suite: the rules of bsuite's Catch, step by step, new games,
and its board size."""

from __future__ import annotations

import pytest
import torch

from gaebook.envs import Catch


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
    assert env.max_episode_steps == 9  # a game on bsuite's 10 rows
    for _ in range(env.max_episode_steps):
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


def test_a_game_ends_when_the_ball_reaches_the_bottom_and_a_new_one_starts():
    env = make_env((64,), seed=3)
    env.reset()
    env.ball_row = torch.arange(64) % 9  # games at every stage
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        row = env.ball_row.clone()
        next_obs, rewards, terminated, _, _ = env.step(torch.randint(0, 3, (64,), generator=g))
        assert torch.equal(terminated, row + 1 == 9)
        assert torch.equal(rewards != 0, terminated)
        assert bool((env.ball_row[terminated] == 0).all()) and bool((env.paddle_column[terminated] == 2).all())
        assert torch.equal(next_obs, env.board(env.ball_row, env.ball_column, env.paddle_column))


def test_board_size_must_be_valid():
    for kwargs, error in (
        ({"rows": 10.0}, TypeError),
        ({"rows": 1}, ValueError),
        ({"columns": 0}, ValueError),
        ({"columns": True}, TypeError),
    ):
        with pytest.raises(error, match=next(iter(kwargs))):
            make_env((4,), **kwargs)
