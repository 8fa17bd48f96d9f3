"""Invalidations that must also catch what was read while the change was not yet committed."""

from collections.abc import Callable

from django.db import connection, transaction


def now_and_after_commit(action: Callable[[], object]) -> None:
    """Runs `action` now and, inside a transaction, again once it has committed: whatever another
    process read between the two (still the old rows) is dropped by the second."""
    action()
    if connection.in_atomic_block:
        transaction.on_commit(action)
