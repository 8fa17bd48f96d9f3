"""Who may call what (API.md, "Who calls what")."""

from rest_framework import exceptions
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from accounts.models import User

ALL_ROLES = frozenset(User.Role.values)


class IsPlatformStaff(BasePermission):
    message = "Only platform staff may use the admin API."

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        return bool(
            user is not None
            and user.is_authenticated
            and user.is_staff
            and getattr(request, "api_key", None) is None
        )


def api_key_allows(permissions: tuple[str, ...] | list[str], needed: str) -> bool:
    """Whether a key's permissions allow what a request needs: `write` also reads (API.md:
    "`write`: also item and interaction writes", on top of what `read` allows)."""
    return needed in permissions or (needed == "read" and "write" in permissions)


class TenantAccess(BasePermission):
    """A tenant's credential, with the role or key permission the view asks for.

    Views set `read_roles` (safe methods) and `write_roles`; `api_key_permission` names what a key
    needs for each method, or is None where keys may not come at all (users, API keys).
    """

    message = "Your role or key does not allow this action."

    def has_permission(self, request: Request, view: APIView) -> bool:
        if getattr(request, "tenant", None) is None:
            return False
        if not hasattr(view, (request.method or "").lower()):
            return True  # a method the URL does not serve: 405 for whoever asks
        api_key = getattr(request, "api_key", None)
        if api_key is not None:
            needed = self.api_key_needs(request, view)
            return needed is not None and api_key_allows(api_key.permissions, needed)
        if request.method in SAFE_METHODS:
            roles = getattr(view, "read_roles", ALL_ROLES)
        else:
            roles = getattr(view, "write_roles", frozenset())
        return request.user.role in roles  # type: ignore[union-attr]

    @staticmethod
    def api_key_needs(request: Request, view: APIView) -> str | None:
        rule = getattr(view, "api_key_permission", None)
        if rule is None:
            return None
        return "read" if request.method in SAFE_METHODS else rule


def staff_require(request: Request, *permissions: str) -> None:
    """Staff roles: a superuser may do anything; support staff only what their group grants."""
    missing = [permission for permission in permissions if not request.user.has_perm(permission)]
    if missing:
        raise exceptions.PermissionDenied(f"Your staff role does not allow this ({', '.join(missing)}).")
