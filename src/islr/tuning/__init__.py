"""Hyperparameter search with Optuna (:mod:`~islr.tuning.search`) and its summary
(:mod:`~islr.tuning.summary`)."""
