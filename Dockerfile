# Scale-out image: `idp serve` (Granian, worker processes with threads) behind a load
# balancer, which also bounds idle client connections; all state in
# PostgreSQL (IDP_DATABASE_URL), counters in Redis (IDP_REDIS_URL), the key-encryption
# key from a mounted secret (IDP_KEYS_DIR) or IDP_KEK.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    IDP_ENV=production IDP_KEYS_DIR=/run/secrets/idp IDP_MAIL_OUTBOX=/app/instance/outbox

RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin idp
WORKDIR /app
COPY pyproject.toml README.md ./
COPY idp ./idp
COPY templates ./templates
COPY static ./static
COPY wsgi.py ./
# Editable install keeps templates/ and static/ beside the package, as in the repository.
RUN pip install -e . && mkdir -p /app/instance && chown -R idp:idp /app/instance

USER idp
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"
# Run `idp db upgrade` once per release (a job), not in every replica's start-up.
# One worker per core with IDP_REDIS_URL set (one without: counters must be shared).
CMD ["idp", "serve", "--host", "0.0.0.0", "--port", "8000"]
