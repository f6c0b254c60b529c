"""The Gruslys et al. dynamic programme against a brute-force search of the same cost model."""
import doctest

import numpy as np
import pytest

from bpttlab import checkpoint_policy as P


@pytest.mark.parametrize("T", range(1, 9))
@pytest.mark.parametrize("m", range(1, 6))
def test_the_recurrence_is_the_optimum_of_an_exhaustive_search(T, m):
    assert P.optimal_cost(T, m) == P.brute_force_cost(T, m)


@pytest.mark.parametrize("T, m", [(1, 1), (5, 1), (7, 2), (8, 3), (30, 4), (200, 15)])
def test_the_policy_is_feasible_and_costs_what_the_table_says(T, m):
    run = P.replay(P.optimal_policy(T, m), T, m)
    assert run["cost"] == P.optimal_cost(T, m)
    assert run["peak_slots"] <= m


def test_closed_forms_at_the_two_ends():
    for T in (1, 4, 9):
        assert P.optimal_cost(T, 1) == T * (T + 1) // 2          # recompute from s_0 for every step
        assert P.optimal_cost(T, T) == 2 * T - 1                 # every state stored once


def test_more_memory_never_costs_more_and_the_table_matches_single_calls():
    Q, _ = P.cost_table(40, 8)
    assert np.all(np.diff(Q[1:, 1:], axis=1) <= 0)
    assert Q[40, 5] == P.optimal_cost(40, 5)


@pytest.mark.parametrize("T, n", [(10, 3), (12, 4), (7, 7), (9, 1), (100, 10)])
def test_the_uniform_policy_is_feasible_and_never_beats_the_optimum(T, n):
    slots, L = P.uniform_slots(T, n), -(-T // n)
    assert slots <= n + L - 1
    run = P.replay(P.uniform_plan(T, n), T, slots)
    with pytest.raises(ValueError, match="slots"):
        P.replay(P.uniform_plan(T, n), T, slots - 1)
    assert P.optimal_cost(T, slots) <= run["cost"] == P.uniform_cost(T, n)
    if T <= 8:
        assert P.brute_force_cost(T, slots) <= run["cost"]


def test_replay_rejects_plans_that_break_the_model():
    with pytest.raises(ValueError, match="not stored"):
        P.replay([P.Action("backward", 1, 2)], 2, 3)
    with pytest.raises(ValueError, match="slots"):
        P.replay([P.Action("store", 0, 1), P.Action("store", 1, 2)], 4, 2)
    with pytest.raises(ValueError, match="not back-propagated"):
        P.replay([P.Action("backward", 0, 2)], 2, 2)


@pytest.mark.parametrize("bad, error", [(0, ValueError), (2.0, TypeError), (True, TypeError)])
def test_bad_sizes_name_the_argument(bad, error):
    with pytest.raises(error, match="T must"):
        P.optimal_cost(bad, 2)
    with pytest.raises(error, match="m must"):
        P.optimal_cost(3, bad)


def test_docstring_example():
    assert doctest.testmod(P).failed == 0
