"""The local exchange's slow-client policy: Binance's disconnect, or a tape that waits.

A client here is a send queue nobody drains until the test says so (no socket), so how far
behind it is does not depend on the machine's speed.
"""

from __future__ import annotations

import asyncio

import pytest

from dolphin.adapters.binance.local_exchange import LocalExchange, _Client
from dolphin.core.errors import ConfigError
from tests.kit.paths import SHARED_DATA, require

CAPTURE = SHARED_DATA / "raw_ws" / "binance_usdm" / "btcusdt_20240718.gz"
N = 40  # messages of the tape played


class _Transport:
    def __init__(self) -> None:
        self.aborted = 0

    def abort(self) -> None:
        self.aborted += 1


class _Ws:
    def __init__(self) -> None:
        self.transport = _Transport()


def _exchange(slow_client: str, send_queue: int) -> tuple[LocalExchange, _Client]:
    ex = LocalExchange(captures=[require(CAPTURE)], speed=1e9, send_queue=send_queue,
                       slow_client=slow_client)
    ex.messages = ex.messages[:N]
    client = _Client(_Ws(), True, {m.stream for m in ex.messages}, send_queue)
    ex.clients.add(client)
    return ex, client


def test_a_client_whose_queue_fills_is_disconnected_by_default():
    ex, client = _exchange("drop", 4)

    async def run():
        await asyncio.wait_for(ex._play(), timeout=10)

    asyncio.run(run())
    assert ex.played == N  # the tape went on without it
    assert client.queue.qsize() == 4
    assert ex.counters["slow_client_dropped"] == N - 4 == client.ws.transport.aborted


def test_a_waiting_tape_pauses_until_the_client_catches_up_and_drops_nothing():
    ex, client = _exchange("wait", 4)

    async def run():
        player = asyncio.get_running_loop().create_task(ex._play())
        await asyncio.sleep(0.2)
        paused_at = ex.played  # the queue is past half (2): the tape waits
        assert not player.done() and paused_at == 3 == client.queue.qsize()
        got = []
        while len(got) < N:
            got.append(await asyncio.wait_for(client.queue.get(), timeout=5))
        await asyncio.wait_for(player, timeout=5)
        return got

    got = asyncio.run(run())
    assert got == [m.text for m in ex.messages]  # every message, in tape order
    assert ex.counters["slow_client_dropped"] == 0 and client.ws.transport.aborted == 0


@pytest.mark.parametrize("kw", [{"slow_client": "block"}, {"send_queue": 1}])
def test_a_bad_policy_is_a_config_error(kw):
    with pytest.raises(ConfigError, match=next(iter(kw))):
        LocalExchange(captures=[require(CAPTURE)], **kw)
