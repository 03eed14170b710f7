"""Execution under NautilusTrader: the thin Dolphin strategy, backtests, paper and live nodes.

This is the only package that imports ``nautilus_trader``. Pure pieces (``core``, ``costs``,
``parity``, ``tradelog``) import no Nautilus code, so the internal replay's parity mode and the
reports can use them without loading the Rust core. Only one Nautilus engine or node may exist per
process: ``backtest.run_in_subprocess`` and the ``dolphin paper`` command respect that.
"""
