from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants"

    def ready(self) -> None:
        from tenants.roles import support_group_ensure

        # After the last of our apps has its permissions created.
        post_migrate.connect(support_group_ensure, sender=apps.get_app_config("usage"))
