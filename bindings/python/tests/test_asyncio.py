"""The asyncio API: several candidates in one event loop, async observe, timeouts
and cancellation."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
from typing import Optional

import pytest

import ballot
from helpers import backend_of, ttl_for


async def aconnect(url: str) -> ballot.Client:
    return await ballot.connect_async(url, ttl=ttl_for(url), connect_timeout=10)


@pytest.mark.asyncio
async def test_several_candidates_in_one_loop(backend: str, name: str) -> None:
    client = await aconnect(backend)
    try:
        elections = [client.election(name) for _ in range(3)]
        watcher = client.election(name)
        seen: list[Optional[ballot.Leader]] = []

        async def watch() -> None:
            async for leader in watcher.observe_async():
                seen.append(leader)

        watch_task = asyncio.ensure_future(watch())
        order: list[tuple[int, int]] = []
        loop_ran = 0

        async def candidate(i: int) -> None:
            e = elections[i]
            lead = await e.campaign_async(f"cand-{i}", timeout=60)
            order.append((i, lead.term))
            assert e.state == "leader"
            got = await e.leader_async()
            assert got is not None and got.value == f"cand-{i}".encode()
            await asyncio.sleep(0.1)
            await e.resign_async()

        async def ticker() -> None:
            nonlocal loop_ran
            while len(order) < 3:
                loop_ran += 1
                await asyncio.sleep(0.01)

        await asyncio.wait_for(asyncio.gather(*(candidate(i) for i in range(3)), ticker()), 60)
        assert sorted(i for i, _ in order) == [0, 1, 2], "each candidate leads once"
        terms = [t for _, t in order]
        assert terms == sorted(terms) and len(set(terms)) == 3, order
        assert loop_ran > 5, "the event loop was blocked while candidates waited"
        for _ in range(100):
            if any(x is not None and x.term == terms[-1] for x in seen):
                break
            await asyncio.sleep(0.05)
        observed = [x.term for x in seen if x is not None]
        assert observed == sorted(observed) and observed[-1] == terms[-1], seen
        await watcher.end_async()
        await asyncio.wait_for(watch_task, 10)  # the async iterator stops at end()
    finally:
        await client.close_async()


@pytest.mark.asyncio
async def test_cancelling_campaign_async_withdraws(backend: str, name: str) -> None:
    client = await aconnect(backend)
    try:
        holder, waiter = client.election(name), client.election(name)
        await holder.campaign_async(b"holder")
        task = asyncio.ensure_future(waiter.campaign_async(b"waiter"))
        for _ in range(200):
            if waiter.state == "campaigning":
                break
            await asyncio.sleep(0.01)
        assert waiter.state == "campaigning"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(200):
            if waiter.state == "idle":
                break
            await asyncio.sleep(0.01)
        assert waiter.state == "idle"
        await holder.resign_async()
        # The cancelled candidate left no entry: the holder wins again at once.
        await holder.campaign_async(b"again", timeout=backend_of(backend).live)
        got = await holder.leader_async()
        assert got is not None and got.value == b"again", "the cancelled candidate left an entry"
    finally:
        await client.close_async()


async def assert_no_leader_left(client: ballot.Client, backend: str, name: str, e: ballot.Election) -> None:
    """A rival wins at once: the cancelled candidate `e` left no leader behind."""
    rival = client.election(name)
    try:
        await rival.campaign_async(b"rival", timeout=ttl_for(backend) + 5)
    except ballot.TimeoutError:
        leader = await rival.leader_async()
        pytest.fail(f"the cancelled campaign still leads: {leader}, state {e.state}")
    assert e.state == "idle", e.state
    await rival.resign_async()


@pytest.mark.asyncio
async def test_campaign_async_result_thrown_away_by_cancel_resigns(backend: str, name: str) -> None:
    # What a Task does when cancel() comes after the win reached the future but
    # before the task resumed: it throws CancelledError into the coroutine instead
    # of handing it the result. Driven by hand here, so the order is certain.
    client = await aconnect(backend)
    try:
        e = client.election(name)
        it = e.campaign_async(b"cancelled").__await__()
        fut = next(it)  # the asyncio future the awaiting task would wait on
        for _ in range(1000):
            if fut.done():
                break
            await asyncio.sleep(0.01)
        assert fut.done() and not fut.cancelled() and fut.exception() is None
        with pytest.raises(asyncio.CancelledError):
            it.throw(asyncio.CancelledError())
        await assert_no_leader_left(client, backend, name, e)
    finally:
        await client.close_async()


@pytest.mark.asyncio
async def test_campaign_async_cancelled_before_the_win_is_delivered_resigns(backend: str, name: str) -> None:
    # The cancel reaches the future after the win on the Rust side but before the
    # result reached the event loop, which is held up here until the win, so the
    # bridge finds its future cancelled when it delivers.
    client = await aconnect(backend)
    try:
        e = client.election(name)
        it = e.campaign_async(b"cancelled").__await__()
        fut = next(it)
        deadline = time.monotonic() + 30
        while e.state != "leader" and time.monotonic() < deadline:
            time.sleep(0.001)  # blocks the event loop on purpose
        assert e.state == "leader" and not fut.done()
        fut.cancel()
        with pytest.raises(asyncio.CancelledError):
            it.throw(asyncio.CancelledError())
        await assert_no_leader_left(client, backend, name, e)
    finally:
        await client.close_async()


# Attempts per run: which of the two crossings (the cancel reaching the bridge
# before or after it hands the win over) an attempt hits is up to the threads.
CANCEL_AT_WIN_ATTEMPTS = 30


@pytest.mark.asyncio
@pytest.mark.parametrize("when", ["with_the_win", "after_the_win"])
async def test_campaign_async_cancelled_as_it_wins_resigns(backend: str, name: str, when: str) -> None:
    # The task is cancelled from the 'elected' event, so the cancel crosses the win:
    # "with_the_win" cancels as soon as the loop hears of it (mostly before the
    # result reaches the loop), "after_the_win" queues the cancel behind whatever
    # the loop has queued by then (mostly after the result reached the future but
    # before the task resumed). Either way the win is never seen by the caller, so
    # the candidate must resign: a rival then wins at once.
    client = await aconnect(backend)
    loop = asyncio.get_running_loop()
    outcomes = {"cancelled": 0, "won": 0}
    try:
        for i in range(CANCEL_AT_WIN_ATTEMPTS):
            e = client.election(f"{name}/{i}")
            task: Optional[asyncio.Task[ballot.Leadership]] = None

            def cancel() -> None:
                assert task is not None
                if when == "with_the_win":
                    task.cancel()
                else:
                    loop.call_soon(task.cancel)

            def on_event(ev: ballot.Event) -> None:
                if ev.kind == "elected":
                    loop.call_soon_threadsafe(cancel)

            sub = e.on_event(on_event)

            async def campaign(e: ballot.Election = e) -> ballot.Leadership:
                return await e.campaign_async(b"cancelled")

            task = loop.create_task(campaign())
            try:
                await task
                # The win reached the caller before the cancel did: it leads, as asked.
                outcomes["won"] += 1
                await e.resign_async()
            except asyncio.CancelledError:
                outcomes["cancelled"] += 1
            sub.cancel()
            await assert_no_leader_left(client, backend, f"{name}/{i}", e)
        assert outcomes["cancelled"] > 0, f"no cancel crossed a win: {outcomes}"
    finally:
        await client.close_async()


@pytest.mark.asyncio
async def test_async_errors(backend: str, name: str) -> None:
    client = await aconnect(backend)
    try:
        holder, other = client.election(name), client.election(name)
        await holder.campaign_async(b"holder")
        with pytest.raises(ballot.TimeoutError):
            await other.campaign_async(b"other", timeout=0.3)
        with pytest.raises(ballot.NotLeaderError):
            await other.proclaim_async(b"x")
        with pytest.raises(ballot.InvalidArgumentError):
            await other.campaign_async(b"")
        with pytest.raises(ballot.InvalidArgumentError):
            other.campaign_async(3.5)  # type: ignore[arg-type]
        await holder.proclaim_async("v2")
        got = await other.leader_async()
        assert got is not None and got.value == b"v2"
    finally:
        await client.close_async()
    with pytest.raises(ballot.InvalidArgumentError):
        await ballot.connect_async("bogus://x")


@pytest.mark.asyncio
async def test_leadership_async_context_manager(backend: str, name: str) -> None:
    client = await aconnect(backend)
    try:
        e = client.election(name)
        async with e.leadership_async("me", timeout=30) as lead:
            assert e.state == "leader" and lead.value == b"me"
        assert e.state == "idle"
        with pytest.raises(RuntimeError, match="inside"):
            async with e.leadership_async(b"me"):
                raise RuntimeError("inside")
        assert e.state == "idle" and await e.leader_async() is None
    finally:
        await client.close_async()


EXIT_CHILD = textwrap.dedent(
    """
    import asyncio, sys, ballot
    async def main():
        c = await ballot.connect_async(sys.argv[1], ttl=float(sys.argv[2]))
        e = c.election(sys.argv[3])
        await e.campaign_async(b"x")
        await e.resign_async()
        await c.close_async()
    asyncio.run(main())
    print("exiting", flush=True)
    """
)


def test_interpreter_exits_cleanly_after_asyncio(backend: str, name: str) -> None:
    # The last result reaches the loop while the bridge thread is still inside the
    # call that delivered it; exit must not tear the interpreter down under it.
    for i in range(8):
        r = subprocess.run(
            [sys.executable, "-c", EXIT_CHILD, backend, str(ttl_for(backend)), f"{name}-{i}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0 and r.stdout.strip() == "exiting", (r.returncode, r.stdout, r.stderr)


@pytest.mark.asyncio
async def test_participants_async(backend: str, name: str) -> None:
    client = await aconnect(backend)
    try:
        e, reader = client.election(name), client.election(name)
        assert await reader.participants_async() == []
        lead = await e.campaign_async(b"\x00\xff")
        got = await reader.participants_async()
        assert got == [ballot.Participant(lead.key, b"\x00\xff", True)]
    finally:
        await client.close_async()
    with pytest.raises(ballot.ClosedError):
        await reader.participants_async()
