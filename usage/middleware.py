import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from usage.events import usage_event, usage_event_record


class UsageMiddleware:
    """After the answer is built: the rate-limit headers of the request's tenant, and its usage event."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started, started_at = time.perf_counter(), time.time()
        response = self.get_response(request)
        decision = getattr(request, "rate_limit", None)
        if decision is not None:
            for name, value in decision.headers().items():
                response[name] = value
        event = usage_event(request, response, started, started_at)
        if event is not None:
            usage_event_record(event)
        return response
