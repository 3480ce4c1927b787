"""The report in a real browser: headless Chromium from the Debian packages.

The page must load with no console errors and no network requests, every chart (`.chart svg`) must
render with a non-zero size, and a screenshot is saved under the test's tmp dir. A copy of the
report gets a tiny probe script (the report itself has no scripts); Chromium runs it and `--dump-dom`
prints its result. Console messages are also read from Chromium's own log (`--enable-logging=stderr`).

The probe also returns the page's rendered text (``innerText``: what a reader sees, hidden parts left
out), which the test reads as a stakeholder would: the headline's stay rate against the heatmap, no
raw JSON or Python lists, currency on money, "no control group" for a campaign without one.
With ``SEGFLOW_SCREENSHOTS=DIR`` it also saves one PNG per report section there (docs/screenshots/
was made so); without it, only the whole page is shot, to keep the suite fast.
"""

from __future__ import annotations

import html as htmllib
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from segflow.lib.audit.migration import stay_rate
from segflow.lib.report import render_report
from segflow.lib.report.render import render_index, summary_record
from segflow_tests.os_packages import ensure_debian_package
from segflow_tests.report_fixtures import report_inputs

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

PROBE = """<script>
window.__errors = [];
window.addEventListener("error", e => window.__errors.push(String(e.message || e.type)), true);
window.addEventListener("load", () => {
  const charts = [...document.querySelectorAll(".chart")].map(c => {
    const svg = c.querySelector("svg");
    const r = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
    return {id: c.id || c.className, width: r.width, height: r.height};
  });
  const out = document.createElement("pre");
  out.id = "__probe";
  const sections = [...document.querySelectorAll("body > section")].map(s => ({
    id: s.id, height: s.getBoundingClientRect().height, text: s.innerText}));
  out.textContent = JSON.stringify({charts, errors: window.__errors, sections,
    height: document.documentElement.scrollHeight,
    resources: performance.getEntriesByType("resource").map(e => e.name)});
  document.body.appendChild(out);
});
</script>"""


def _which_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def chromium() -> str:
    ensure_debian_package("chromium", _which_chromium)
    return _which_chromium()


def _run(chromium: str, *args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        return subprocess.run(
            [chromium, *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )


def _console_messages(stderr: str) -> list[str]:
    """Every page console message Chromium logged. Its stderr log does not keep the level (console.error
    shows as INFO), and the report has no scripts of its own, so any message at all is a failure."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@pytest.mark.parametrize("page", ["report", "index"])
def test_report_renders_in_chromium(chromium: str, tmp_path: Path, page: str) -> None:
    inputs = report_inputs()
    text = render_report(inputs) if page == "report" else render_index([summary_record(inputs)])
    expected_charts = text.count('class="chart')
    assert expected_charts >= (10 if page == "report" else 4)
    original = tmp_path / f"{page}.html"
    original.write_text(text, encoding="utf-8")
    probed = tmp_path / f"{page}.probe.html"
    probed.write_text(text.replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")

    done = _run(
        chromium,
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=5000",
        "--dump-dom",
        probed.as_uri(),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    match = re.search(r'<pre id="__probe">(.*?)</pre>', done.stdout, re.S)
    assert match, f"the probe did not run; stderr: {done.stderr[-2000:]}"
    probe = json.loads(htmllib.unescape(match.group(1)))
    assert probe["errors"] == []
    assert probe["resources"] == []  # nothing fetched: no CSS, JS, fonts or images from anywhere
    assert _console_messages(done.stderr) == []
    assert len(probe["charts"]) == expected_charts
    empty = [c for c in probe["charts"] if not (c["width"] > 0 and c["height"] > 0)]
    assert empty == [], empty

    shot = tmp_path / f"{page}.png"  # the whole page, for a person to look at
    height = max(800, int(probe["height"]))
    done = _run(
        chromium,
        "--hide-scrollbars",
        f"--window-size=1200,{height}",
        f"--screenshot={shot}",
        original.as_uri(),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.exists() and shot.stat().st_size > 20_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"screenshot: {shot}")
    if page == "report":
        _read_like_a_stakeholder(inputs, {s["id"]: s["text"] for s in probe["sections"]})
        if os.environ.get("SEGFLOW_SCREENSHOTS"):
            _shoot_sections(chromium, text, probe["sections"], Path(os.environ["SEGFLOW_SCREENSHOTS"]))


def _read_like_a_stakeholder(inputs, text: dict[str, str]) -> None:
    """What issue 16 found by reading the report, read from the rendered text."""
    everything = "\n".join(text.values())
    # 16.2: the headline's stay rate is the heatmap's diagonal (same segment id both months).
    cluster = inputs.migration.filter(inputs.migration["kind"] == "cluster")
    stay = stay_rate(cluster)
    assert f"{100 * stay:.1f}% of last month's customers stayed in the same cluster segment" in text["migration"]
    # 16.4: no raw JSON or Python lists anywhere (the Stability section printed dicts and lists).
    assert not re.search(r"[\[{]\s*['\"]|['\"]\s*[\]}]|\{\s*\}|\[\s*\]", everything)
    assert "Mean bootstrap Jaccard" in text["model"] and "Bootstrap Jaccard" in text["model"]
    # 16.7: a campaign nobody was held out of says so, and is not "insufficient sample".
    assert "no control group" in text["lift"]
    # 16.8: currency on money, click-to-open named and defined, tests in the appendix only.
    assert "Revenue (EUR)" in text["kpis"] and "Avg order value (EUR)" in text["kpis"]
    assert "Email click-to-open rate" in text["kpis"]
    assert "Click-to-open rate: e-mail clicks over e-mail opens" in text["kpis"]
    assert "p-value" not in text["lift"].split("\n")[0] and "Holm-adjusted p" in text["appendix"]
    assert not re.search(r"\(d ?= ?[+-]?[0-9]", text["segments"])  # effect sizes: appendix (test_report)
    # 16.6: major feature drift asks for a review, never a refit (the model is refit every month).
    assert "refit recommended" not in everything.lower()


def _shoot_sections(chromium: str, text: str, sections: list[dict], out: Path) -> None:
    """One PNG per section: the page with every other section hidden, cut to the section's height."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="report-sections-") as tmp:
        for section in sections:
            only = f"<style>body > *:not(#{section['id']}) {{ display: none !important; }}</style>"
            page = Path(tmp) / f"{section['id']}.html"
            page.write_text(text.replace("</head>", only + "</head>", 1), encoding="utf-8")
            shot = out / f"report-{section['id']}.png"
            height = int(section["height"]) + 120
            done = _run(chromium, "--hide-scrollbars", f"--window-size=1200,{height}", f"--screenshot={shot}",
                        page.as_uri())  # fmt: skip
            assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
