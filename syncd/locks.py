"""Per-key asyncio locks, for work that must not run twice at once in one process.

A key's lock lives only while someone holds it or waits for it (the holders' references keep it
alive), so keys that come and go (idempotency slots, clients) do not pile up. Imports nothing
from syncd.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class KeyedLocks(Generic[K]):
    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[K, asyncio.Lock] = weakref.WeakValueDictionary()

    def __call__(self, key: K) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        return lock

    def __len__(self) -> int:
        """How many keys have a lock someone holds or waits for."""
        return len(self._locks)
