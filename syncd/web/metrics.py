"""`GET /metrics` in Prometheus' text format (docs/metrics.md): the counters of every process on
the host (multiprocess mode) or of this one, and the state gauges read from the database now.

Off unless SYNCD_METRICS_TOKEN is set: then it answers 404, as for a route that does not exist.
With the token set, the caller must send it as `Authorization: Bearer …` (compared in constant
time), else 401. A database that does not answer leaves the counters and says
`syncd_metrics_database_up 0` instead of the state gauges, so the scrape itself still works.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from prometheus_client import generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from syncd.logs import get_logger
from syncd.observability.instruments import collected
from syncd.observability.state import families, read_state
from syncd.web.auth import access, bearer_token
from syncd.web.context import services_of
from syncd.web.errors import ApiError

log = get_logger("syncd.web")

PATH = "/metrics"
# Text format 0.0.4: what every Prometheus version reads.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Scrape:
    """One scrape's metric families, in the shape generate_latest reads (a collector)."""

    def __init__(self, metrics: Iterable[Metric]) -> None:
        self.metrics = list(metrics)

    def collect(self) -> Iterable[Metric]:
        return self.metrics


# Checks its own token (none configured: 404, a route that is not there).
@access("metrics-token")
async def metrics(request: Request) -> Response:
    services = services_of(request)
    expected = services.settings.metrics_token
    if expected is None:
        raise HTTPException(404)
    given = bearer_token(request) or ""
    if not hmac.compare_digest(given.encode(), expected.reveal().encode()):
        error = ApiError(401, "metrics need `Authorization: Bearer` with SYNCD_METRICS_TOKEN")
        error.headers = {"WWW-Authenticate": 'Bearer realm="syncd-metrics"'}
        raise error
    now = services.clock.now()
    governor = services.xero.governor if services.xero is not None else None
    database = GaugeMetricFamily(
        "syncd_metrics_database_up",
        "1 when this scrape could read the state gauges from the database, else 0.",
    )
    state: list[Metric] = []
    try:
        async with services.db.transaction() as session:
            state = families(await read_state(session, now=now, governor=governor), now=now)
        database.add_metric([], 1)
    except (SQLAlchemyError, OSError) as exc:
        log.warning("metrics.database_unreachable", error=type(exc).__name__)
        database.add_metric([], 0)
    body = generate_latest(_Scrape([*collected(), database, *state]))
    return Response(body, media_type=CONTENT_TYPE)


routes = [Route(PATH, metrics, methods=["GET"])]
