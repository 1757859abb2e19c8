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
import contextlib
import socket
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
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

# After the grace period, how long (real seconds) cancelled work gets to unwind before its claims
# are handed back regardless (the hand-back is owner-checked, so a late settle is harmless).
CANCEL_SECONDS = 2.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Drained:
    """What a stopping worker did with the work it held: `finished` tasks and events ended
    during the grace period; `handed_back` were released for another worker to claim at once."""

    finished: int
    handed_back: int
    seconds: float


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
        # What is claimed and not yet settled, to hand back if the worker stops first.
        self._claims: dict[asyncio.Task[None], ClaimedTask] = {}
        self._events: dict[int, ClaimedEvent] = {}
        self._inbox_batch: asyncio.Task[list[BaseException | None]] | None = None
        self._finished_draining = 0
        self._drained: Drained | None = None

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
                self._claims[runner] = task
                runner.add_done_callback(self._finished)
                started += 1
        return started

    def _finished(self, runner: asyncio.Task[None]) -> None:
        """A slot came free: claim again now rather than at the next scheduler tick, so a
        backlog drains at the speed of Xero, not of the tick."""
        self._running.pop(runner, None)
        self._claims.pop(runner, None)
        if self._closing:
            if not runner.cancelled():
                self._finished_draining += 1
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
        if self.inbound is None or self._closing or self._inbox_busy.locked():
            return 0
        async with self._inbox_busy:
            now = self.clock.now()
            events = await self.inbox.claim(now=now, limit=self.inbox_batch)
            if not events:
                return 0
            self._events.update((event.id, event) for event in events)
            by_tenant: dict[str, list[ClaimedEvent]] = {}
            for event in events:
                by_tenant.setdefault(event.tenant_id, []).append(event)
            async with Heartbeat(
                self.inbox.leases, self.clock, events, since=now, poll=self.heartbeat_seconds
            ) as held:
                # Every practice's events finish (or stay leased) before the heartbeat stops.
                # The batch is the worker's own task, so a drain past its grace period can
                # cancel it without cancelling the scheduler job that called this.
                batch = asyncio.create_task(
                    self._handle_practices(by_tenant.values(), held), name="inbox-batch"
                )
                self._inbox_batch = batch
                await asyncio.wait({batch})
            if batch.cancelled():  # stopped by a drain, which hands the events back
                return len(events)
            for outcome in batch.result():
                if isinstance(outcome, BaseException):
                    raise outcome
            return len(events)

    async def _handle_practices(
        self, practices: Iterable[list[ClaimedEvent]], held: Heartbeat
    ) -> list[BaseException | None]:
        return await asyncio.gather(
            *(self._handle_all(events, held) for events in practices), return_exceptions=True
        )

    async def _handle_all(self, events: list[ClaimedEvent], held: Heartbeat) -> None:
        for event in events:
            await self._handle(event, held)

    async def _handle(self, event: ClaimedEvent, held: Heartbeat) -> None:
        assert self.inbound is not None
        if self._closing:  # stopping: not started, so handed back (in order) for another worker
            return
        if held.lost(event):  # taken over while it waited its turn: the new holder applies it
            log.warning("inbox.lease_lost", inbox_event=event.id)
            self._events.pop(event.id, None)
            return
        try:
            outcome = await self.inbound.handle(event)
        except Exception as exc:  # the one retry policy decides: failed, or tried again later
            if not isinstance(exc, SyncError):
                log.exception("inbound.crashed", inbox_event=event.id)
            held.release(event)
            await self.inbox.fail(event, exc, now=self.clock.now())
        else:
            held.release(event)
            await self.inbox.settle(
                event,
                state=outcome.state,
                result=outcome.result,
                now=self.clock.now(),
                company=outcome.company,
            )
        self._events.pop(event.id, None)
        if self.stopping:  # (it may have begun while the event was handled)
            self._finished_draining += 1

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return len(self._running)

    @property
    def stopping(self) -> bool:
        """True once a drain (or close) began: nothing more is claimed."""
        return self._closing

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
            # A refill under way (a slot came free while this tick ran) may be about to start
            # the next task: idle means no refill either.
            if busy := {*self._running, *self._background}:
                await asyncio.wait(busy, return_when=asyncio.FIRST_COMPLETED)
                continue
            if not started and not handled:
                return
        raise RuntimeError("the worker did not become idle")

    async def close(self, *, grace: float = 20.0) -> None:
        """Stop as `drain` does (once; closing again does nothing)."""
        await self.drain(grace=grace)

    async def drain(self, *, grace: float) -> Drained:
        """Stop claiming at once; let the tasks and events in progress finish for up to `grace`
        real seconds (events claimed but not started are not started); then cancel what still
        runs and hand every unsettled claim back, due now, so another worker takes it over at
        once instead of after its lease (docs/scale-out.md)."""
        if self._drained is not None:
            return self._drained
        self._closing = True
        loop = asyncio.get_running_loop()
        began = loop.time()
        deadline = began + grace
        while (busy := self._busy()) and (left := deadline - loop.time()) > 0:
            await asyncio.wait(busy, timeout=left, return_when=asyncio.FIRST_COMPLETED)
        tasks = list(self._claims.values())
        if busy := self._busy():
            for work in busy:
                work.cancel()
            await asyncio.wait(busy, timeout=CANCEL_SECONDS)
        # An inbox claim that was under way when the drain began has ended (its events, not
        # started, are among those to hand back).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CANCEL_SECONDS), self._inbox_busy:
                pass
        handed_back = await self._hand_back(tasks, list(self._events.values()))
        self._events.clear()
        self._drained = Drained(
            finished=self._finished_draining,
            handed_back=handed_back,
            seconds=round(loop.time() - began, 3),
        )
        return self._drained

    def _busy(self) -> set[asyncio.Task[Any]]:
        busy: set[asyncio.Task[Any]] = {*self._running, *self._background}
        if self._inbox_batch is not None and not self._inbox_batch.done():
            busy.add(self._inbox_batch)
        return busy

    async def _hand_back(self, tasks: list[ClaimedTask], events: list[ClaimedEvent]) -> int:
        """Release the claims (owner-checked: what was settled meanwhile stays as it is)."""
        now = self.clock.now()
        handed = 0
        for leases, claims in ((self.outbox.leases, tasks), (self.inbox.leases, events)):
            if not claims:
                continue
            try:
                async with leases.db.transaction() as session:
                    ids = await leases.hand_back(session, claims, now=now)
            except Exception:  # the leases expire instead; another worker takes over then
                log.exception("worker.hand_back_failed", queue=leases.queue.name)
                continue
            handed += len(ids)
            if ids:
                log.info("worker.handed_back", queue=leases.queue.name, ids=sorted(ids))
        return handed
