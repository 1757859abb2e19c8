"""syncd's own small error tree. Adapters translate their failures into it once; callers decide
by class, never by status code:

    SyncError
    ├── TransientError      retry later (after `retry_after` seconds when the other side said so)
    │   └── RateLimited     the other side's rate limit (429); `problem` names which limit
    ├── PermanentError      retrying cannot help: dead-letter the task
    │   └── NotFound        the resource does not exist (any more)
    └── NeedsReconnect      the connection's authorisation is gone; an admin must reconnect
"""

from __future__ import annotations


class SyncError(Exception):
    """Base of every error syncd's adapters raise."""


class TransientError(SyncError):
    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimited(TransientError):
    def __init__(self, message: str, *, retry_after: float | None, problem: str | None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.problem = problem


class PermanentError(SyncError):
    """The request itself is wrong or refused; the same request will fail again."""


class NotFound(PermanentError):
    """The resource asked for does not exist."""


class NeedsReconnect(SyncError):
    """The grant is revoked or expired for good; tasks wait until an admin reconnects."""
