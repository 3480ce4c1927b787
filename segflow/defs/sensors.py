"""Sensors. Both start STOPPED: turning automation on is a decision a data engineer makes in the UI."""

import json

import dagster as dg

from segflow.config import get_settings
from segflow.defs.jobs import segmentation_job
from segflow.defs.partitions import monthly_partitions
from segflow.lib import landing


@dg.sensor(
    job=segmentation_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Watches the landing location of every per-month source and requests the month whose files "
    "are new or changed. The cursor remembers each file's size and mtime, so no file triggers twice.",
)
def landing_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    settings = get_settings()
    templates = {name: s.location for name, s in settings.sources.items() if s.enabled}
    current = landing.scan(templates, str(settings.landing_dir))
    previous = json.loads(context.cursor) if context.cursor else {}
    months = [m for m in landing.changed_periods(previous, current)
              if m in set(monthly_partitions.get_partition_keys())]  # fmt: skip
    requests = [
        dg.RunRequest(partition_key=month, run_key=landing.month_key(current, month)) for month in months
    ]
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(current, sort_keys=True))


# Declarative automation: a published asset updates once all its upstreams are updated and every
# blocking check on them passed. The sensor that evaluates the conditions starts stopped.
automation_sensor = dg.AutomationConditionSensorDefinition(
    "segflow_automation",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Evaluates the assets' automation conditions (eager, gated on blocking checks). Stopped by default.",
)
