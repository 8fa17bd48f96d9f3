import logging
import uuid
from typing import Any

from django.contrib.auth import authenticate
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, mixins, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import services
from accounts.models import User, UserSession
from accounts.serializers import (
    LoginSerializer,
    MeSerializer,
    PasswordChangeSerializer,
    RefreshTokenSerializer,
    SessionSerializer,
    TokenPairSerializer,
    UserCreateSerializer,
    UserSerializer,
    UserUpdateSerializer,
)
from accounts.throttling import login_attempt
from config.http import client_ip
from tenants.idempotency import IdempotentPostMixin
from tenants.scoping import TenantScopedViewSet

logger = logging.getLogger(__name__)

INVALID_LOGIN = "Invalid email or password."
BEARER = "bearer"


def _token_answer(session: UserSession, pair: services.TokenPair) -> Response:
    return Response(
        TokenPairSerializer(
            {
                "access_token": pair.access_token,
                "refresh_token": pair.refresh_token,
                "token_type": BEARER,
                "expires_in": pair.expires_in,
                "user": session.user,
            }
        ).data
    )


class _TokenIssuingView(IdempotentPostMixin, APIView):
    """A retry under an Idempotency-Key gets the same tokens again: they are kept sealed with a key
    that only the same body (the password, the refresh token) gives, for the 24 hours of every key,
    and given only while the pair is unused and its session, user and tenant active."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    idempotency_sealed = ("access_token", "refresh_token")
    reuse_ends_session = False

    def claim(self, request: Request, *, tenant_id: uuid.UUID | None, caller: str) -> None:
        # Kept the 24 hours of every key: a refresh retried after its answer was lost must get that
        # answer (its refresh token still unused), never run again with the token it already spent.
        self.idempotency_claim(request, tenant_id=tenant_id, caller=caller)

    def idempotency_replay_check(self, answer: Response) -> None:
        if answer.status_code == status.HTTP_200_OK:
            services.session_replay_check(
                refresh_token=answer.data.get("refresh_token"), reuse_ends_session=self.reuse_ends_session
            )
            # What is left of the access token now, not what was left when it was first given.
            answer.data["expires_in"] = services.access_token_seconds_left(answer.data["access_token"])


class LoginView(_TokenIssuingView):
    @extend_schema(request=LoginSerializer, responses={200: TokenPairSerializer}, tags=["auth"])
    def post(self, request: Request) -> Response:
        body = LoginSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        email, password = body.validated_data["email"], body.validated_data["password"]
        with login_attempt(request=request, email=email) as attempt:
            user = authenticate(request, username=email, password=password)
            attempt.failed = user is None
        if user is None:
            logger.warning(
                "Login failed",
                extra={"context": {"email_digest": services.email_digest(email), "ip": client_ip(request)}},
            )
            raise exceptions.AuthenticationFailed(INVALID_LOGIN)
        services.tenant_access_check(user.tenant)
        self.claim(request, tenant_id=user.tenant_id, caller=f"user:{user.pk}")
        session, pair = services.session_start(
            user=user, ip=client_ip(request), user_agent=request.META.get("HTTP_USER_AGENT", "")
        )
        logger.info(
            "Login",
            extra={"context": {"user_id": str(user.pk), "session_id": str(session.id), "ip": session.ip}},
        )
        return _token_answer(session, pair)


class RefreshView(_TokenIssuingView):
    # The token sent was exchanged twice: by the first answer, then by the pair it gave being used.
    reuse_ends_session = True

    @extend_schema(request=RefreshTokenSerializer, responses={200: TokenPairSerializer}, tags=["auth"])
    def post(self, request: Request) -> Response:
        body = RefreshTokenSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        token = services.refresh_token_decode(body.validated_data["refresh_token"])
        tenant_id, caller = services.refresh_token_owner(token=token)
        self.claim(request, tenant_id=tenant_id, caller=caller)
        session, pair = services.session_refresh(token=token)
        return _token_answer(session, pair)


class LogoutView(IdempotentPostMixin, APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(request=RefreshTokenSerializer, responses={204: None}, tags=["auth"])
    def post(self, request: Request) -> Response:
        body = RefreshTokenSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        token = services.refresh_token_decode(body.validated_data["refresh_token"])
        tenant_id, caller = services.refresh_token_owner(token=token)
        self.idempotency_claim(request, tenant_id=tenant_id, caller=caller)
        services.session_end_by_refresh_token(token=token)
        return Response(status=status.HTTP_204_NO_CONTENT)


class UserSessionRequiredMixin(IdempotentPostMixin):
    """Views for a logged-in person (JWT), whichever tenant or none; a tenant user's POSTs honour
    Idempotency-Key (staff have no tenant to scope a key to)."""

    permission_classes = [IsAuthenticated]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if getattr(request, "auth_session_id", None) is None:
            raise exceptions.PermissionDenied("This endpoint needs a user's access token, not an API key.")


class LogoutAllView(UserSessionRequiredMixin, APIView):  # type: ignore[misc]
    @extend_schema(request=None, responses={204: None}, tags=["auth"])
    def post(self, request: Request) -> Response:
        services.user_logout_everywhere(user=request.user, reason="logout_all")  # type: ignore[arg-type]
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(UserSessionRequiredMixin, APIView):  # type: ignore[misc]
    @extend_schema(responses={200: MeSerializer}, tags=["auth"])
    def get(self, request: Request) -> Response:
        return Response(MeSerializer(request.user).data)


class PasswordChangeView(UserSessionRequiredMixin, APIView):  # type: ignore[misc]
    @extend_schema(request=PasswordChangeSerializer, responses={204: None}, tags=["auth"])
    def post(self, request: Request) -> Response:
        body = PasswordChangeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        # A wrong current password is a failed login: a stolen access token must not be a way to guess.
        with login_attempt(request=request, email=request.user.email) as attempt:
            try:
                services.user_password_change(
                    user=request.user,  # type: ignore[arg-type]
                    current_password=body.validated_data["current_password"],
                    new_password=body.validated_data["new_password"],
                    session_id=request.auth_session_id,
                )
            except exceptions.ValidationError as error:
                attempt.failed = "current_password" in error.detail
                raise
        return Response(status=status.HTTP_204_NO_CONTENT)


class SessionListView(UserSessionRequiredMixin, APIView):  # type: ignore[misc]
    @extend_schema(responses={200: SessionSerializer(many=True)}, tags=["auth"])
    def get(self, request: Request) -> Response:
        sessions = UserSession.objects.filter(  # type: ignore[misc]
            user=request.user, ended_at__isnull=True, expires_at__gt=timezone.now()
        )
        context = {"current_session_id": request.auth_session_id}
        return Response(SessionSerializer(sessions, many=True, context=context).data)


class SessionDetailView(UserSessionRequiredMixin, APIView):  # type: ignore[misc]
    @extend_schema(responses={204: None}, tags=["auth"])
    def delete(self, request: Request, session_id: str) -> Response:
        session = get_object_or_404(UserSession, id=session_id, user=request.user, ended_at__isnull=True)
        services.session_end(session=session, reason="ended_by_user")
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["users"])
class UserViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    TenantScopedViewSet,
):
    """The tenant's users; only its admins manage them."""

    queryset = User.objects.all()
    serializer_class = UserSerializer
    read_roles = write_roles = frozenset({User.Role.ADMIN})
    lookup_value_regex = "[0-9a-fA-F-]{36}"

    def get_queryset(self) -> QuerySet:
        return super().get_queryset().order_by("email")

    @extend_schema(request=UserCreateSerializer, responses={201: UserSerializer})
    def create(self, request: Request) -> Response:
        body = UserCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        user = services.user_create(tenant=request.tenant, actor=request.user, **body.validated_data)  # type: ignore[arg-type]
        return Response(UserSerializer(user).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=UserUpdateSerializer, responses={200: UserSerializer})
    def partial_update(self, request: Request, pk: str) -> Response:
        user = self.get_object()
        body = UserUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        user = services.user_update(user=user, actor=request.user, **body.validated_data)  # type: ignore[arg-type]
        return Response(UserSerializer(user).data)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk: str) -> Response:
        services.user_deactivate(user=self.get_object(), actor=request.user)  # type: ignore[arg-type]
        return Response(status=status.HTTP_204_NO_CONTENT)
