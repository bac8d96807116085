# hookledger service image: `docker build -t hookledger .`
#
# Stage 1 builds wheels of hookledger and every dependency. Stage 2 installs
# them into a slim image without compilers, pip caches, tests or the source
# tree. docker-compose.yml shows the image with PostgreSQL.

FROM python:3.11-slim AS builder
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOOKLEDGER_MIGRATIONS_DIR=/opt/hookledger/migrations \
    HOOKLEDGER_DATA_DIR=/var/lib/hookledger \
    HOOKLEDGER_WORKERS=2
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/hookledger --create-home hookledger
COPY --from=builder /wheels /tmp/wheels
RUN pip install --no-cache-dir --no-index --find-links=/tmp/wheels hookledger \
    && rm -rf /tmp/wheels
COPY migrations /opt/hookledger/migrations
USER hookledger
WORKDIR /var/lib/hookledger
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["hookledger"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000", "--proxy-headers"]
