"""Hyper-parameter search with Optuna over any config key: the space file (space.py), the study and its trials
(study.py), the summary and the best config (summary.py)."""
