from typing import Any

from django.conf import settings
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email

from accounts.models import User

DEV_EMAIL = "admin@example.com"
# Development default, refused when DEBUG is off.
DEV_PASSWORD = "dev-admin-password-change-me"  # nosec B105


class Command(BaseCommand):
    help = (
        "Creates the staff superuser from FIRST_SUPERUSER_EMAIL / FIRST_SUPERUSER_PASSWORD if it is missing."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        email = settings.FIRST_SUPERUSER_EMAIL or DEV_EMAIL
        try:
            validate_email(email)
        except ValidationError as exc:
            raise CommandError(f"FIRST_SUPERUSER_EMAIL is not an email address: {email!r}") from exc
        if User.objects.filter(email=email.lower()).exists():
            # Nothing is created, so nothing is checked: a deployment that starts again is not stopped.
            self.stdout.write(f"Staff superuser {email} already exists; left as it is.")
            return
        password = settings.FIRST_SUPERUSER_PASSWORD
        development_default = not password
        if development_default:
            if not settings.DEBUG:
                raise CommandError(
                    "Set FIRST_SUPERUSER_PASSWORD: the development default is refused when DEBUG is off."
                )
            password = DEV_PASSWORD
        else:
            try:
                password_validation.validate_password(password, User(email=email))
            except ValidationError as exc:
                raise CommandError("FIRST_SUPERUSER_PASSWORD is refused: " + " ".join(exc.messages)) from exc
        User.objects.create_superuser(email=email, password=password)
        if development_default:
            self.stdout.write(
                self.style.WARNING(
                    f"Created the staff superuser with the development default: {email} / {password}\n"
                    "Set FIRST_SUPERUSER_EMAIL and FIRST_SUPERUSER_PASSWORD outside local development."
                )
            )
        else:
            self.stdout.write(self.style.SUCCESS(f"Created the staff superuser {email}."))
