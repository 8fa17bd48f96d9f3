from django.urls import path
from rest_framework.routers import SimpleRouter

from accounts import views

router = SimpleRouter(trailing_slash=False)
router.register("users", views.UserViewSet, basename="user")

urlpatterns = [
    path("auth/login", views.LoginView.as_view(), name="auth-login"),
    path("auth/refresh", views.RefreshView.as_view(), name="auth-refresh"),
    path("auth/logout", views.LogoutView.as_view(), name="auth-logout"),
    path("auth/logout-all", views.LogoutAllView.as_view(), name="auth-logout-all"),
    path("auth/me", views.MeView.as_view(), name="auth-me"),
    path("auth/password", views.PasswordChangeView.as_view(), name="auth-password"),
    path("auth/sessions", views.SessionListView.as_view(), name="auth-sessions"),
    path("auth/sessions/<uuid:session_id>", views.SessionDetailView.as_view(), name="auth-session"),
    *router.urls,
]
