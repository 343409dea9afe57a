"""The benchmark records the chapters quote: complete, consistent with themselves, and as the README quotes them."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from gaebook.results import available, load

ROOT = Path(__file__).resolve().parents[2]


def test_the_package_holds_the_ppo_benchmark_record_with_what_chapter_5_quotes():
    assert "ppo_cartpole" in available()
    record = load("ppo_cartpole")
    assert record["benchmark"] == "benchmarks/ppo_cartpole.py"
    assert {"torch", "stable_baselines3", "gymnasium", "python"} <= record["versions"].keys()
    assert record["date"][:4].isdigit() and record["machine"]["note"]
    assert set(record["settings"]) == set(record["summary"]) == set(record["runs"]) == {"gaebook", "gaebook-zoo", "sb3"}
    assert all(len(runs) == record["seeds"] for runs in record["runs"].values())


@pytest.mark.parametrize("name", ["ppo_cartpole", "ppo_cartpole_2threads"])
def test_the_ratios_are_the_quotients_of_the_recorded_medians(name):
    record = load(name)
    s, ratios = record["summary"], record["ratios"]
    sb3, ours, zoo = s["sb3"], s["gaebook"], s["gaebook-zoo"]
    assert math.isclose(ratios["sb3/gaebook time to solve"], sb3["median_time_s"] / ours["median_time_s"])
    per_step = sb3["median_us_per_step"] / zoo["median_us_per_step"]
    assert math.isclose(ratios["sb3/gaebook-zoo time per env step"], per_step)
    assert math.isclose(ratios["sb3/gaebook-zoo time to solve"], sb3["median_time_s"] / zoo["median_time_s"])
    assert math.isclose(ratios["sb3/gaebook-zoo steps to solve"], sb3["median_steps"] / zoo["median_steps"])
    # and the medians are those of the recorded runs
    for name, runs in record["runs"].items():
        per_step = sorted(1e6 * r["time"] / r["steps"] for r in runs)
        mid = len(per_step) // 2
        median = per_step[mid] if len(per_step) % 2 else (per_step[mid - 1] + per_step[mid]) / 2
        assert math.isclose(s[name]["median_us_per_step"], median), name
        assert s[name]["solved"] == sum(r["solved"] for r in runs), name


@pytest.mark.parametrize("name", ["ppo_cartpole", "ppo_cartpole_2threads"])
def test_the_readme_quotes_the_record(name):
    record = load(name)
    readme = (ROOT / "README.md").read_text()
    r, m = record["ratios"], record["machine"]
    row = (
        f"| {record['torch_threads']} | {record['seeds']} "
        f"| {m['load_average_start']:.1f}–{m['load_average_end']:.1f} "
        f"| {r['sb3/gaebook time to solve']:.1f}× | {r['sb3/gaebook-zoo time per env step']:.2f}× "
        f"| {r['sb3/gaebook-zoo time to solve']:.2f}× | {r['sb3/gaebook-zoo steps to solve']:.2f}× |"
    )
    assert row in readme, f"the README's benchmark table must be the record's row:\n{row}"
    assert record["date"][:10] in readme
    for name in ("torch", "stable_baselines3", "gymnasium", "python"):
        version = record["versions"][name]
        assert version in " ".join(readme.split()), f"the README must quote {name} {version}"


def test_an_unknown_record_names_the_ones_there_are():
    with pytest.raises(FileNotFoundError, match="ppo_cartpole"):
        load("no_such_benchmark")
