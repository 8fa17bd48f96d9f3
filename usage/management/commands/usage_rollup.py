from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from usage.services import usage_rollup, usage_rollup_due


class Command(BaseCommand):
    help = (
        "Rolls raw usage up into daily usage (idempotent). Default: what the hourly job rolls up, yesterday "
        "and today and any earlier day never rolled up after it ended."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--day", type=date.fromisoformat, action="append", help="A UTC day, YYYY-MM-DD (repeatable)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        today = timezone.now().date()
        for day in options["day"] or usage_rollup_due(today=today):
            if day > today:
                raise CommandError(f"{day} has not begun: nothing to roll up.")
            rows = usage_rollup(day=day)
            self.stdout.write(f"{day}: {rows} rollup row(s)")
