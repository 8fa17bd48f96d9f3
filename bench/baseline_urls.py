from django.http import HttpRequest, JsonResponse
from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

PAYLOAD = {"id": "item-42", "title": "Trail shoe", "categories": ["running"], "is_active": True}


def bare_django(request: HttpRequest) -> JsonResponse:
    return JsonResponse(PAYLOAD)


class BareDrf(APIView):
    def get(self, request: Request) -> Response:
        return Response(PAYLOAD)


urlpatterns = [
    path("baseline/django", bare_django),
    path("baseline/drf", BareDrf.as_view()),
]
