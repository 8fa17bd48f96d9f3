"""Route patterns as API.md writes them: '/api/v1/items/{item_id}', never the raw path."""

import re
from functools import lru_cache

from django.http import HttpRequest

UNMATCHED = "<unmatched>"
_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)|<(?:\w+:)?(\w+)>")


def _name(match: re.Match) -> str:
    name = match.group(1) or match.group(2)
    return "{id}" if name == "pk" else "{" + name + "}"  # as the OpenAPI schema writes it


@lru_cache(maxsize=1024)
def _template(route: str) -> str:
    text = _GROUP.sub(_name, route)
    return "/" + text.replace("^", "").replace("$", "").replace("\\", "").lstrip("/")


def route_pattern(request: HttpRequest) -> str:
    """Kept on the request: the usage event and the access log both ask for it after the answer."""
    known = getattr(request, "route_pattern", None)
    if known is not None:
        return known
    match = getattr(request, "resolver_match", None)
    pattern = UNMATCHED if match is None or match.url_name == "not-found" else _template(match.route)
    request.route_pattern = pattern  # type: ignore[attr-defined]
    return pattern
