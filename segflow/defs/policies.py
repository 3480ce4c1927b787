"""Automation and freshness policies shared by the assets."""

from datetime import timedelta

import dagster as dg

# Update when upstream data updates, but never past a failed blocking check upstream.
AUTOMATION = dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()

# Published outputs are due by noon UTC on the 3rd: the month closes on the 1st, the schedule runs on
# the 2nd at 06:00, and a day and a half covers a rerun.
PUBLISHED_FRESHNESS = dg.FreshnessPolicy.cron(deadline_cron="0 12 3 * *", lower_bound_delta=timedelta(days=2))
