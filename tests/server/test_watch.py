"""The app's request watch: a watcher (a `receive()` stepped without a task) only for requests that
run a while, one timer for all, and a deadline on the body."""

import asyncio

from modelyard.server.watch import GONE, TIMED_OUT, WATCH_AFTER_S, RequestWatch


def _receiver(disconnect: asyncio.Event):
    async def receive():
        await disconnect.wait()
        return {"type": "http.disconnect"}
    return receive


async def _request(watch: RequestWatch, receive, seconds: float) -> str:
    task = asyncio.current_task()
    watch.add(task, receive)
    try:
        await asyncio.sleep(seconds)
        return "done"
    except asyncio.CancelledError:
        return "cancelled" if watch.state(task) == GONE else "cancelled from outside"
    finally:
        watch.discard(task)


async def test_a_short_request_gets_no_watcher_and_leaves_nothing_behind():
    watch = RequestWatch()
    before = len(asyncio.all_tasks())
    assert await _request(watch, _receiver(asyncio.Event()), 0) == "done"
    assert watch._requests == {} and watch._unwatched == {}
    await asyncio.sleep(WATCH_AFTER_S * 2.5)  # the timer fires, finds nothing, stops
    assert watch._handle is None
    assert len(asyncio.all_tasks()) == before
    watch.close()


async def test_a_long_request_is_cancelled_when_its_client_hangs_up():
    watch = RequestWatch()
    hang_up = asyncio.Event()
    task = asyncio.ensure_future(_request(watch, _receiver(hang_up), 30))
    await asyncio.sleep(WATCH_AFTER_S * 2.5)  # long enough to be watched
    watcher = watch._requests[task][3]
    assert watcher is not None and not watcher.stopped
    hang_up.set()
    assert await asyncio.wait_for(task, 5) == "cancelled"
    assert watch._requests == {}
    watch.close()


async def test_a_watched_request_that_ends_stops_its_watcher():
    watch = RequestWatch()
    task = asyncio.ensure_future(_request(watch, _receiver(asyncio.Event()), WATCH_AFTER_S * 3))
    await asyncio.sleep(WATCH_AFTER_S * 2.5)
    watcher = watch._requests[task][3]
    assert watcher is not None
    assert await task == "done"
    assert watcher.stopped
    watch.close()


async def test_a_body_past_its_deadline_is_cancelled_and_says_so():
    watch = RequestWatch()

    async def read_body() -> str | None:
        task = asyncio.current_task()
        watch.reading(task, WATCH_AFTER_S)
        try:
            await asyncio.sleep(30)  # a body that never ends
        except asyncio.CancelledError:
            return watch.state(task)
        finally:
            watch.discard(task)
        return None

    assert await asyncio.wait_for(read_body(), 5) == TIMED_OUT
    watch.close()


async def test_a_watcher_takes_no_task_and_its_receive_is_cleaned_up_when_the_request_ends():
    watch = RequestWatch()
    events: list[str] = []

    async def receive():
        events.append("waiting")
        try:
            await asyncio.Event().wait()  # a client that stays
        finally:
            events.append("cleaned up")  # (the server's waiter removed, as a cancelled task would)
        return {"type": "http.disconnect"}

    before = len(asyncio.all_tasks())
    task = asyncio.ensure_future(_request(watch, receive, WATCH_AFTER_S * 3))
    await asyncio.sleep(WATCH_AFTER_S * 2.5)
    assert events == ["waiting"]
    assert len(asyncio.all_tasks()) == before + 1  # the request's own task only
    assert await task == "done"
    assert events == ["waiting", "cleaned up"]
    watch.close()


async def test_a_watcher_reads_past_other_messages_and_through_bare_yields():
    watch = RequestWatch()
    messages = [{"type": "http.request", "body": b"", "more_body": False}, {"type": "http.disconnect"}]

    async def receive():
        await asyncio.sleep(0)  # a bare yield
        await asyncio.sleep(0.001)  # a future
        return messages.pop(0)

    assert await asyncio.wait_for(_request(watch, receive, 30), 5) == "cancelled"
    assert messages == []
    watch.close()


async def test_a_receive_that_fails_ends_the_watch_not_the_request():
    watch = RequestWatch()

    async def receive():
        await asyncio.sleep(0.001)
        raise RuntimeError("the server is closing")

    task = asyncio.ensure_future(_request(watch, receive, WATCH_AFTER_S * 4))
    await asyncio.sleep(WATCH_AFTER_S * 2.5)
    watcher = watch._requests[task][3]
    assert watcher is not None and watcher.stopped
    assert await task == "done"
    watch.close()


async def test_the_timer_stops_visiting_a_request_once_it_is_watched_and_rests_when_only_watched_ones_run():
    watch = RequestWatch()
    task = asyncio.ensure_future(_request(watch, _receiver(asyncio.Event()), 30))
    await asyncio.sleep(WATCH_AFTER_S * 2.5)
    assert watch._requests[task][3] is not None  # watched ...
    assert task not in watch._unwatched  # ... and no longer the timer's business
    await asyncio.sleep(WATCH_AFTER_S * 1.5)
    assert watch._handle is None  # nothing left to look at: the timer is idle
    fresh = asyncio.ensure_future(_request(watch, _receiver(asyncio.Event()), 30))
    await asyncio.sleep(0)
    assert fresh in watch._unwatched and watch._handle is not None  # a new request wakes it
    await asyncio.sleep(WATCH_AFTER_S * 2.5)
    assert watch._requests[fresh][3] is not None
    task.cancel()
    fresh.cancel()
    assert await task == "cancelled from outside" and await fresh == "cancelled from outside"
    assert watch._requests == {} and watch._unwatched == {}
    watch.close()
