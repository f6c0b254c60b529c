"""Fixtures shared by the test modules."""
from __future__ import annotations

import os

# Sample student notebooks are inputs of the batch-grader tests, not workbooks for nbval to run.
collect_ignore_glob = ["submissions/*"]

# Tests compare numbers, so each engine call should run on a known tier: compile the kernels on first use
# (and wait for them) unless a test asks otherwise. tests/test_tiers.py checks both tiers and the
# background compilation that users get by default.
os.environ.setdefault("BPTTLAB_COMPILE", "eager")
