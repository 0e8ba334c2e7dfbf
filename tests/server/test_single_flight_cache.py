"""The live-version cache loads a missing entry once, however many requests miss together."""

import asyncio

import pytest

from service.serving.ttl_cache import SingleFlightCache


def _counting_loader(value="v", delay=0.02, error: Exception | None = None):
    calls = []

    async def load():
        calls.append(1)
        await asyncio.sleep(delay)
        if error is not None:
            raise error
        return value

    return load, calls


def test_concurrent_misses_share_one_load_and_the_answer_is_cached():
    cache, (load, calls) = SingleFlightCache(60.0), _counting_loader("live 2")

    async def go():
        answers = await asyncio.gather(*[cache.fetch("digits", load) for _ in range(32)])
        again = await cache.fetch("digits", load)
        return answers, again

    answers, again = asyncio.run(go())
    assert answers == ["live 2"] * 32 and again == "live 2"
    assert len(calls) == 1


def test_an_error_reaches_every_waiter_and_is_not_cached():
    cache = SingleFlightCache(60.0)
    failing, failed = _counting_loader(error=LookupError("model 'x' not found"))
    working, worked = _counting_loader("ok")

    async def go():
        results = await asyncio.gather(
            *[cache.fetch("x", failing) for _ in range(5)], return_exceptions=True
        )
        return results, await cache.fetch("x", working)

    results, after = asyncio.run(go())
    assert all(isinstance(r, LookupError) for r in results) and len(failed) == 1
    assert after == "ok" and len(worked) == 1


def test_a_forget_during_a_load_keeps_its_stale_answer_out_of_the_cache():
    """A promotion in this process while a lookup that began before it is still running."""
    cache = SingleFlightCache(60.0)
    stale, _ = _counting_loader("live 1", delay=0.05)
    fresh, fresh_calls = _counting_loader("live 2", delay=0.0)

    async def go():
        lookup = asyncio.create_task(cache.fetch("digits", stale))
        await asyncio.sleep(0.01)
        cache.forget("digits")  # the promotion commits here
        assert await lookup == "live 1"  # the request that asked before it gets its answer
        return await cache.fetch("digits", fresh)

    assert asyncio.run(go()) == "live 2" and len(fresh_calls) == 1


@pytest.mark.parametrize("ttl", [0.0, -1.0])
def test_a_cache_time_of_zero_loads_every_time(ttl):
    cache, (load, calls) = SingleFlightCache(ttl), _counting_loader(delay=0.0)

    async def go():
        for _ in range(3):
            await cache.fetch("digits", load)

    asyncio.run(go())
    assert len(calls) == 3


def test_a_caller_that_goes_away_does_not_cancel_the_load_the_others_wait_for():
    cache, (load, calls) = SingleFlightCache(60.0), _counting_loader("live 2", delay=0.05)

    async def go():
        first = asyncio.create_task(cache.fetch("digits", load))
        await asyncio.sleep(0.01)  # the first caller's load is running
        second = asyncio.create_task(cache.fetch("digits", load))
        await asyncio.sleep(0.01)
        first.cancel()  # its client disconnected
        with pytest.raises(asyncio.CancelledError):
            await first
        return await second

    assert asyncio.run(go()) == "live 2" and len(calls) == 1
