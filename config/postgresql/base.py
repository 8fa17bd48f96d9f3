"""PostgreSQL as django-prometheus wraps it, with a connection check at every request's start that
costs no round trip."""

import select

from django_prometheus.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
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
