"""The per-period HTML audit report: one self-contained file, no PII, small cells suppressed."""

from segflow.lib.report.inputs import ReportInputs, segment_profile_z
from segflow.lib.report.render import render_report

__all__ = ["ReportInputs", "render_report", "segment_profile_z"]
