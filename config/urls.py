from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from apikeys.urls import admin_urlpatterns as apikeys_admin
from config.views import HealthView, NotFoundView, ReadyView, RedocView, SchemaView, SwaggerView, metrics_view

# The busiest routes first: Django tries the patterns in order on every request.
api_v1 = [
    path("", include("recommendations.urls")),
    path("", include("usage.urls")),
    path("", include("apikeys.urls")),
    path("", include("accounts.urls")),
]

api_admin = [
    path("", include("tenants.urls")),
    path("", include(apikeys_admin)),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("health", HealthView.as_view(), name="health"),
    path("ready", ReadyView.as_view(), name="ready"),
    path("metrics", metrics_view, name="metrics"),
    path("api/schema/", SchemaView.as_view(), name="schema"),
    path("docs", SwaggerView.as_view(url_name="schema"), name="docs"),
    path("redoc", RedocView.as_view(url_name="schema"), name="redoc"),
    path("api/admin/", include(api_admin)),
    path("admin", RedirectView.as_view(url="/admin/", permanent=True)),
    path("admin/", admin.site.urls),
    # Last: every other path is a 404 in the envelope, whatever DEBUG says.
    re_path(r"^.*$", NotFoundView.as_view(), name="not-found"),
]

handler400 = "config.exceptions.bad_request_view"
handler403 = "config.exceptions.permission_denied_view"
handler404 = "config.exceptions.not_found_view"
handler500 = "config.exceptions.server_error_view"
