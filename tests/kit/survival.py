"""Healthy sensor readings for survival-controller tests; tests override what they degrade."""

from __future__ import annotations

#: One minute in nanoseconds (the controller's clock unit).
MIN = 60_000_000_000

#: Every default sensor reading well inside its deadband.
HEALTHY = {
    "heartbeat_age_s": 1.0,
    "store_nodes": 3.0,
    "ledger_ok": 1.0,
    "mc_status": 0.0,
    "mc_age_h": 1.0,
    "exf_age_h": 0.1,
    "ob_age_s": 0.5,
    "ob_jitter_ms": 50.0,
    "ob_depth_quality": 1.2,
    "ob_fill_probability": 1.0,
    "dvol": 50.0,
    "drawdown": 0.0,
}
