from datetime import date, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from usage.services import usage_rollup


class Command(BaseCommand):
    help = "Rolls raw usage up into daily usage (idempotent). Default: yesterday and today."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--day", type=date.fromisoformat, action="append", help="A UTC day, YYYY-MM-DD (repeatable)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        today = timezone.now().date()
        for day in options["day"] or [today - timedelta(days=1), today]:
            if day > today:
                raise CommandError(f"{day} has not begun: nothing to roll up.")
            rows = usage_rollup(day=day)
            self.stdout.write(f"{day}: {rows} rollup row(s)")
