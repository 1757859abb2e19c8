"""Counters and histograms of what a process did: webhooks by outcome, outbox tasks settled,
Xero calls by endpoint and status, token refreshes. Kept in memory (one process's counts), or in
prometheus_client's multiprocess mode in SYNCD_METRICS_MULTIPROC_DIR, where every process on the
host writes its own file and a scrape of any one of them adds them all up.

A leaf module: it imports only prometheus_client, the endpoint templates and the settings' error,
so the hot paths (webhook ingress, XeroHttp, the outbox) can call it. Nothing is built at import:
the instruments come into being on first use, after `configure` chose where their values live.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Histogram, values
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

from syncd.observability.endpoints import endpoint_of
from syncd.settings import SettingsError

WebhookSource = Literal["xero", "crm"]
TaskOutcome = Literal["done", "retry", "parked", "dead", "lost"]
TokenOutcome = Literal["refreshed", "refreshed_with_previous", "invalid_grant", "failed"]

# From a task that runs at once (tenths of a second) to one that waited out its whole backoff
# (SYNCD_OUTBOX_MAX_ATTEMPTS attempts, up to about a day).
TASK_LATENCY_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0)
_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class Instruments:
    """The metric objects of one process, in their own registry (never the global one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.webhooks = Counter(
            "syncd_webhooks",
            "Webhook deliveries received, by source (xero, crm) and outcome.",
            ["source", "outcome"],
            registry=self.registry,
        )
        self.tasks = Counter(
            "syncd_outbox_tasks_settled",
            "Outbox task attempts settled, by task kind and outcome "
            "(done, retry, parked, dead, lost).",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.task_latency = Histogram(
            "syncd_outbox_task_latency_seconds",
            "Seconds from a task's enqueue to its final outcome (done or dead), by kind.",
            ["kind", "outcome"],
            buckets=TASK_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.xero_calls = Counter(
            "syncd_xero_calls",
            "Calls to Xero's APIs, by method, route template and HTTP status (error: no answer).",
            ["method", "endpoint", "status"],
            registry=self.registry,
        )
        self.token_refreshes = Counter(
            "syncd_xero_token_refreshes",
            "OAuth token refreshes, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        # Labelled children by label values: `labels()` validates and locks on every call, and
        # costs more than the increment itself on the webhook path.
        self._counters: dict[tuple[Counter, tuple[str, ...]], Counter] = {}

    def count(self, counter: Counter, *labels: str) -> None:
        key = (counter, labels)
        child = self._counters.get(key)
        if child is None:
            child = self._counters[key] = counter.labels(*labels)
        child.inc()


class _Mode:
    """Where this process's values live: None is memory, a path is the multiprocess directory."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.directory: Path | None = None
        self.instruments: Instruments | None = None


_mode = _Mode()


def configure(directory: Path | None) -> None:
    """Choose, once per process and before it counts anything, where its counts live: in memory
    (None) or as this process's file in `directory` (shared with the host's other processes).

    prometheus_client picks the value store when a metric's labelled child is first made, from a
    module-level choice and the PROMETHEUS_MULTIPROC_DIR variable; both are set here, from the
    one settings object, and fresh instruments are made so that none keeps the old store.
    """
    if directory is not None and not directory.is_dir():
        raise SettingsError(
            "SYNCD_METRICS_MULTIPROC_DIR",
            f"not a directory: {str(directory)!r} (create it, empty, before syncd starts)",
        )
    with _mode.lock:
        if _mode.instruments is not None and _mode.directory == directory:
            return
        if directory is None:
            values.ValueClass = values.MutexValue
            os.environ.pop(_MULTIPROC_ENV, None)
        else:
            os.environ[_MULTIPROC_ENV] = str(directory)
            identity = _process_identity()
            values.ValueClass = values.MultiProcessValue(identity)  # type: ignore[no-untyped-call]
        _mode.directory = directory
        _mode.instruments = Instruments()


def _process_identity() -> Callable[[], str]:
    """A name unique among processes sharing the directory: containers on one host (compose)
    each number their processes from 1, so the pid alone would make two of them share a file."""
    host = socket.gethostname().replace("_", "-")
    known = {os.getpid(): f"{host}-{os.getpid()}"}  # asked on every increment: formatted once

    def identify() -> str:
        pid = os.getpid()
        name = known.get(pid)
        if name is None:  # a fork: prometheus_client then opens the child's own file
            name = known[pid] = f"{host}-{pid}"
        return name

    return identify


def instruments() -> Instruments:
    current = _mode.instruments
    if current is None:
        configure(None)  # nothing configured: this process's own counts, in memory
        current = _mode.instruments
        assert current is not None
    return current


def collected() -> Iterable[Metric]:
    """The counters and histograms to expose: every process's on the host in multiprocess mode,
    else this process's."""
    current = instruments()
    directory = _mode.directory
    if directory is not None:
        files = MultiProcessCollector(None, path=str(directory))  # type: ignore[no-untyped-call]
        merged: Iterable[Metric] = files.collect()  # type: ignore[no-untyped-call]
        return merged
    return current.registry.collect()


# -- recording (one call per instrumented site) ----------------------------------------------


def record_webhook(source: WebhookSource, outcome: str) -> None:
    current = instruments()
    current.count(current.webhooks, source, outcome)


def record_xero_call(method: str, path: str, status: int | None) -> None:
    current = instruments()
    label = "error" if status is None else str(status)
    current.count(current.xero_calls, method, endpoint_of(path), label)


def record_token_refresh(outcome: TokenOutcome) -> None:
    current = instruments()
    current.count(current.token_refreshes, outcome)


def record_task(
    kind: str, outcome: TaskOutcome, *, enqueued_at: datetime | None, now: datetime
) -> None:
    """A task attempt settled; a final one (done, dead) also gives its latency from enqueue."""
    current = instruments()
    current.count(current.tasks, kind, outcome)
    if outcome in ("done", "dead") and enqueued_at is not None:
        seconds = max(0.0, (now - enqueued_at).total_seconds())
        current.task_latency.labels(kind, outcome).observe(seconds)
