from rest_framework.routers import SimpleRouter

from apikeys import views

router = SimpleRouter(trailing_slash=False)
router.register("api-keys", views.ApiKeyViewSet, basename="api-key")

admin_router = SimpleRouter(trailing_slash=False)
admin_router.register("api-keys", views.ApiKeyAdminViewSet, basename="admin-api-key")

urlpatterns = router.urls
admin_urlpatterns = admin_router.urls
