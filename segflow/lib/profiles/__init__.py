"""Cleaning and profiles: row rules, quarantine, netting, imputation and bands."""
