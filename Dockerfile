# One image for the API and the worker; docker-compose.yml picks the command.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml README.md ./
COPY lure_engine lure_engine
COPY lure_core lure_core
COPY lure_update lure_update
COPY service service
COPY worker worker
COPY client client
COPY migrations migrations
RUN pip install -e . \
    && useradd --create-home --uid 10001 lure \
    && mkdir -p /data && chown lure:lure /data
USER lure
EXPOSE 8000
CMD ["lure", "api", "--host", "0.0.0.0"]
