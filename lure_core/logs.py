"""JSON logs for every process (API and worker), one object a line, with job and version ids.

Ids travel as ``extra={"job_id": ..., "version": ...}``; python-json-logger writes every extra
field as a key, so logs can be filtered by job without parsing messages.
"""

from __future__ import annotations

import logging.config
import os


def configure_json_logging(process: str, level: str | None = None) -> None:
    level = level or os.environ.get("LURE_LOG_LEVEL", "INFO")
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "json": {
                    "()": "pythonjsonlogger.json.JsonFormatter",
                    "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
                    "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
                    "static_fields": {"process_name": process},
                }
            },
            "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json"}},
            "root": {"handlers": ["stderr"], "level": level},
            "loggers": {
                "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
                "uvicorn.error": {"handlers": ["stderr"], "level": level, "propagate": False},
                "uvicorn.access": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
                "celery": {"level": level},
            },
        }
    )
