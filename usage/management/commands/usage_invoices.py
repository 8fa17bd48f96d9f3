from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from usage.services import invoices_generate


class Command(BaseCommand):
    help = "Makes (or remakes) every tenant's invoice for a month. Default: the previous month."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--month", help="YYYY-MM")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["month"]:
            try:
                month = datetime.strptime(options["month"], "%Y-%m").date()
            except ValueError as exc:
                raise CommandError("--month must look like 2026-10") from exc
        else:
            month = timezone.now().date().replace(day=1) - timedelta(days=1)
        try:
            count = invoices_generate(month=month)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"{month:%Y-%m}: {count} invoice(s) made")
