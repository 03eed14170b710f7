"""Eigenvalue scanner: market-mode share, its velocity, vel_div and Rényi-2 instability."""

from dolphin.scanner.scanner import IncrementalScanner, scan_prices
from dolphin.scanner.schema import scan_columns

__all__ = ["IncrementalScanner", "scan_columns", "scan_prices"]
