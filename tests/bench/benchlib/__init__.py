"""Helpers of the benchmark in ``tests/bench``: canned bodies, processes, load generators.

Everything here is stdlib-only so that ``python3 tests/bench/run.py`` works with any
interpreter; the servers it starts (floor, fake upstream) run under the repository's venv.
"""
