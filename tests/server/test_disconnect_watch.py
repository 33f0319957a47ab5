"""The app's disconnect watch: a watcher task only for streams that run a while, one timer for all."""

import asyncio

from modelyard.server.disconnect import WATCH_AFTER_S, DisconnectWatch


def _receiver(disconnect: asyncio.Event):
    async def receive():
        await disconnect.wait()
        return {"type": "http.disconnect"}
    return receive


async def _stream(watch: DisconnectWatch, receive, gone: asyncio.Event, seconds: float) -> str:
    task = asyncio.current_task()
    watch.add(task, receive, gone)
    try:
        await asyncio.sleep(seconds)
        return "done"
    except asyncio.CancelledError:
        return "cancelled" if gone.is_set() else "cancelled from outside"
    finally:
        watch.discard(task)


async def test_a_short_stream_gets_no_watcher_and_leaves_nothing_behind():
    watch = DisconnectWatch()
    before = len(asyncio.all_tasks())
    assert await _stream(watch, _receiver(asyncio.Event()), asyncio.Event(), 0) == "done"
    assert watch._streams == {}
    await asyncio.sleep(WATCH_AFTER_S * 2.5)  # the timer fires, finds nothing, stops
    assert watch._handle is None
    assert len(asyncio.all_tasks()) == before
    watch.close()


async def test_a_long_stream_is_cancelled_when_its_client_hangs_up():
    watch = DisconnectWatch()
    hang_up, gone = asyncio.Event(), asyncio.Event()
    task = asyncio.ensure_future(_stream(watch, _receiver(hang_up), gone, 30))
    await asyncio.sleep(WATCH_AFTER_S * 2.5)  # long enough to be watched
    watcher = watch._streams[task][3]
    assert watcher is not None and not watcher.done()
    hang_up.set()
    assert await asyncio.wait_for(task, 5) == "cancelled"
    assert gone.is_set() and watch._streams == {}
    watch.close()


async def test_a_watched_stream_that_ends_stops_its_watcher():
    watch = DisconnectWatch()
    task = asyncio.ensure_future(_stream(watch, _receiver(asyncio.Event()), asyncio.Event(), WATCH_AFTER_S * 3))
    await asyncio.sleep(WATCH_AFTER_S * 2.5)
    watcher = watch._streams[task][3]
    assert watcher is not None
    assert await task == "done"
    await asyncio.sleep(0)
    assert watcher.cancelled()
    watch.close()
