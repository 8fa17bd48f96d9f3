from rest_framework.routers import SimpleRouter

from usage import views

router = SimpleRouter(trailing_slash=False)
router.register("usage", views.UsageViewSet, basename="usage")

urlpatterns = router.urls
