"""Binance USDT-M client configs whose ``repr``/``str`` never show the exchange keys.

Nautilus configs are msgspec structs whose default ``repr`` prints every field, keys included,
and a config ends up in log lines and error messages sooner or later. These subclasses mask
the key fields in ``repr`` and ``str`` (and so in f-strings and ``%s`` logging); the values
themselves are untouched, because the Binance clients must sign requests with them. ``json()``
still holds the keys: Nautilus hashes it for the config id, and writes it to disk only when
streaming is configured, which DOLPHIN never does for a keyed config.
"""

from __future__ import annotations

from typing import Any

from nautilus_trader.adapters.binance.config import (
    BinanceDataClientConfig,
    BinanceExecClientConfig,
)

SECRET_FIELDS = ("api_key", "api_secret")
MASK = "***"


def mask_secrets(text: str, obj: Any) -> str:
    """Return ``text`` with the values of ``obj``'s secret fields replaced by ``***``."""
    for name in SECRET_FIELDS:
        value = getattr(obj, name, None)
        if isinstance(value, str) and value:
            text = text.replace(repr(value), repr(MASK)).replace(value, MASK)
    return text


class MaskedBinanceDataClientConfig(BinanceDataClientConfig, frozen=True):
    """``BinanceDataClientConfig`` with the keys masked in ``repr`` and ``str``."""

    def __repr__(self) -> str:
        return mask_secrets(super().__repr__(), self)

    def __str__(self) -> str:
        return repr(self)


class MaskedBinanceExecClientConfig(BinanceExecClientConfig, frozen=True):
    """``BinanceExecClientConfig`` with the keys masked in ``repr`` and ``str``."""

    def __repr__(self) -> str:
        return mask_secrets(super().__repr__(), self)

    def __str__(self) -> str:
        return repr(self)
