"""Survival controller update cost; prints one JSON line.

``update_us``: one ``SurvivalController.update`` with one sensor in each of the five categories
(heartbeat, MC age, OB age, DVOL impulse, drawdown), readings that keep every category off its
nominal value so no shortcut applies. ``full_registry_update_us``: the same with all twelve
standard sensors. Baseline in the same run: a plain dict-based reference of the same maths (the
seed's template style: per-category dicts of configs and values, recomputed every update).
Budget (seed 001 §"Near-Zero Latency"): 5 µs per update.
"""

from __future__ import annotations

import json
import math
import time

from dolphin.core.config import SurvivalConfig
from dolphin.risk.sensors import (
    capital_sensors,
    environmental_sensors,
    invariant_sensors,
    microstructure_sensors,
    structural_sensors,
)
from dolphin.risk.survival import SensorRegistry, SurvivalController, default_registry

N = 200_000
MIN = 60_000_000_000
READINGS = {
    "heartbeat_age_s": 1.0,
    "mc_age_h": 7.0,
    "ob_age_s": 3.0,
    "dvol": 50.0,
    "drawdown": 0.03,
}
FULL = {
    **READINGS,
    "store_nodes": 3.0,
    "ledger_ok": 1.0,
    "mc_status": 0.0,
    "exf_age_h": 0.7,
    "ob_jitter_ms": 250.0,
    "ob_depth_quality": 0.95,
    "ob_fill_probability": 0.9,
}


class DictReference:
    """The same §11 maths written plainly with dicts (what the controller is compared with)."""

    def __init__(self, cfg: SurvivalConfig) -> None:
        self.cfg = cfg
        self.profiles = {
            "invariant": {"deadband": cfg.heartbeat_max_age_s},
            "structural": {"deadband": cfg.mc_deadband_h, "tau": cfg.mc_tau_h, "floor": 0.0},
            "micro": {"deadband": cfg.ob_deadband_s, "tau": cfg.ob_tau_s, "floor": 0.5},
            "environmental": {"floor": cfg.shock_floor, "tau": cfg.shock_tau_min},
            "capital": {"mid": cfg.dd_midpoint, "k": cfg.dd_steepness},
        }
        self.state = {"last_rm": None, "last_ns": None, "dvol": None, "shock_min": -math.inf}

    def update(self, r: dict, now_ns: int) -> dict:
        p, s, cfg = self.profiles, self.state, self.cfg
        now_min = now_ns / MIN
        vals = {"invariant": 1.0 if r["heartbeat_age_s"] <= p["invariant"]["deadband"] else 0.0}
        for cat, key in (("structural", "mc_age_h"), ("micro", "ob_age_s")):
            q = p[cat]
            x = max(0.0, r[key] - q["deadband"])
            vals[cat] = q["floor"] + (1 - q["floor"]) * math.exp(-x / q["tau"])
        if s["dvol"] is not None and r["dvol"] >= s["dvol"] * (1 + cfg.dvol_shock_rise):
            s["shock_min"] = now_min
        s["dvol"] = r["dvol"]
        q = p["environmental"]
        since = now_min - s["shock_min"]
        vals["environmental"] = q["floor"] + (1 - q["floor"]) * (1 - math.exp(-since / q["tau"]))
        q = p["capital"]
        vals["capital"] = (1 + math.exp(-q["k"] * q["mid"])) / (
            1 + math.exp(q["k"] * (r["drawdown"] - q["mid"]))
        )
        target = (
            vals["invariant"]
            * vals["capital"]
            * min(vals["structural"], vals["environmental"])
            * vals["micro"]
        )
        degraded = sum(vals[k] < 0.8 for k in ("structural", "micro", "environmental"))
        if degraded >= 2:
            target *= 0.5
        last = s["last_rm"]
        if last is None or target <= last:
            rm = target
        else:
            dt = (now_ns - s["last_ns"]) / MIN
            rm = last + min(min(1.0, 0.02 * dt) * (target - last), 0.05 * dt)
        s["last_rm"], s["last_ns"] = rm, now_ns
        posture = "APEX" if rm >= 0.9 else "STALKER" if rm >= 0.75 else "TURTLE"
        return {"rm": rm, "posture": posture, "categories": vals}


def _time(update, readings: dict) -> float:
    t0 = time.perf_counter()
    for i in range(N):
        update(readings, i * MIN)
    return (time.perf_counter() - t0) / N * 1e6


def main() -> None:
    """Time the controller and the dict reference; print the JSON line."""
    cfg = SurvivalConfig()
    five = SensorRegistry(
        [
            invariant_sensors(cfg)[0],
            structural_sensors(cfg)[1],
            microstructure_sensors(cfg)[0],
            *environmental_sensors(cfg),
            *capital_sensors(cfg),
        ]
    )
    ref = DictReference(cfg)
    ctl = SurvivalController(cfg, five)
    a, b = ctl.update(READINGS, MIN), ref.update(READINGS, MIN)
    assert abs(a.rm - b["rm"]) < 1e-12, (a.rm, b["rm"])  # same maths, same answer
    best = min(_time(SurvivalController(cfg, five).update, READINGS) for _ in range(3))
    base = min(_time(DictReference(cfg).update, READINGS) for _ in range(3))
    full = min(_time(SurvivalController(cfg, default_registry(cfg)).update, FULL) for _ in range(3))
    print(
        json.dumps(
            {
                "bench": "survival_update",
                "categories": 5,
                "sensors": len(five),
                "update_us": round(best, 3),
                "full_registry_sensors": len(default_registry(cfg)),
                "full_registry_update_us": round(full, 3),
                "budget_us": 5.0,
                "baseline": "dict-based reference of the same maths",
                "baseline_update_us": round(base, 3),
                "speedup_vs_baseline": round(base / best, 2),
                "updates_timed": N,
            }
        )
    )


if __name__ == "__main__":
    main()
