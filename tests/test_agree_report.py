"""``mlift report`` shows the agreement section for folders that have something to compare."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_agree import JUDGE, SECOND, write_agree_run
from test_report import write_run

from mlift.cli import main


def test_terminal_report_adds_agreement_only_where_there_is_some(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    agreed, plain = write_agree_run(tmp_path / "agreed"), write_run(tmp_path / "plain")
    assert main(["report", str(agreed), str(plain)]) == 0
    out = capsys.readouterr().out
    assert out.count("Agreement in ") == 1 and f"Agreement in {agreed}" in out
    assert f"{JUDGE}  vs  {SECOND}" in out and "fewer than 30 items" in out
    assert main(["report", str(plain)]) == 0
    assert "Agreement" not in capsys.readouterr().out


def test_html_report_has_the_agreement_section(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="the HTML report needs matplotlib ([report] extra)")
    agreed = write_agree_run(tmp_path / "agreed")
    page = tmp_path / "report.html"
    assert main(["report", str(agreed), "--html", str(page)]) == 0
    html = page.read_text()
    assert "<h2>Agreement: " in html and "judge vs judge" in html
    assert html.index("<h2>Agreement") > html.index("<h2>Comparison")
    assert "0.77" in html and "<th>≥4</th>" in html
