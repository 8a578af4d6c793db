"""Benchmarks: commands that print figures (a table and one JSON line), never timed tests."""
