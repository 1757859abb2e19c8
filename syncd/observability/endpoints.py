"""Xero call paths as route templates (`projects.xro/2.0/Projects/{id}`), so a metric label never
carries an id: its values are bounded by the endpoints syncd's code calls. Pure; imports nothing.
"""

from __future__ import annotations

import re

OTHER = "other"

# Xero's REST APIs (Projects, Accounting): /{api}.xro/{version}/Collection/{id}/Collection/{id}…
_REST = re.compile(r"^(?P<api>[a-z]+\.xro)/(?P<version>\d+\.\d+)(?P<rest>(?:/[^/]+)*)$")
# Practice Manager: /practicemanager/{version}/{resource}.api/{verb}/{argument}…
_XPM = re.compile(
    r"^(?P<base>practicemanager/\d+\.\d+)/(?P<resource>[a-z]+\.api)/(?P<verb>[a-z]+)"
    r"(?P<rest>(?:/[^/]+)*)$"
)
_NAME = re.compile(r"^[A-Za-z]+$")
# The arguments Practice Manager takes by something other than a UUID.
_XPM_ARGUMENT = {("job.api", "get"): "{number}"}


def endpoint_of(path: str) -> str:
    """The route template of a Xero API path (query string ignored); "other" for a path of no
    known shape, so that even an unexpected caller cannot grow the label set."""
    path = path.split("?", 1)[0].strip("/")
    rest = _REST.match(path)
    if rest is not None:
        segments = [s for s in rest["rest"].split("/") if s]
        # Collections at even positions are names from syncd's code; odd positions are ids.
        if not all(_NAME.match(s) for s in segments[::2]):
            return OTHER
        templated = [s if i % 2 == 0 else "{id}" for i, s in enumerate(segments)]
        return "/".join([rest["api"], rest["version"], *templated])
    xpm = _XPM.match(path)
    if xpm is not None:
        arguments = [s for s in xpm["rest"].split("/") if s]
        placeholder = _XPM_ARGUMENT.get((xpm["resource"], xpm["verb"]), "{id}")
        return "/".join(
            [xpm["base"], xpm["resource"], xpm["verb"], *(placeholder for _ in arguments)]
        )
    return OTHER
