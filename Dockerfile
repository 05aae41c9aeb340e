# One image for web (Daphne), worker and beat.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DJANGO_SETTINGS_MODULE=config.settings.production

RUN apt-get update \
    && apt-get install -y --no-install-recommends gettext curl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements/ requirements/
RUN pip install -r requirements/production.txt

COPY . .
RUN useradd --create-home --uid 1000 app \
    && mkdir -p /app/var \
    && chown -R app:app /app/var
USER app

# collectstatic needs settings but no secrets of value: placeholders for the build step only.
RUN SECRET_KEY=build-only-placeholder-secret-key-0123456789-abcdefghijklmnop \
    ALLOWED_HOSTS=build FIELD_ENCRYPTION_KEYS=YnVpbGQtb25seS1wbGFjZWhvbGRlci1rZXktMzJieXRlcw== \
    REDIS_URL=redis://localhost:6379/0 DATABASE_URL=sqlite:////tmp/build.sqlite3 \
    python manage.py collectstatic --noinput

EXPOSE 8000
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "--ping-interval", "120", "config.asgi:application"]
