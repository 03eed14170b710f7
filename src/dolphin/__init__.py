"""DOLPHIN: correlation-structure crypto perpetual-futures trading system."""

__version__ = "0.1.0"
