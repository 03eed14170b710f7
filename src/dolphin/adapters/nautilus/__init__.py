"""NautilusTrader: the thin Dolphin strategy, the BacktestEngine driver, paper trading.

The only package that imports ``nautilus_trader``. Its pure modules (``scan_driver``,
``parity_fills``, ``fill_results``, ``parity``, ``guards``) import no Nautilus code, so the
internal replay's parity mode can use them without loading the Rust core. Only one Nautilus
engine or node may exist per process: ``backtest.run_in_subprocess`` and ``dolphin paper``
respect that.
"""
