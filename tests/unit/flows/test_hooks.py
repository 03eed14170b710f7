"""Flow heartbeats: completed -> RUNNING, failed or timed out -> FAULTED with the reason, Late
runs -> DEGRADED; always under ``prefect:<flow name>`` in the store the run names."""

from __future__ import annotations

import time

import pytest
from prefect import task

from dolphin.flows import hooks
from dolphin.flows.hooks import component_name, dolphin_flow, flow_beat, late_beats, store_for
from dolphin.store.schema import HEARTBEAT, decode_value


def beat_of(url: str, flow_name: str) -> dict | None:
    raw = store_for(url).map(HEARTBEAT).get(component_name(flow_name))
    return None if raw is None else decode_value(raw).data


@dolphin_flow(name="t-ok")
def ok_flow(store_url: str | None = None) -> int:
    return 1


@dolphin_flow(name="t-boom")
def boom_flow(store_url: str | None = None) -> int:
    raise ValueError("scans file vanished")


@task(timeout_seconds=0.5)
def slow() -> None:
    time.sleep(5)


@dolphin_flow(name="t-slow")
def slow_flow(store_url: str | None = None) -> None:
    slow()


def test_a_completed_run_beats_running(harness, store_url):
    assert ok_flow(store_url=store_url) == 1
    beat = beat_of(store_url, "t-ok")
    assert beat["state"] == "RUNNING" and beat["reason"] is None
    assert beat["component"] == "prefect:t-ok" and beat["flow_run"]


def test_a_failed_run_beats_faulted_with_the_error(harness, store_url):
    with pytest.raises(ValueError, match="vanished"):
        boom_flow(store_url=store_url)
    beat = beat_of(store_url, "t-boom")
    assert beat["state"] == "FAULTED"
    assert "Failed" in beat["reason"] and "scans file vanished" in beat["reason"]


def test_a_timed_out_task_faults_the_flow(harness, store_url):
    with pytest.raises(Exception, match=r"(?i)timed out|timeout"):
        slow_flow(store_url=store_url)
    assert beat_of(store_url, "t-slow")["state"] == "FAULTED"


def test_the_store_comes_from_the_environment_without_a_parameter(harness, store_url,
                                                                   monkeypatch):
    monkeypatch.setenv(hooks.STORE_ENV, store_url)
    ok_flow()
    assert beat_of(store_url, "t-ok")["state"] == "RUNNING"


def test_an_unreachable_store_does_not_change_the_runs_outcome(harness, monkeypatch):
    def broken(url):
        raise ConnectionError("store down")

    monkeypatch.setattr(hooks, "opener", broken)
    assert ok_flow(store_url="memory://nowhere") == 1
    with pytest.raises(ValueError, match="vanished"):
        boom_flow(store_url="memory://nowhere")


def test_a_later_beat_replaces_an_earlier_one(store_url):
    hooks.write_beat(flow_beat("f", "FAULTED", reason="x", ts_ns=2_000), store_url)
    hooks.write_beat(flow_beat("f", "RUNNING", ts_ns=1_000), store_url)  # older: ignored
    assert beat_of(store_url, "f")["state"] == "FAULTED"
    hooks.write_beat(flow_beat("f", "RUNNING", ts_ns=3_000), store_url)
    assert beat_of(store_url, "f")["state"] == "RUNNING"


def test_late_runs_give_one_degraded_beat_per_flow_naming_the_oldest():
    runs = [{"flow": "dolphin-paper", "id": "b", "expected_start": "2026-01-02T00:05:00Z"},
            {"flow": "dolphin-paper", "id": "a", "expected_start": "2026-01-01T00:05:00Z"},
            {"flow": "dolphin-mc-forewarner", "id": "c", "expected_start": "2026-01-02T00:00Z"}]
    beats = late_beats(runs, ts_ns=5)
    assert [b["component"] for b in beats] == ["prefect:dolphin-mc-forewarner",
                                               "prefect:dolphin-paper"]
    assert all(b["state"] == "DEGRADED" and b["phase"] == "late" for b in beats)
    assert beats[1]["flow_run"] == "a" and "2026-01-01T00:05:00Z" in beats[1]["reason"]
    assert late_beats([]) == []


def test_the_watch_flow_reports_no_late_run_on_a_fresh_api(harness, store_url):
    from dolphin.flows.watch import prefect_watch_flow

    assert prefect_watch_flow(store_url=store_url) == []
    assert beat_of(store_url, "dolphin-prefect-watch")["state"] == "RUNNING"
