# One image for the API and the worker; docker-compose.yml picks the command.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml README.md ./
COPY lure_engine lure_engine
COPY service service
COPY worker worker
COPY migrations migrations
RUN pip install -e .
EXPOSE 8000
CMD ["lure", "api", "--host", "0.0.0.0"]
