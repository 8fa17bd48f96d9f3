"""PostgreSQL as django-prometheus wraps it, with a health check that costs no round trip."""

import select

from django_prometheus.db.backends.postgresql import base
from psycopg.pq import TransactionStatus


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        """Django's check is a `SELECT 1`, one more round trip for every request that queries. Between
        queries the server sends nothing, unless it is closing the connection (a restart, a terminated
        backend): so a socket with something to read, or a connection psycopg already knows is bad, is
        not usable. After an error in a query, Django's own check still runs."""
        connection = self.connection
        if connection is None or connection.closed or connection.broken:
            return False
        if connection.info.transaction_status not in (TransactionStatus.IDLE, TransactionStatus.INTRANS):
            return False
        readable, _, _ = select.select([connection.fileno()], [], [], 0)
        if readable:
            return False
        return not self.errors_occurred or super().is_usable()
