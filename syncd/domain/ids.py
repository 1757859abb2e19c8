"""Identifier types shared by every layer (NewType: free at run time, checked by mypy)."""

from __future__ import annotations

import uuid
from typing import NewType

CompanyId = NewType("CompanyId", str)
UserId = NewType("UserId", str)
RequestId = NewType("RequestId", str)
TenantId = NewType("TenantId", str)


def new_id() -> str:
    return str(uuid.uuid4())
