"""Fixtures shared by the test modules."""
from __future__ import annotations

# Sample student notebooks are inputs of the batch-grader tests, not workbooks for nbval to run.
collect_ignore_glob = ["submissions/*"]
