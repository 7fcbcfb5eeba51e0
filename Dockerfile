# refapi: gunicorn serving the API, as a non-root user, on Alpine.
# Build: docker build -t refapi .    Run: see compose.yaml and README.md (Deployment).

# ---- builder: every wheel the service needs, built once -------------------------------------
FROM python:3.13-alpine AS builder
WORKDIR /build
COPY requirements.txt setup.cfg pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels -r requirements.txt .

# ---- runtime: the wheels installed, nothing else -------------------------------------------
FROM python:3.13-alpine
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    REFAPI_BIND=0.0.0.0:5000 \
    REFAPI_INSTANCE_PATH=/app/instance
RUN addgroup -S -g 10001 refapi && adduser -S -u 10001 -G refapi -H -h /app refapi
WORKDIR /app
COPY requirements.txt ./
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels -r requirements.txt /wheels/refapi-*.whl
COPY wsgi.py gunicorn.conf.py ./
COPY migrations ./migrations
RUN mkdir -p /app/instance && chown 10001:10001 /app/instance
USER 10001:10001
EXPOSE 5000
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:5000/ping', timeout=4).status != 200)"]
CMD ["gunicorn", "--config", "gunicorn.conf.py", "wsgi:app"]
