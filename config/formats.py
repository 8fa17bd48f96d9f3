"""Output formats of API.md that hot paths build by hand."""

from datetime import UTC, datetime


def iso_z(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, as DRF renders datetimes."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
