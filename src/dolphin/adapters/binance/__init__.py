"""Binance USDT-M: client configs built from environment keys, masked in every repr."""
