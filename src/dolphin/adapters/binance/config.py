"""Binance USDT-M client configs whose ``repr``/``str`` never show the exchange keys.

Nautilus configs are msgspec structs whose default ``repr`` prints every field, keys included,
and a config ends up in log lines and error messages sooner or later. These subclasses mask
the key fields in ``repr`` and ``str`` (and so in f-strings and ``%s`` logging); the values
themselves are untouched, because the Binance clients must sign requests with them. ``json()``
still holds the keys: Nautilus hashes it for the config id, and writes it to disk only when
streaming is configured, which DOLPHIN never does for a keyed config.
"""

from __future__ import annotations

import os
from typing import Any

from nautilus_trader.adapters.binance.config import (
    BinanceDataClientConfig,
    BinanceExecClientConfig,
)

from dolphin.core.errors import ConfigError

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


TESTNET_KEY_ENV = ("BINANCE_FUTURES_TESTNET_API_KEY", "BINANCE_FUTURES_TESTNET_API_SECRET")
LIVE_KEY_ENV = ("BINANCE_FUTURES_API_KEY", "BINANCE_FUTURES_API_SECRET")


def binance_client_configs(*, testnet: bool, env: dict[str, str] | None = None):
    """Return ``(data, exec)`` Binance USDT-M client configs with keys from the environment."""
    from nautilus_trader.adapters.binance.common.enums import BinanceAccountType

    env = dict(os.environ) if env is None else env
    key_env, secret_env = TESTNET_KEY_ENV if testnet else LIVE_KEY_ENV
    key, secret = env.get(key_env), env.get(secret_env)
    if not key or not secret:
        raise ConfigError(f"set {key_env} and {secret_env} in the environment")
    common = {"api_key": key, "api_secret": secret, "testnet": testnet,
              "account_type": BinanceAccountType.USDT_FUTURES}
    # Masked: the configs' repr/str never show the keys (adapters/binance/config.py).
    return MaskedBinanceDataClientConfig(**common), MaskedBinanceExecClientConfig(**common)
