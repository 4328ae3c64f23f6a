"""``labelflow mturk balance|hits|expire`` against a local endpoint, and the MTurk command-line switches."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from labelflow.flows import mturk_cli
from labelflow.flows.cli import app
from labelflow.integrations.crowd.base import LabelRequest
from labelflow.integrations.crowd.mturk import MTurkConfig, MTurkCrowd, make_mturk_client
from labelflow.integrations.mturk_local import LocalMTurkServer

runner = CliRunner()


def project_on(endpoint: LocalMTurkServer, folder: Path, *, live: bool = False) -> Path:
    path = folder / "labelflow.toml"
    mturk = f'endpoint_url = "{endpoint.url}"\nlocal = true\n' if not live else "live = true\n"
    path.write_text(f'[crowd]\nbackend = "mturk"\n\n[crowd.mturk]\n{mturk}', encoding="utf-8")
    return path


def test_balance_hits_and_expire(
    tmp_path: Path, mturk_endpoint: Callable[..., LocalMTurkServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mturk_cli, "console", Console(width=200))  # no wrapped table cells
    endpoint = mturk_endpoint(truth={"a": "1", "b": "2"})
    config = MTurkConfig(endpoint_url=endpoint.url, local=True)
    crowd = MTurkCrowd(
        make_mturk_client(config),
        config,
        ["1", "2"],
        reward_per_answer=0.05,
        redundancy=3,
        max_answers=3,
        round_handles=lambda round_id: [],
    )
    crowd.publish([LabelRequest(f"p/r1/{i}/w1", i, 1, 1, 3) for i in ("a", "b")])
    path = project_on(endpoint, tmp_path)

    result = runner.invoke(app, ["mturk", "balance", "--config", str(path)])
    assert result.exit_code == 0 and "$9999.64" in result.output  # 6 answers x $0.06 escrowed
    result = runner.invoke(app, ["mturk", "hits", "--config", str(path)])
    assert result.exit_code == 0 and result.output.count("Assignable") == 2
    assert runner.invoke(app, ["mturk", "expire", "--config", str(path)]).exit_code == 2
    result = runner.invoke(app, ["mturk", "expire", "--all", "--config", str(path)])
    assert result.exit_code == 0 and "Expired 2 of 2" in result.output
    assert "Assignable" not in runner.invoke(app, ["mturk", "hits", "--config", str(path)]).output


def test_production_needs_live_on_both_sides(
    tmp_path: Path, mturk_endpoint: Callable[..., LocalMTurkServer]
) -> None:
    path = project_on(mturk_endpoint(), tmp_path, live=True)
    result = runner.invoke(app, ["mturk", "balance", "--config", str(path)])
    assert result.exit_code == 1 and "--live" in result.output  # refused before any call


@pytest.mark.parametrize("command", [["mturk", "--help"], ["mturk-local", "--help"], ["demo", "--help"]])
def test_mturk_commands_explain_themselves(command: list[str]) -> None:
    result = runner.invoke(app, command)
    assert result.exit_code == 0 and "Usage" in result.output


def test_demo_refuses_an_unknown_crowd() -> None:
    result = runner.invoke(app, ["demo", "--crowd", "mechanical-horse"])
    assert result.exit_code == 2 and "mturk-local" in result.output


def test_preview_writes_the_exact_hit_page_of_an_item(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mturk_cli, "console", Console(width=200))
    rows = [
        f'{k:03d},"a <b>{("good", "bad")[k % 2]}</b> film, take {k}",{("pos", "neg")[k % 2]}'
        for k in range(40)
    ]
    (tmp_path / "reviews.csv").write_text("item_id,text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    config = tmp_path / "labelflow.toml"
    config.write_text(
        'name = "reviews"\nlabels = ["pos", "neg"]\nstore_url = "sqlite:///.labelflow/db.sqlite"\n'
        '[dataset]\nsource = "reviews.csv"\nkind = "text"\nn_gold = 2\n'
        '[task]\ntitle = "Is this review positive?"\n[task.labels.neg]\ndisplay = "Negative"\n',
        encoding="utf-8",
    )
    out = tmp_path / "out"
    result = runner.invoke(app, ["preview", "007", "-c", str(config), "-o", str(out), "--no-png"])
    assert result.exit_code == 0, result.output
    page = (out / "hit-007.html").read_text(encoding="utf-8")
    assert "a &lt;b&gt;bad&lt;/b&gt; film, take 7" in page and "Is this review positive?" in page
    assert '<span class="name">Negative</span>' in page and "bytes as a question" in result.output
    missing = runner.invoke(app, ["preview", "7", "-c", str(config), "-o", str(out)])  # ids are text: 7 ≠ 007
    assert missing.exit_code == 1 and "no item '7'" in missing.output
