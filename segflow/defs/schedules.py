"""The monthly schedule. It starts STOPPED: a data engineer turns it on in the UI once sources land."""

import dagster as dg

from segflow.defs.jobs import segmentation_job

# On the 2nd of each month at 06:00 UTC, run the month that just ended (the partition's end is the
# 1st, so the data for the whole month has landed).
monthly_schedule = dg.build_schedule_from_partitioned_job(
    segmentation_job, day_of_month=2, hour_of_day=6, default_status=dg.DefaultScheduleStatus.STOPPED
)
