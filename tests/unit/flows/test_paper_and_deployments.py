"""paper_trade_flow runs `dolphin paper` on a short replay; the §17 deployments and their serve."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dolphin.core.config import CHAMPION_BLUE_ID
from dolphin.core.errors import BadInputError, ConfigError
from dolphin.flows.deployments import DeploymentSpec, deployments, serve_deployments
from dolphin.flows.paper import config_path, paper_command, paper_trade_flow, parse_summary
from tests.kit.paths import SAMPLE, require


def test_the_command_line_of_a_green_session_is_research(tmp_path):
    cmd = paper_command(config_path("green"), Path("bars.parquet"), store_url="tcp://h:1",
                        research=True, speed=600, duration_s=5, warmup=10,
                        log_dir=tmp_path, ledger=tmp_path / "l.db", forewarner=False)
    assert cmd[1:4] == ["-m", "dolphin", "paper"]
    assert cmd[cmd.index("--store") + 1] == "tcp://h:1"
    assert cmd[cmd.index("--config") + 1].endswith("configs/green.yml")
    assert {"--research", "--no-forewarner", "--ledger"} <= set(cmd)
    with pytest.raises(ConfigError, match="purple"):
        config_path("purple")


def test_the_summary_is_the_last_session_line():
    assert parse_summary('x\nsession {"pnl": 1}\nsession {"pnl": 2}\n') == {"pnl": 2}
    with pytest.raises(BadInputError, match="no session summary"):
        parse_summary("nothing\n")


def test_a_blue_session_runs_and_logs_its_pnl(harness, store_url, tmp_path):
    out = paper_trade_flow("blue", replay=str(require(SAMPLE / "bars_1m_sample.parquet")),
                           store_url="memory://", duration_s=3.0, log_dir=str(tmp_path),
                           forewarner=False, unsupervised=True)
    assert out["config_id"] == CHAMPION_BLUE_ID and out["exit"] == 0 and out["bars"] > 100
    lines = (tmp_path / "blue" / "pnl.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["session"] == out["session"]


def test_a_missing_replay_fails_the_flow(harness, store_url, tmp_path):
    with pytest.raises(BadInputError, match="replay file does not exist"):
        paper_trade_flow("green", replay=str(tmp_path / "none.parquet"), store_url=store_url)


def test_the_deployments_follow_section_17():
    urls = {"binance": "http://127.0.0.1:2", "deribit": "http://127.0.0.1:3",
            "fng": "http://127.0.0.1:4"}
    specs = {s.name: s for s in deployments("tcp://127.0.0.1:1", scans="s.parquet",
                                            exf_urls=urls)}
    assert specs["dolphin-paper-blue"].cron == "5 0 * * *"
    assert specs["dolphin-paper-blue"].parameters["config"] == "blue"
    assert specs["dolphin-paper-green"].parameters["config"] == "green"
    assert specs["dolphin-nautilus-blue"].cron == "10 0 * * *"
    assert specs["dolphin-mc-forewarner"].cron == "0 0 * * *"
    assert specs["dolphin-exf-refresh"].interval_s == 3600
    assert all(s.parameters["store_url"] == "tcp://127.0.0.1:1" for s in specs.values())
    assert specs["dolphin-exf-refresh"].parameters["fng_url"] == "http://127.0.0.1:4"
    bare = {s.name for s in deployments("memory://")}
    assert "dolphin-nautilus-blue" not in bare and "dolphin-exf-refresh" not in bare


def test_interval_overrides_replace_a_schedule_and_unknown_names_fail():
    specs = deployments("memory://", interval_overrides={"dolphin-esof-refresh": 5})
    esof = next(s for s in specs if s.name == "dolphin-esof-refresh")
    assert (esof.cron, esof.interval_s) == (None, 5.0)
    with pytest.raises(ConfigError, match="dolphin-nope"):
        deployments("memory://", interval_overrides={"dolphin-nope": 5})
    with pytest.raises(ConfigError, match="exactly one"):
        DeploymentSpec("x", None)


def test_serve_needs_a_real_server(monkeypatch):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(restore_defaults={PREFECT_API_URL}), \
            pytest.raises(ConfigError, match="PREFECT_API_URL"):
        serve_deployments("memory://", serve=lambda *a, **k: None)


def test_serve_registers_module_path_entry_points(monkeypatch):
    monkeypatch.delenv("DOLPHIN_STORE_URL", raising=False)  # serve sets it for its runs
    from prefect.settings import PREFECT_API_URL, temporary_settings

    seen = []
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        serve_deployments("memory://x", only=["dolphin-esof-refresh"],
                          interval_overrides={"dolphin-esof-refresh": 7},
                          serve=lambda *deps, **kw: seen.extend(deps))
    (dep,) = seen
    assert dep.name == "dolphin-esof-refresh"
    assert dep.entrypoint == "dolphin.flows.factors.esof_refresh_flow"
    assert dep.parameters == {"store_url": "memory://x"}
    assert dep.schedules[0].schedule.interval.total_seconds() == 7
