"""Only ``dolphin.adapters.nautilus`` may import nautilus_trader, and its modules that are pure
(the scan driver, parity fills, the parity report) must not either."""

from __future__ import annotations

import subprocess
import sys

PURE = ("dolphin.core.config", "dolphin.scanner.scanner", "dolphin.alpha.engine",
        "dolphin.risk.acb", "dolphin.backtest.replay", "dolphin.adapters.nautilus.scan_driver",
        "dolphin.adapters.nautilus.parity_fills", "dolphin.adapters.nautilus.parity",
        "dolphin.ledger.tradelog", "dolphin.adapters.nautilus.backtest",
        "dolphin.commands.backtest", "dolphin.commands.paper")


def test_pure_modules_do_not_load_nautilus():
    code = ("import sys\n" + "".join(f"import {m}\n" for m in PURE)
            + "print('nautilus_trader' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
