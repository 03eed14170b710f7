"""Adapters: the only code that talks to NautilusTrader, Hazelcast and Binance.

Adapters depend on the pure packages and the store's ports, never the reverse (``lint-imports``
checks it). ``nautilus`` runs the engine inside a Nautilus strategy (backtest, paper);
``hazelcast`` is the store on a real cluster and its local member control; ``binance`` builds the
USDT-M client configs from environment keys.
"""
