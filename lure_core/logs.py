"""Logs for every process (API and worker): short lines a person reads, or JSON for machines.

``LURE_LOG_FORMAT=text`` (the default) prints one short line per event that matters to someone
watching ``lure up``: what started, each sealed mega-batch, each published version, warnings and
errors. Libraries' chatter (Alembic's plugin set-up, one httpx line per request, Celery's task
lines) is kept at WARNING. ``LURE_LOG_FORMAT=json`` (the compose file's default) writes one JSON
object a line with every library's INFO records and the ids as keys: python-json-logger writes
every ``extra={"job_id": ..., "version": ...}`` field, so logs can be filtered by job without
parsing messages.
"""

from __future__ import annotations

import logging.config
import os

LOG_FORMATS = ("text", "json")
# libraries whose INFO records are noise on a console (each still logs warnings and errors)
CHATTY_LOGGERS = (
    "alembic", "httpx", "celery", "kombu", "uvicorn", "uvicorn.error", "botocore", "boto3"
)  # fmt: skip
# records that repeat without saying anything, kept at WARNING in either format: botocore says
# "Found credentials in environment variables." once per client, and every update process (one
# every 2 s while a job waits for an earlier mega-batch) makes its own
REPEATING_LOGGERS = ("botocore.credentials",)


def log_format() -> str:
    chosen = os.environ.get("LURE_LOG_FORMAT", "text").strip().lower()
    if chosen not in LOG_FORMATS:
        raise ValueError(f"LURE_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {chosen!r}")
    return chosen


def configure_logging(process: str, level: str | None = None) -> None:
    """Route every logger to stderr in the format ``LURE_LOG_FORMAT`` names."""
    level = level or os.environ.get("LURE_LOG_LEVEL", "INFO")
    as_json = log_format() == "json"
    formatter = (
        {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            "static_fields": {"process_name": process},
        }
        if as_json
        else {
            "()": "lure_core.logs.ConsoleFormatter",
            "process": process,
        }
    )
    library_level = level if as_json else "WARNING"
    loggers: dict[str, dict] = {
        name: {"level": library_level} for name in CHATTY_LOGGERS if name != "uvicorn.error"
    }
    loggers |= {name: {"level": "WARNING"} for name in REPEATING_LOGGERS}
    loggers |= {
        "uvicorn": {"handlers": ["stderr"], "level": library_level, "propagate": False},
        "uvicorn.error": {"handlers": ["stderr"], "level": library_level, "propagate": False},
        "uvicorn.access": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
    }
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"main": formatter},
            "filters": {"noise": {"()": "lure_core.logs.KnownNoise"}},
            "handlers": {
                "stderr": {
                    "class": "logging.StreamHandler",
                    "formatter": "main",
                    "filters": ["noise"],
                }
            },
            "root": {"handlers": ["stderr"], "level": level},
            "loggers": loggers,
        }
    )


class ConsoleFormatter(logging.Formatter):
    """``12:29:33 api     mega-batch 1 of digits-demo sealed ...``; level shown when not INFO."""

    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        clock = self.formatTime(record, "%H:%M:%S")
        level = "" if record.levelno == logging.INFO else f"{record.levelname}: "
        line = f"{clock} {self.process:<7} {level}{record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class KnownNoise(logging.Filter):
    """Drops warnings that are not problems: kombu's filesystem transport has no host by design."""

    MESSAGES = ("No hostname was supplied. Reverting to default",)

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith(self.MESSAGES))
