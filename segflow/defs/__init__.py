"""Dagster wiring only. Domain logic lives in ``segflow.lib``."""
