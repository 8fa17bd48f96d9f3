FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
RUN useradd --create-home --uid 10001 app

COPY requirements/ requirements/
RUN pip install -r requirements/base.txt -c requirements/constraints.txt

COPY . .
# collectstatic needs settings that import; the real SECRET_KEY comes at run time.
RUN DEBUG=false SECRET_KEY=collectstatic-only-build-key-not-used-at-runtime-0123456789 \
    python manage.py collectstatic --noinput \
    && mkdir -p /tmp/recommender-prometheus /var/lib/celerybeat \
    && chown app /tmp/recommender-prometheus /var/lib/celerybeat

USER app
EXPOSE 8000
CMD ["gunicorn", "-c", "config/gunicorn.py", "config.wsgi"]
