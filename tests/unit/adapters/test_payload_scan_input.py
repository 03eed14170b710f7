"""``payload_scan_input``: a published scan payload -> the engine's ScanInput."""

from __future__ import annotations

import math

import numpy as np

from dolphin.adapters.nautilus.scan_driver import payload_scan_input


def _payload(prices: dict) -> dict:
    return {"timestamp_ns": 60, "scan_number": 3, "vel_div": -0.03, "data_gap": False,
            "v750_lambda_max_velocity": None, "asset_prices": prices}


def test_same_universe_in_order_reads_the_values_with_null_as_nan() -> None:
    scan = payload_scan_input(_payload({"A": 1.0, "B": None, "C": 3.0}), ["A", "B", "C"], 5)
    assert scan.bar_index == 5 and scan.scan_number == 3 and scan.bar_ts_ns == 60
    assert scan.prices[0] == 1.0 and math.isnan(scan.prices[1]) and scan.prices[2] == 3.0
    assert math.isnan(scan.v750_vel)


def test_another_order_or_universe_maps_by_name() -> None:
    prices = {"C": 3.0, "A": 1.0, "X": 9.0}  # another order, one unknown asset, B absent
    scan = payload_scan_input(_payload(prices), ["A", "B", "C"], 0)
    expected = np.array([1.0, np.nan, 3.0])
    np.testing.assert_array_equal(scan.prices, expected)
    same_len = payload_scan_input(_payload({"B": 2.0, "A": 1.0, "C": 3.0}), ["A", "B", "C"], 0)
    np.testing.assert_array_equal(same_len.prices, [1.0, 2.0, 3.0])
