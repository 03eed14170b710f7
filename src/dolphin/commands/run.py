"""`dolphin run`: not registered yet."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Nothing to register yet."""
