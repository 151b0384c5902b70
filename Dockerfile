# syntax=docker/dockerfile:1
# The portal's image: one image for web (gunicorn), the Celery workers, beat and the migrations job; the
# command chooses the role (deploy/compose.yaml, deploy/k8s/). Multi-stage: wheels (psycopg2 from source
# against libpq-dev) are built in `builder`; the runtime stage has no compiler and runs as an unprivileged user.
#   docker build -t portal:$(git describe --always) .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential libpq-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so that a code change does not rebuild every wheel.
COPY pyproject.toml constraints.txt ./
COPY portal/__init__.py portal/__init__.py
COPY scoring/__init__.py scoring/__init__.py
COPY audit/__init__.py audit/__init__.py
RUN pip install --no-cache-dir --upgrade pip \
 && pip wheel --no-cache-dir --wheel-dir /wheels -c constraints.txt '.[postgres]'

FROM ${PYTHON_IMAGE} AS runtime
ARG PORTAL_UID=10001
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpq5 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid "${PORTAL_UID}" portal \
 && useradd --system --uid "${PORTAL_UID}" --gid portal --home-dir /var/lib/portal --shell /usr/sbin/nologin portal \
 && install -d -o portal -g portal -m 0750 /var/lib/portal /var/lib/portal/static /var/lib/portal/beat \
    /var/lib/portal/exports
# Only the dependencies' wheels: the code itself runs from the checkout below (PYTHONPATH), with its
# templates and static sources beside the packages, as under systemd (deploy/README.md).
COPY --from=builder /wheels /wheels
RUN python -m venv /opt/portal/venv \
 && rm /wheels/credit_oversight_portal-*.whl \
 && /opt/portal/venv/bin/pip install --no-cache-dir --no-index --no-deps /wheels/*.whl \
 && rm -rf /wheels
ENV PATH=/opt/portal/venv/bin:$PATH \
    PYTHONPATH=/opt/portal/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=portal.settings \
    STATIC_ROOT=/opt/portal/app/staticfiles \
    PORTAL_VAR_DIR=/var/lib/portal \
    GUNICORN_BIND=0.0.0.0:8000
WORKDIR /opt/portal/app
# The code is owned by root and read-only to the portal user (.dockerignore keeps tests, caches, .git out).
COPY . /opt/portal/app
# Static files are part of the release: collected at build time with the development defaults (no database
# is touched), served by nginx (deploy/nginx/container.conf.template) from a copy of this directory.
RUN PORTAL_VAR_DIR=/tmp/collect python -m django collectstatic --no-input -v0 \
 && rm -rf /tmp/collect \
 && python -m compileall -q /opt/portal/app/portal /opt/portal/app/audit /opt/portal/app/scoring
USER portal:portal
EXPOSE 8000
# /healthz answers 503 when the database, the broker or every worker is down.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(urllib.request.Request('http://127.0.0.1:8000/healthz', headers={'Host': os.environ['ALLOWED_HOSTS'].split(',')[0], 'X-Forwarded-Proto': 'https'}), timeout=4)"]
CMD ["gunicorn", "-c", "/opt/portal/app/deploy/gunicorn.conf.py", "portal.wsgi:application"]
