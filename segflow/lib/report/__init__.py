"""The per-period HTML audit report: one self-contained file, no PII, small cells suppressed."""

from segflow.lib.report.render import ReportInputs, render_report, segment_profile_z

__all__ = ["ReportInputs", "render_report", "segment_profile_z"]
