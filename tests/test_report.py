"""Reports: the versioned JSON, Markdown, self-contained HTML, JUnit XML and the index across Pythons."""

from __future__ import annotations

import json
import re
import struct
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness import report
from harness.checker import Anomaly, CheckResult, Counts
from harness.history import INFO, INVOKE, OK, History
from harness.plan import ClientPlan, Op, Plan
from harness.runner import RunOutcome
from harness.scenario import Check, ScenarioResult
from harness.target import reference

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "docs"))
import render_report


def fake_run(tmp: Path, name: str, valid: bool) -> RunOutcome:
    h = History()
    h.add(INFO, "run", run_id="abc123", relay="others", normalize="exact", baseline_id=0).time = 0.0
    for i in range(20):
        r = h.add(INVOKE, "send", 0, 0, token=f"abc123.0.{i}", text="x")
        r.time = i * 0.1
        r = h.add(OK, "send", 0, 0, token=f"abc123.0.{i}", row=i + 1)
        r.time = i * 0.1 + 0.002 * (i + 1)
    for phase, t in (("start", 0.5), ("end", 0.9)):
        r = h.add(INFO, "nemesis", event="stop", window="shutdown", phase=phase)
        r.time = t
    anomalies = (
        []
        if valid
        else [
            Anomaly(
                "lost",
                1,
                "message <b>abc</b> lost",
                "abc123.0.1",
                0,
                [3],
                [{"id": 7, "content": "<script>alert(1)</script>"}],
            )
        ]
    )
    result = CheckResult(
        valid, anomalies, Counts(sent=20, acked=20, stored=20 - (not valid)), {1: "pass" if valid else "fail"}
    )
    rundir = tmp / name
    rundir.mkdir(parents=True)
    return RunOutcome(rundir, Plan([ClientPlan([Op("send", "x")])]), result, h.records, [], "abc123", 2.0)


def scenarios(tmp: Path) -> list[ScenarioResult]:
    good = ScenarioResult(
        "port-in-use",
        "a second instance...",
        True,
        runs=[fake_run(tmp, "good", True)],
        check=fake_run(tmp, "good2", True).result,
        checks=[Check("exits non-zero", True, "exit code 2")],
    )
    bad_run = fake_run(tmp, "bad", False)
    bad = ScenarioResult(
        "random",
        "plans",
        False,
        runs=[bad_run],
        check=bad_run.result,
        replay=str(bad_run.rundir / "plan.json"),
        checks=[Check("something", False, "it broke")],
    )
    na = ScenarioResult("max-clients", "limits", None, applicable=False, reason="no [options] max_clients")
    return [good, bad, na]


def test_report_files(tmp_path: Path) -> None:
    results = scenarios(tmp_path / "runs")
    data = report.build(
        "20261128-000000-py311-0001", reference(), 42, results, 3.0, tmp_path / "runs", "chat-harness run"
    )
    path = report.write(tmp_path / "reports", "20261128-000000-py311-0001", data)
    assert path == tmp_path / "reports" / "20261128-000000-py311-0001" / "report.json"
    saved = json.loads(path.read_text())
    assert (saved["schema"], saved["version"], saved["verdict"]) == ("chat-harness/report", 2, "invalid")
    assert saved["environment"]["seed"] == 42 and saved["environment"]["python"]
    good, bad, na = saved["scenarios"]
    assert good["verdict"] == "valid" and good["checks"][0]["status"] == "pass"
    lat = good["latency"]
    assert lat["acks"] == 20 and lat["p50_ms"] == 20.0 and lat["max_ms"] == 40.0 and lat["p99_ms"] == 40.0
    run = good["runs"][0]
    assert run["windows"] == [{"kind": "shutdown", "label": "stop", "start": 0.5, "end": 0.9}]
    assert sum(run["series"]["acks_per_s"]) > 0 and run["plan"].endswith("plan.json")
    assert bad["replay"].startswith("chat-harness replay ") and bad["replay"].endswith("--target reference")
    assert na["verdict"] == "not applicable" and na["reason"]
    out = path.parent
    md = (out / "report.md").read_text()
    assert "| [random](#random) | invalid | ✗ |" in md and "**lost** (invariant 1)" in md and "Not applicable" in md
    html = (out / "report.html").read_text()
    assert html.count("<svg") == 4 and "stop 0.5" in html  # two charts per run, the shutdown window shaded
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html  # evidence is escaped
    assert not re.search(r"<(script|link)\b|src=|https?://(?!www\.w3\.org/2000/svg)", html)  # nothing to fetch
    suite = ET.fromstring((out / "junit.xml").read_text())
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    assert (tmp_path / "reports" / "latest").resolve() == out.resolve()


def test_index_compares_verdicts_across_python_versions(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    results = scenarios(tmp_path / "runs")
    for run_id, python in (("20261128-000001-py310-0001", "3.10.13"), ("20261128-000002-py313-0002", "3.13.0")):
        data = report.build(run_id, reference(), 1, results, 1.0, tmp_path)
        data["environment"]["python"] = python
        report.write(reports, run_id, data)
    index = (reports / "index.html").read_text()
    assert "Python 3.10.13" in index and "Python 3.13.0" in index
    assert index.count('href="20261128-') == 2


def test_reports_lead_with_what_failed_then_one_matrix(tmp_path: Path) -> None:
    results = scenarios(tmp_path / "runs")
    data = report.build("20261128-000003-py311-0003", reference(), 7, results, 3.0, tmp_path / "runs", "x")
    [failure] = data["failures"]
    assert failure["scenario"] == "random" and failure["verdict"] == "invalid"
    assert failure["sentence"] == "Messages the server acknowledged are missing from the log."  # the finding
    assert failure["evidence"][0] == "lost (invariant 1: no acked message lost): message <b>abc</b> lost"
    assert (
        failure["replay"]
        == f"chat-harness replay {(tmp_path / 'runs' / 'bad' / 'plan.json').resolve()} --target reference"
    )
    out = report.write(tmp_path / "reports", data["run_id"], data).parent
    for name in ("report.md", "report.html"):
        text = (out / name).read_text()
        verdict, failed, matrix, details = (
            text.index(w) for w in ("invalid", "What failed", "Scenarios × invariants", "Details")
        )
        assert (
            verdict < failed < text.index("missing from the log") < text.index("chat-harness replay") < matrix < details
        )
    assert "| # | invariant | status |" not in (out / "report.md").read_text()  # no invariant table per scenario
    html = (out / "report.html").read_text()
    assert 'href="#random-1"' in html and 'id="random-1"' in html  # a failed cell links to its detail
    assert 'href="#port-in-use"' in html and 'id="port-in-use"' in html

    valid = report.build("20261128-000004-py311-0004", reference(), 7, results[:1], 1.0, tmp_path / "runs")
    assert valid["failures"] == [] and "Nothing: all 1 scenarios that apply passed." in report.markdown(valid)


@pytest.mark.skipif(render_report.browser() is None, reason="no Chromium here (apt-get install chromium)")
def test_the_html_report_renders_in_a_real_browser_offline(tmp_path: Path) -> None:
    results = scenarios(tmp_path / "runs")
    data = report.build("20261128-000005-py311-0005", reference(), 7, results, 3.0, tmp_path / "runs", "x")
    out = report.write(tmp_path / "reports", data["run_id"], data).parent
    png = tmp_path / "report.png"
    render_report.render(out / "report.html", png, width=1000, height=900)
    head = png.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", head[16:24]) == (1000, 900)
    assert png.stat().st_size > 20_000  # a page with text and colour, not a blank one
