"""Audits of a month: KPIs, campaign lift, migration, drift and the backtest."""
