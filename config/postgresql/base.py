"""PostgreSQL as django-prometheus wraps it, with a connection check at every request's start that
costs no round trip, and prepared statements that survive a migration."""

import select
from collections.abc import Callable
from typing import Any

from django.db import NotSupportedError
from django_prometheus.db.backends.postgresql import base

STALE_PLAN = "cached plan must not change result type"


def _prepared_again_when_stale(
    execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]
) -> Any:
    """A statement a connection prepared fails once a migration has changed the type of a column it
    returns, and psycopg would send it again, failing, until the connection closes. Outside a
    transaction the connection's prepared statements are dropped (psycopg drops its own record on
    seeing DEALLOCATE ALL) and the query runs again; inside one, the rollback drops them."""
    try:
        return execute(sql, params, many, context)
    except NotSupportedError as exc:
        wrapper = context["connection"]
        if STALE_PLAN not in str(exc) or wrapper.in_atomic_block:
            raise
        wrapper.connection.execute("DEALLOCATE ALL")
        return execute(sql, params, many, context)


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.execute_wrappers.append(_prepared_again_when_stale)

    def close_if_unusable_or_obsolete(self) -> None:
        """Django's check at the start and end of each request (and Celery task), plus one of ours:
        a connection the server has closed (a restart, a terminated backend) is dropped here, before
        the request's first query, which may be inside a transaction where it could not be replaced.
        Between queries the server sends nothing unless it is closing the connection, so a socket
        with something to read is that case; asking it is a poll, not the `SELECT 1` of Django's
        CONN_HEALTH_CHECKS."""
        super().close_if_unusable_or_obsolete()
        if self.connection is None or self.in_atomic_block:
            return
        if self.connection.closed or self.connection.broken or self._server_has_spoken():
            self.close()

    def _server_has_spoken(self) -> bool:
        poller = select.poll()
        poller.register(self.connection.fileno(), select.POLLIN)
        return bool(poller.poll(0))
