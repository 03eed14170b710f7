"""Eigenvalue scanner: market-mode share, its velocity, vel_div and Rényi-2 instability."""

from dolphin.scanner.scanner import IncrementalScanner, scan_columns, scan_prices

__all__ = ["IncrementalScanner", "scan_columns", "scan_prices"]
