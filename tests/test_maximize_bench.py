"""The statistics of benchmarks/bench_maximize.py: class draws, Wilson and paired-bootstrap intervals."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bench_maximize import draw_classes, paired_bootstrap, wilson  # noqa: E402


def test_draws_are_fixed_distinct_and_differ_between_seeds():
    a, b = draw_classes(1000, 50, 1), draw_classes(1000, 50, 2)
    assert a == draw_classes(1000, 50, 1) and len(set(a)) == 50 and a != b
    assert draw_classes(10, 0, 1) == list(range(10)) and draw_classes(10, 50, 1) == list(range(10))


def test_wilson_matches_the_textbook_values():
    lo, hi = wilson(25, 50)  # p = 0.5, n = 50: 0.366 .. 0.634
    assert abs(lo - 0.366) < 2e-3 and abs(hi - 0.634) < 2e-3
    lo, hi = wilson(0, 20)  # never below 0, upper bound 0.161
    assert lo < 1e-9 and abs(hi - 0.161) < 2e-3


def test_paired_bootstrap_centres_on_the_difference_and_pairs_by_class():
    a = np.array([1, 1, 1, 0] * 25)
    b = np.array([1, 1, 0, 0] * 25)
    d, lo, hi = paired_bootstrap(a, b)
    assert d == 0.25 and lo < 0.25 < hi and lo > 0.1  # 25 of 100 classes differ, all in a's favour
    same = paired_bootstrap(a, a)
    assert same == (0.0, 0.0, 0.0)  # identical per-class hits: no uncertainty about the difference
