"""Replay backtest, metrics, HELL friction and the HTML report."""
