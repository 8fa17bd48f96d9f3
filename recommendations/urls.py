from rest_framework.routers import SimpleRouter

from recommendations import views

router = SimpleRouter(trailing_slash=False)
router.register("items", views.ItemViewSet, basename="item")
router.register("interactions", views.InteractionViewSet, basename="interaction")
router.register("recommendations", views.RecommendationViewSet, basename="recommendation")

urlpatterns = router.urls
