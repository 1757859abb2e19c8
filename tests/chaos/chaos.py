"""The burst and the kills: the CRM's users assign every request at once and complete each one
once its job exists, while the workers are SIGKILLed (and replaced at once) at seeded points of
the burst. Everything is bounded by a time budget; running out of it fails with the state seen.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.chaos import invariants
from tests.chaos.processes import WorkerPool
from tests.chaos.world import Practice, assign_all, complete_linked

POLL_SECONDS = 0.2


@dataclass(frozen=True, slots=True, kw_only=True)
class Kill:
    number: int
    done: int  # tasks done when it fired
    second: float  # since the burst began
    victim: str
    in_flight: dict[int, int]  # tasks running just before it: id → attempts


@dataclass(slots=True, kw_only=True)
class Burst:
    kills: list[Kill] = field(default_factory=list)
    seconds: float = 0.0
    completed: int = 0  # requests the CRM's users completed


def kill_points(rng: random.Random, *, kills: int, low: int, high: int) -> list[int]:
    """`kills` numbers of completed tasks at which to kill: one drawn in each of `kills` equal
    slices of [low, high), so the kills are spread over the whole burst."""
    width = (high - low) / kills
    return [low + int(width * n) + rng.randrange(max(1, int(width))) for n in range(kills)]


def cut_off(kills: list[Kill], attempts: Mapping[int, int]) -> dict[int, list[int]]:
    """Per kill, the tasks it interrupted: running just before it, claimed again afterwards
    (`attempts`: each task's final count)."""
    return {
        kill.number: sorted(
            t for t, before in kill.in_flight.items() if attempts.get(t, before) > before
        )
        for kill in kills
    }


async def drive(
    *,
    syncd: AsyncEngine,
    crm: AsyncEngine,
    practices: list[Practice],
    pool: WorkerPool,
    rng: random.Random,
    points: list[int],
    total: int,
    budget: float,
    describe: str,
) -> Burst:
    """Run the burst to the end: every kill fired and all `total` tasks done."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    burst = Burst()
    pending = deque(sorted(points))
    await assign_all(crm, practices, rng)
    while True:
        pool.check_alive()
        seen = await invariants.progress(syncd)
        if seen.dead:
            rows = await invariants.tasks(syncd)
            dead = [f"{r.key}: {r.last_error}" for r in rows.values() if r.state == "dead"]
            raise AssertionError(f"{describe}: tasks died: {dead[:10]}\n{pool.logs()}")
        burst.completed += await complete_linked(crm)
        last = burst.kills[-1].done if burst.kills else -1
        if pending and seen.done >= pending[0] and seen.done > last:
            # The count must have moved since the last kill: with one worker, every kill then
            # hits a worker that has been doing work, not one still starting up.
            pending.popleft()
            in_flight = await invariants.running(syncd)
            victim = rng.choice(pool.live)
            await pool.replace(victim)
            burst.kills.append(
                Kill(
                    number=len(burst.kills) + 1,
                    done=seen.done,
                    second=round(loop.time() - began, 1),
                    victim=victim.name,
                    in_flight=in_flight,
                )
            )
        if not pending and seen.done == total:
            burst.seconds = loop.time() - began
            return burst
        if loop.time() - began > budget:
            raise AssertionError(
                f"{describe}: no convergence within {budget:.0f}s: tasks by state "
                f"{dict(seen.by_state)} of {total}; kills (tasks done, second): "
                f"{[(k.done, k.second) for k in burst.kills]}; "
                f"{burst.completed} requests completed\n{pool.logs()}"
            )
        await asyncio.sleep(POLL_SECONDS)
