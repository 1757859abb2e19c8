"""Per-key locks: one holder per key at a time, keys independent, nothing kept once unused."""

from __future__ import annotations

import asyncio

from syncd.locks import KeyedLocks


async def test_one_key_is_held_by_one_caller_at_a_time() -> None:
    """Five callers of one key, each yielding to the others while inside: never two inside."""
    locks: KeyedLocks[str] = KeyedLocks()
    inside: list[str] = []
    overlap = 0

    async def work(name: str) -> None:
        nonlocal overlap
        async with locks("client-1"):
            inside.append(name)
            overlap = max(overlap, len(inside))
            for _ in range(10):  # every other caller gets its turns meanwhile
                await asyncio.sleep(0)
            inside.remove(name)

    await asyncio.gather(*(work(f"job-{n}") for n in range(5)))
    assert overlap == 1
    assert inside == []


async def test_different_keys_do_not_wait_for_each_other() -> None:
    """Holding one key leaves another free."""
    locks: KeyedLocks[str] = KeyedLocks()
    async with locks("a"):
        assert not locks("b").locked()
        assert locks("a").locked()


async def test_a_lock_nobody_holds_is_not_kept() -> None:
    """A thousand keys used and released leave nothing behind."""
    locks: KeyedLocks[int] = KeyedLocks()
    for key in range(1000):
        async with locks(key):
            pass
    assert len(locks) == 0
