"""A/B tests on model groups: deterministic assignment (assign.py), config checks (check.py), the
statistics (stats.py), the per-variant report and its verdict (report.py), reading the request log
(data.py), and optional judge scoring of sampled answers (judge.py). docs/OBSERVABILITY.md#experiments.
"""
