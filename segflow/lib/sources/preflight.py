"""Check a configuration against the data before any month runs.

A wrong column mapping, expression or date format fails every month the same way: found inside
the runs, a backfill repeated one error per month, minutes each, behind Dagster's tracebacks.
Here each enabled file source's mapping is applied to the first rows of its first file, with the
same code that reads a month (:mod:`segflow.lib.sources.ingest`), so the error a run would raise comes
first, once, naming the file, the column and the rule.

Not checked here: SQL sources (their query is the mapping, and it runs per month with the month's
bounds) and a month's missing files (that is a month's problem, reported by its run).
"""

from __future__ import annotations

from segflow.config import Settings
from segflow.lib.sources import ingest
from segflow.lib.sources.source_files import resolve_files

# Rows read from the first file: enough to see a whole column fail to parse (the rule that
# separates a wrong mapping or format from dirty rows), cheap on a file of any size.
SAMPLE_ROWS = 1_000


def check_source(source: str, settings: Settings, period: str) -> str | None:
    """None when ``source``'s mapping reads its first file for ``period``, else the error a run
    of that month would raise (it names the file, the column and the rule)."""
    spec = settings.sources[source]
    if not spec.enabled or spec.format == "sql":
        return None
    if not ingest.expects_data(spec, period):
        period = spec.starts  # a source that starts later is checked on its first month
    try:
        files = resolve_files(settings.source_location(source, period))
    except ingest.SourceError:
        return None  # a link loop or a missing export is that month's problem, reported by its run
    if not files:
        return None
    try:
        ingest.read_sample(source, spec, files[0], SAMPLE_ROWS)
    except ingest.SourceError as exc:  # ingest names the file in every error it raises
        return str(exc)
    return None


def check_sources(settings: Settings, period: str) -> list[str]:
    """Every enabled source's mapping problem for ``period``, in source order (empty when none)."""
    problems = (check_source(source, settings, period) for source in settings.sources)
    return [problem for problem in problems if problem]
