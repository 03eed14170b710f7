"""Only ``dolphin.execution`` may import nautilus_trader; its pure parts must not either."""

from __future__ import annotations

import subprocess
import sys

PURE = ("dolphin.core.config", "dolphin.scanner.scanner", "dolphin.alpha.engine",
        "dolphin.risk.acb", "dolphin.backtest.replay", "dolphin.execution.core",
        "dolphin.execution.costs", "dolphin.execution.parity", "dolphin.execution.tradelog",
        "dolphin.execution.backtest", "dolphin.commands.backtest", "dolphin.commands.paper")


def test_pure_modules_do_not_load_nautilus():
    code = ("import sys\n" + "".join(f"import {m}\n" for m in PURE)
            + "print('nautilus_trader' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
