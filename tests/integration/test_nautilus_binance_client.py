"""NautilusTrader's own Binance USDT-M data client runs against the local exchange.

Its instrument provider reads ``exchangeInfo`` and the signed ``/fapi/v2/account`` (the
exchange answers that with an empty paper account). Its book subscription takes a
``/fapi/v1/depth`` snapshot and applies the depth stream, and its quotes and trades come from
``bookTicker`` and ``trade``. At the end of the tape its book's best bid and ask equal the
exchange's.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.kit.paths import REPO, SHARED_DATA, require


def test_nautilus_binance_data_client_syncs_its_book_from_the_local_exchange():
    raw = SHARED_DATA / "raw_ws"
    capture = require(raw / "binance_usdm" / "btcusdt_20240718.gz")
    info = require(raw / "cryptofeed_binance_futures" / "BINANCE_FUTURES.0")
    probe = REPO / "tests" / "kit" / "nautilus_binance_probe.py"
    proc = subprocess.run([sys.executable, str(probe), str(capture), str(info)],
                          capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(next(ln for ln in proc.stdout.splitlines() if ln.startswith("probe "))[6:])
    assert out["deltas"] > 1000 and out["quotes"] > 1000 and out["trades"] > 100, out
    assert out["nautilus_top"] == out["exchange_top"], out
    assert out["exchange"]["pongs"] >= 1  # it answers the exchange's pings
    assert not any(k.startswith("unknown ") for k in out["exchange"]), out
