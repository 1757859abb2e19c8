"""The poller's listing, reused by reconciliation only while it can still be believed."""

from __future__ import annotations

from datetime import timedelta

from syncd.domain.ids import CompanyId
from syncd.pipeline.poller import JobCache, Observation
from syncd.xero.jobs import Job
from tests.fakes import InstantClock

A = CompanyId("company-a")
JOB = Job(job_id="p1", number="PRJ-P1", client_id="c1", name="n", state="INPROGRESS")
SEEN = Observation(jobs={JOB.job_id: JOB})


def test_a_listing_is_reused_while_fresh_and_nothing_changed_since() -> None:
    """Within two minutes and with no link changed since it was asked for, the listing holds."""
    clock = InstantClock()
    cache = JobCache(clock)
    asked = clock.now()
    clock.advance(5)
    cache.store(A, SEEN, asked_at=asked)
    before = asked - timedelta(seconds=1)
    assert cache.fresh(A, links_changed_at=before) == SEEN
    assert cache.fresh(A, links_changed_at=None) == SEEN
    assert cache.fresh(CompanyId("company-b"), links_changed_at=None) is None
    clock.advance(120)
    assert cache.fresh(A, links_changed_at=before) is None


def test_a_link_changed_after_the_listing_was_asked_for_makes_it_stale() -> None:
    """syncd wrote to Xero (or took in an event) while the listing was on its way: the
    listing may show the job as it was before, so it is fetched again."""
    clock = InstantClock()
    cache = JobCache(clock)
    asked = clock.now()
    cache.store(A, SEEN, asked_at=asked)
    assert cache.fresh(A, links_changed_at=asked) is None
    assert cache.fresh(A, links_changed_at=asked + timedelta(milliseconds=1)) is None
