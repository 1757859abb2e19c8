"""The worker: runs claimed outbox tasks and inbox events with bounded concurrency.

Scheduler ticks call `tick_outbox` / `tick_inbox`; each claims only what there is room for and
starts it in the background, so work flows continuously across ticks and a long task never
holds up the next claim. Per practice at most `per_company` tasks run at once (Xero allows 5
concurrent calls per tenant); claims take one task per practice at a time, round-robin, so a
practice with a backlog never starves another. Whatever the worker holds, of either queue, stays
leased (a heartbeat renews it) until it is settled; see syncd.pipeline.leases.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from syncd.clock import Clock
from syncd.domain.errors import PermanentError, SyncError, TransientError
from syncd.domain.ids import CompanyId
from syncd.logs import get_logger
from syncd.pipeline.inbound import InboundHandler
from syncd.pipeline.inbox import ClaimedEvent, Inbox
from syncd.pipeline.leases import Heartbeat
from syncd.pipeline.outbox import ClaimedTask, Outbox
from syncd.xero.audit import call_scope

log = get_logger("syncd.worker")


@dataclass(frozen=True, slots=True)
class TaskContext:
    task: ClaimedTask
    clock: Clock


TaskHandler = Callable[[TaskContext], Awaitable[dict[str, Any] | None]]


def worker_id() -> str:
    return f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"


class Worker:
    def __init__(
        self,
        *,
        outbox: Outbox,
        inbox: Inbox,
        inbound: InboundHandler | None,
        handlers: Mapping[str, TaskHandler],
        clock: Clock,
        on_dead: Callable[[ClaimedTask, str], Awaitable[None]] | None = None,
        spent: Callable[[], Collection[str]] | None = None,
        max_in_flight: int = 20,
        per_company: int = 5,
        inbox_batch: int = 50,
        heartbeat_seconds: float | None = None,
    ) -> None:
        self.outbox = outbox
        self.inbox = inbox
        self.inbound = inbound
        self.handlers = dict(handlers)
        self.clock = clock
        self.on_dead = on_dead
        # Practices with no Xero budget left this minute: not claimed for, so their waiting
        # does not fill the worker while other practices have work and budget.
        self.spent = spent
        self.max_in_flight = max_in_flight
        self.per_company = per_company
        self.inbox_batch = inbox_batch
        # How often (real seconds) a lease heartbeat looks at the clock; None: a second, or a
        # quarter of the lease if shorter (see syncd.pipeline.leases.Heartbeat).
        self.heartbeat_seconds = heartbeat_seconds
        self._running: dict[asyncio.Task[None], CompanyId] = {}
        self._claiming = asyncio.Lock()
        self._claim_again = False
        self._closing = False
        self._background: set[asyncio.Task[None]] = set()
        self._inbox_busy = asyncio.Lock()

    # -- outbox ------------------------------------------------------------------------------

    async def tick_outbox(self) -> int:
        """Claim and start as many due tasks as there is room for; returns how many started."""
        started = 0
        async with self._claiming:  # one claimer at a time, or two could both fill the room
            self._claim_again = True
            while self._claim_again:
                self._claim_again = False
                started += await self._fill()
        return started

    async def _fill(self) -> int:
        started = 0
        while self.handlers and not self._closing and len(self._running) < self.max_in_flight:
            busy = Counter(self._running.values())
            full = frozenset(c for c, n in busy.items() if n >= self.per_company)
            if self.spent is not None:
                full |= frozenset(CompanyId(c) for c in self.spent())
            claimed = await self.outbox.claim(
                now=self.clock.now(),
                limit=self.max_in_flight - len(self._running),
                per_company=1,
                skip_companies=full,
            )
            if not claimed:
                break
            for task in claimed:
                runner = asyncio.create_task(self._run(task), name=f"task-{task.id}")
                self._running[runner] = task.company
                runner.add_done_callback(self._finished)
                started += 1
        return started

    def _finished(self, runner: asyncio.Task[None]) -> None:
        """A slot came free: claim again now rather than at the next scheduler tick, so a
        backlog drains at the speed of Xero, not of the tick."""
        self._running.pop(runner, None)
        if self._closing:
            return
        if self._claiming.locked():
            self._claim_again = True  # the claim in progress loops once more
            return
        refill = asyncio.create_task(self._refill(), name="outbox-refill")
        self._background.add(refill)
        refill.add_done_callback(self._background.discard)

    async def _refill(self) -> None:
        try:
            await self.tick_outbox()
        except Exception:  # the scheduler's next tick tries again
            log.exception("outbox.refill_failed")

    async def _run(self, task: ClaimedTask) -> None:
        handler = self.handlers.get(task.kind)
        try:
            if handler is None:
                raise PermanentError(f"no handler for task kind {task.kind!r}")
            if self.outbox.exhausted(task):
                raise TransientError(
                    f"attempt {task.attempts} of {task.kind}: earlier attempts' workers stopped"
                    " before finishing (their leases expired)"
                )
            # Renewed while the handler runs, so a slow task (a big reconciliation, a wait for
            # the rate governor) is never claimed a second time by another worker.
            async with Heartbeat(
                self.outbox.leases, self.clock, [task], poll=self.heartbeat_seconds
            ):
                with call_scope(task_id=task.id) as scope:
                    result = await handler(TaskContext(task=task, clock=self.clock))
            outcome = dict(result or {})
            outcome.setdefault("xero_calls", scope.calls)
            if not await self.outbox.complete(task, now=self.clock.now(), result=outcome):
                log.warning("outbox.lease_lost", task=task.id, kind=task.kind)
                return
            log.info(
                "outbox.completed",
                task=task.id,
                kind=task.kind,
                company=task.company,
                attempts=task.attempts,
                xero_calls=scope.calls,
            )
        except Exception as exc:  # every failure is classified by the one retry policy
            if not isinstance(exc, SyncError):
                log.exception("outbox.task_crashed", task=task.id, kind=task.kind)
            state = await self.outbox.fail(task, exc, now=self.clock.now())
            if state == "dead" and self.on_dead is not None:
                await self.on_dead(task, f"{exc}")

    # -- inbox -------------------------------------------------------------------------------

    async def tick_inbox(self) -> int:
        """Claim a batch of inbound events and apply them; returns how many were claimed.

        Events of one practice run in order; practices run side by side. The whole batch stays
        leased (renewed) until each event is settled, so an event waiting behind a slow one (the
        rate governor holding its practice) is not taken over by another worker.
        """
        if self.inbound is None or self._inbox_busy.locked():
            return 0
        async with self._inbox_busy:
            now = self.clock.now()
            events = await self.inbox.claim(now=now, limit=self.inbox_batch)
            if not events:
                return 0
            by_tenant: dict[str, list[ClaimedEvent]] = {}
            for event in events:
                by_tenant.setdefault(event.tenant_id, []).append(event)
            async with Heartbeat(
                self.inbox.leases, self.clock, events, since=now, poll=self.heartbeat_seconds
            ) as held:
                # Every practice's events finish (or stay leased) before the heartbeat stops.
                outcomes = await asyncio.gather(
                    *(self._handle_all(batch, held) for batch in by_tenant.values()),
                    return_exceptions=True,
                )
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    raise outcome
            return len(events)

    async def _handle_all(self, events: list[ClaimedEvent], held: Heartbeat) -> None:
        for event in events:
            await self._handle(event, held)

    async def _handle(self, event: ClaimedEvent, held: Heartbeat) -> None:
        assert self.inbound is not None
        if held.lost(event):  # taken over while it waited its turn: the new holder applies it
            log.warning("inbox.lease_lost", inbox_event=event.id)
            return
        try:
            outcome = await self.inbound.handle(event)
        except Exception as exc:  # the one retry policy decides: failed, or tried again later
            if not isinstance(exc, SyncError):
                log.exception("inbound.crashed", inbox_event=event.id)
            held.release(event)
            await self.inbox.fail(event, exc, now=self.clock.now())
            return
        held.release(event)
        await self.inbox.settle(
            event,
            state=outcome.state,
            result=outcome.result,
            now=self.clock.now(),
            company=outcome.company,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return len(self._running)

    async def settle(self) -> None:
        """Until no task runs and no refill is under way, claiming nothing of its own: the
        running tasks finish and whatever they start in turn finishes too."""
        while busy := {*self._running, *self._background}:
            await asyncio.wait(busy)

    async def wait_idle(self, *, rounds: int = 1000) -> None:
        """Tick until nothing is due and nothing runs (tests, `syncd sync-job`, the demo)."""
        for _ in range(rounds):
            started = await self.tick_outbox()
            handled = await self.tick_inbox()
            if self._running:
                await asyncio.wait(set(self._running), return_when=asyncio.FIRST_COMPLETED)
                continue
            if not started and not handled:
                return
        raise RuntimeError("the worker did not become idle")

    async def close(self, *, grace: float = 20.0) -> None:
        """Let running tasks finish (bounded); unfinished ones are retried after their lease."""
        self._closing = True
        if self._background:
            await asyncio.wait(set(self._background), timeout=grace)
        if self._running:
            await asyncio.wait(set(self._running), timeout=grace)
