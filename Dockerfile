# ollama-gateway for an external PostgreSQL (docker-compose.yml); the `embedded` extra is left out.

# --- build: the wheel, with sql/ copied in (proxy/sql is a symlink to it in the repository) ---
FROM python:3.12.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sql ./sql
COPY proxy ./proxy
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# --- runtime ---
FROM python:3.12.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Dependencies in their own layer, rebuilt only when pyproject.toml changes, not on every code edit.
COPY pyproject.toml /tmp/pyproject.toml
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('/tmp/pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt /tmp/pyproject.toml

COPY --from=build /wheels /tmp/wheels
RUN pip install --no-cache-dir --no-deps /tmp/wheels/*.whl && rm -rf /tmp/wheels

# Not root. The data dir holds the usage log's disk journal (kept while PostgreSQL is away), so
# it is a volume; a new named volume takes this directory's owner.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/ollama-gateway --create-home gateway
USER 10001
WORKDIR /var/lib/ollama-gateway
ENV GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8000 \
    GATEWAY_DATA_DIR=/var/lib/ollama-gateway
VOLUME ["/var/lib/ollama-gateway"]
EXPOSE 8000

# curl is not in the slim image; the standard library is.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('GATEWAY_PORT', '8000') + '/health', timeout=3)"]

# `docker compose run --rm gateway keys create --name ci` runs the other commands.
ENTRYPOINT ["ollama-gateway"]
CMD ["serve"]
