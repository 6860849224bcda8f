# syntax=docker/dockerfile:1
# The image of Places: `places run` as an unprivileged user, with only what the service needs
# at run time (Python, the locked dependencies, the code, the DSFR assets the pages serve).
# Dependencies are resolved in build stages: no compiler, no npm, no pip cache in the image.
# Linted by hadolint in tests/test_packaging.py; see docs/operations.md (Deploy).
#
#   docker build -t places:$(git rev-parse --short HEAD) .

# The State design system (DSFR) served by the pages (api/ui/assets.py), pinned with its
# integrity hash in package-lock.json.
FROM node:20.20-bookworm-slim AS dsfr
WORKDIR /dsfr
COPY api/ui/dsfr/package.json api/ui/dsfr/package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts --loglevel=error

# The virtualenv: the runtime lock only (requirements.lock, no dev packages), then the
# project itself in editable mode so that the code stays in /app, where its data lives.
FROM python:3.11.7-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
RUN python -m venv /opt/venv
COPY requirements.lock ./
RUN /opt/venv/bin/pip install --no-cache-dir -r requirements.lock
COPY pyproject.toml ./
COPY api ./api
COPY geo ./geo
COPY interop ./interop
COPY matching ./matching
COPY realtime ./realtime
COPY seed ./seed
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps --editable . \
    && /opt/venv/bin/python -m compileall -q api geo interop matching realtime seed

FROM python:3.11.7-slim-bookworm AS runtime
# Listen on every interface of the container; JSON log lines; the workers' metrics files
# (api/metrics.py) and the local issuer's keys outside the read-only code.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PLACES_HOST=0.0.0.0 \
    PLACES_PORT=8000 \
    PLACES_LOG_JSON=true \
    PLACES_KEYS_DIR=/var/run/places/keys \
    PROMETHEUS_MULTIPROC_DIR=/tmp/places-metrics
RUN groupadd --system --gid 10001 places \
    && useradd --system --uid 10001 --gid places --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin places \
    && mkdir -p /var/run/places/keys \
    && chown places:places /var/run/places/keys
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
COPY --from=dsfr /dsfr/node_modules /app/api/ui/dsfr/node_modules
WORKDIR /app
# Code and dependencies belong to root: the service can read them, not change them.
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["places", "run"]
