from rest_framework.routers import SimpleRouter

from tenants import views

router = SimpleRouter(trailing_slash=False)
router.register("tenants", views.TenantAdminViewSet, basename="admin-tenant")

urlpatterns = router.urls
