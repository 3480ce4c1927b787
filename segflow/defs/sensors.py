"""Sensors. Both start STOPPED: turning automation on is a decision a data engineer makes in the UI."""

import json

import dagster as dg

from segflow.config import Settings
from segflow.defs.jobs import segmentation_job
from segflow.defs.partitions import monthly_partitions
from segflow.defs.scope import settings_in_scope
from segflow.lib.sources import landing

_LANDING = (
    "Watches the landing location of every per-month source and requests the month whose files are new or "
    "changed. The cursor remembers each file's size and mtime, so no file triggers twice."
)


def landing_sensor(settings: Settings) -> dg.SensorDefinition:
    """The landing sensor for the sources and partitions of ``settings``."""
    partitions = monthly_partitions(settings)

    @dg.sensor(
        name="landing_sensor",
        job=segmentation_job,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=_LANDING,
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        templates = {name: s.location for name, s in settings.sources.items() if s.enabled}
        current = landing.scan(templates, str(settings.landing_dir))
        previous = json.loads(context.cursor) if context.cursor else {}
        known = set(partitions.get_partition_keys())
        months = [m for m in landing.changed_periods(previous, current) if m in known]
        requests = [
            dg.RunRequest(partition_key=month, run_key=landing.month_key(current, month)) for month in months
        ]
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(current, sort_keys=True))

    return _sensor


# Declarative automation: a published asset updates once all its upstreams are updated and every
# blocking check on them passed. The sensor that evaluates the conditions starts stopped.
automation_sensor = dg.AutomationConditionSensorDefinition(
    "segflow_automation",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Evaluates the assets' automation conditions (eager, gated on blocking checks). Stopped by default.",
)


@dg.definitions
def sensor_defs() -> dg.Definitions:
    return dg.Definitions(sensors=[landing_sensor(settings_in_scope()), automation_sensor])
