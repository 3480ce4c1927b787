"""The Spark configuration segflow starts a session with (through dagster-pyspark's resource)."""

from __future__ import annotations

import os
import shutil

from segflow.config import ConfigError, SparkSettings

# Chosen for a batch job on one host and for segflow's standards; every key can be overridden in
# ``spark.config``. Timestamps are naive UTC throughout segflow, so the session's zone is UTC; the
# web UI would bind to every interface, so it is off; and a local driver binds to loopback only.
DEFAULTS = {
    "spark.app.name": "segflow",
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.enabled": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # A month's line items are one shuffle per step; 200 tasks (Spark's default) on a small month
    # cost more in scheduling than they save. Adaptive execution coalesces further.
    "spark.sql.shuffle.partitions": "16",
    "spark.log.level": "WARN",
    "spark.ui.showConsoleProgress": "false",  # progress bars would fill the run's captured logs
}
LOCAL_DRIVER = {"spark.driver.bindAddress": "127.0.0.1", "spark.driver.host": "127.0.0.1"}


def spark_conf(settings: SparkSettings) -> dict[str, str]:
    """The session's configuration: segflow's defaults, the master, then the user's ``spark.config``."""
    local = settings.master.startswith("local")
    return {**DEFAULTS, **(LOCAL_DRIVER if local else {}), "spark.master": settings.master,
            **{k: str(v) for k, v in settings.config.items()}}  # fmt: skip


def require_java() -> None:
    """Spark's driver is a JVM: say so plainly instead of pyspark's "Java gateway process exited"."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and os.path.exists(os.path.join(java_home, "bin", "java")):
        return
    if shutil.which("java") is None:
        raise ConfigError(
            "engine: spark needs Java 17 or later for Spark's driver: install a JDK (on Debian, "
            "`apt-get install openjdk-17-jre-headless`) or set JAVA_HOME"
        )
