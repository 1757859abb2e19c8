"""Mapping suggestions, pure: a CRM person beside the Xero records that are probably the same —
by email first, then by name — and the conflicts where two CRM people point at one record."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """A Xero record a CRM person may be mapped to (a contact, staff member or user)."""

    xero_id: str
    name: str
    email: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Suggestion:
    xero_id: str
    name: str
    reason: str  # "email" | "name"


def _email(value: str | None) -> str:
    return (value or "").strip().lower()


def _name(value: str | None) -> str:
    return " ".join((value or "").lower().split())


class SuggestionIndex:
    """Suggestions for many people against one candidate list, each lookup a dict access.

    `suggest` gives the one candidate with the same email, else the one with the same name;
    None when there is no such candidate or more than one (a person must choose)."""

    def __init__(self, candidates: Iterable[Candidate]) -> None:
        self._by_email: dict[str, list[Candidate]] = defaultdict(list)
        self._by_name: dict[str, list[Candidate]] = defaultdict(list)
        for candidate in candidates:
            if _email(candidate.email):
                self._by_email[_email(candidate.email)].append(candidate)
            self._by_name[_name(candidate.name)].append(candidate)

    def suggest(self, *, name: str, email: str | None) -> Suggestion | None:
        matches = self._by_email.get(_email(email), []) if _email(email) else []
        if len(matches) == 1:
            return Suggestion(xero_id=matches[0].xero_id, name=matches[0].name, reason="email")
        if len(matches) > 1:
            return None
        named = self._by_name.get(_name(name), [])
        if len(named) == 1:
            return Suggestion(xero_id=named[0].xero_id, name=named[0].name, reason="name")
        return None


def conflicts(mapped: Mapping[str, str]) -> dict[str, list[str]]:
    """Xero ids that more than one CRM person is mapped to, with those people (sorted)."""
    by_target: dict[str, list[str]] = defaultdict(list)
    for person, target in mapped.items():
        by_target[target].append(person)
    return {target: sorted(people) for target, people in by_target.items() if len(people) > 1}
