from typing import Any

import redis
from django.core.management.base import BaseCommand, CommandError, CommandParser

from usage.events import DEAD_LETTER_KEY, buffer_client
from usage.services import usage_dead_letters_requeue


class Command(BaseCommand):
    help = f"Shows the usage events set aside in {DEAD_LETTER_KEY}; --requeue puts them back on the buffer."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--requeue", action="store_true", help="once what refused them is put right")
        parser.add_argument("--show", type=int, default=10, help="how many to print (default 10)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            self._handle(options)
        except redis.RedisError as exc:
            raise CommandError(
                f"The usage buffer's Redis did not answer ({exc.__class__.__name__}: {exc})."
            ) from exc

    def _handle(self, options: dict[str, Any]) -> None:
        client = buffer_client()
        if client is None:
            self.stdout.write("No usage buffer (USAGE_BUFFER_REDIS_URL is empty): nothing is set aside.")
            return
        if options["requeue"]:
            self.stdout.write(
                f"{usage_dead_letters_requeue()} event(s) put back on the buffer; once flushed, roll up "
                "their days again (usage_rollup --day) if they are older than yesterday"
            )
            return
        self.stdout.write(f"{client.llen(DEAD_LETTER_KEY)} event(s) set aside")
        if options["show"] <= 0:
            return
        for item in client.lrange(DEAD_LETTER_KEY, 0, options["show"] - 1):
            self.stdout.write(item.decode(errors="replace") if isinstance(item, bytes) else str(item))
