"""``GET /metrics``: request, prediction and ingest counters kept in the API process, plus a
collector that reads queue depth, live versions, update durations and failures from the database
at scrape time, so numbers produced by worker processes need no second endpoint.
"""

from __future__ import annotations

import time
from collections import defaultdict

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Receive, Scope, Send

from lure_core.drift import adjusted_p_value
from lure_core.records import (
    PENDING,
    JobRow,
    JobState,
    MegaBatchRow,
    MegaBatchState,
    ModelRow,
    VersionRow,
)
from service.ingest.feedback import live_accuracy
from service.operations.disk_use import DiskUse
from service.operations.health import FileVerifier, assess
from service.serving.drift_monitor import latest_drift
from service.serving.shadow import shadow_record

UPDATE_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, float("inf"))
PHASES = ("total", "unlearn", "train", "evaluate")


# attribute: (kind, metric name, help, labels)
_INSTRUMENTS = {
    "requests": (Counter, "lure_http_requests", "HTTP requests", ("route", "method", "status")),
    "latency": (
        Histogram,
        "lure_http_request_duration_seconds",
        "HTTP latency",
        ("route", "method"),
    ),
    "predictions": (Counter, "lure_predictions", "Images classified", ("model", "version")),
    "samples": (Counter, "lure_samples_ingested", "Samples accepted", ("model", "split")),
    "sealed": (Counter, "lure_megabatches_sealed", "Mega-batches sealed", ("model",)),
    "predictions_logged": (
        Counter,
        "lure_predictions_logged",
        "Predictions stored in the prediction log",
        ("model",),
    ),
    "prediction_log_dropped": (
        Counter,
        "lure_prediction_log_dropped",
        "Predictions the log dropped (queue full or storage away) instead of slowing /predict",
        ("model",),
    ),
    "refused_checkpoints": (
        Counter,
        "lure_checkpoint_integrity_failures",
        "Checkpoints refused because their sha256 differs from the record",
        ("model_id", "version"),
    ),
}


class ApiMetrics:
    """The API process's own instruments, on a private registry (tests can build many apps)."""

    requests: Counter
    latency: Histogram
    predictions: Counter  # by the version that answered
    samples: Counter
    sealed: Counter
    refused_checkpoints: Counter
    predictions_logged: Counter
    prediction_log_dropped: Counter

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        for attribute, (kind, name, documentation, labels) in _INSTRUMENTS.items():
            setattr(self, attribute, kind(name, documentation, labels, registry=self.registry))

    def watch_database(
        self, sessions: sessionmaker[Session], verifier: FileVerifier, disk: DiskUse, settings
    ) -> None:
        self.registry.register(DatabaseCollector(sessions, verifier, disk, settings))


_GATED = (MegaBatchState.QUARANTINED, MegaBatchState.DISCARDED)


class DatabaseCollector:
    """Queue depth, live versions, update durations by phase, failed updates and the readiness
    signals of ``/readyz`` (workers alive, stale and failed jobs, damaged live checkpoints)."""

    def __init__(
        self, sessions: sessionmaker[Session], verifier: FileVerifier, disk: DiskUse, settings
    ) -> None:
        self.sessions, self.verifier, self.disk, self.settings = sessions, verifier, disk, settings

    def describe(self):  # no describe-time database access
        return []

    def collect(self):
        with self.sessions() as session:
            names = dict(session.execute(select(ModelRow.id, ModelRow.name)).all())
        disk = GaugeMetricFamily(
            "lure_model_disk_bytes",
            "Bytes a model's chunks, checkpoints and exports take in the blob store",
            labels=["model"],
        )
        for model_id, name in names.items():
            disk.add_metric([name], self.disk.of(model_id))
        yield disk
        with self.sessions() as session:
            live = session.execute(select(ModelRow.name, ModelRow.live_version)).all()
            states = session.execute(
                select(JobRow.model_id, JobRow.state, func.count()).group_by(
                    JobRow.model_id, JobRow.state
                )
            ).all()
            timings = session.execute(
                select(JobRow.model_id, JobRow.timings).where(JobRow.state == JobState.SUCCEEDED)
            ).all()
        depth = GaugeMetricFamily(
            "lure_queue_depth",
            "Update jobs waiting or running, by model and state",
            labels=["model", "state"],
        )
        failures = CounterMetricFamily(
            "lure_update_failures", "Update jobs that failed, by model", labels=["model"]
        )
        failed = defaultdict(int)
        for model_id, state, count in states:
            if state in PENDING:
                depth.add_metric([names[model_id], state], count)
            if state == JobState.FAILED:
                failed[names[model_id]] += count
        for name in names.values():
            failures.add_metric([name], failed[name])
        yield depth
        yield failures
        gauge = GaugeMetricFamily(
            "lure_live_version", "The version /predict serves, by model", labels=["model"]
        )
        for name, version in live:
            if version is not None:
                gauge.add_metric([name], version)
        yield gauge
        yield self._durations(names, timings)
        yield from self._gate(names)
        yield self._data_gate(names)
        yield from self._live_accuracy(names)
        yield from self._drift(names)
        yield from self._health(list(names.values()))

    def _drift(self, names: dict[int, str]):
        """The latest drift check per model and how many checks drifted."""
        p_value = GaugeMetricFamily(
            "lure_drift_p_value",
            "The latest drift check's Bonferroni-adjusted p-value (low: traffic drifted)",
            labels=["model"],
        )
        statistic = GaugeMetricFamily(
            "lure_drift_confidence_statistic",
            "The latest drift check's Kolmogorov-Smirnov D on top-1 confidence",
            labels=["model"],
        )
        alarms = CounterMetricFamily(
            "lure_drift_alarms", "Drift checks that found drift, by model", labels=["model"]
        )
        with self.sessions() as session:
            for model_id, name in names.items():
                latest, drifted = latest_drift(session, model_id)
                alarms.add_metric([name], drifted)
                if latest is not None:
                    adjusted = adjusted_p_value(latest.confidence_p_value, latest.class_p_value)
                    p_value.add_metric([name], adjusted)
                    statistic.add_metric([name], latest.confidence_statistic)
        yield from (p_value, statistic, alarms)
        yield self._shadow(names)

    def _shadow(self, names: dict[int, str]) -> GaugeMetricFamily:
        """Each shadow version's agreement with the answers served (service/serving/shadow.py)."""
        gauge = GaugeMetricFamily(
            "lure_shadow_agreement",
            "Share of logged requests where a shadow version said what the served answer said",
            labels=["model", "version"],
        )
        with self.sessions() as session:
            for model_id, name in names.items():
                for entry in shadow_record(session, model_id):
                    if entry["agreement"] is not None:
                        gauge.add_metric([name, str(entry["version"])], entry["agreement"])
        return gauge

    def _live_accuracy(self, names: dict[int, str]):
        """Feedback labels per answering version and the share its logged answers got right."""
        accuracy = GaugeMetricFamily(
            "lure_live_accuracy",
            "Share of labelled logged predictions the answering version got right",
            labels=["model", "version"],
        )
        labelled = GaugeMetricFamily(
            "lure_feedback_labels",
            "Logged predictions labelled through /feedback, by answering version",
            labels=["model", "version"],
        )
        with self.sessions() as session:
            for model_id, name in names.items():
                for row in live_accuracy(session, model_id):
                    accuracy.add_metric([name, str(row["version"])], row["accuracy"])
                    labelled.add_metric([name, str(row["version"])], row["labelled"])
        yield accuracy
        yield labelled

    def _data_gate(self, names: dict[int, str]) -> GaugeMetricFamily:
        """Mega-batches the data gate quarantined (waiting for an admin) or an admin discarded."""
        with self.sessions() as session:
            counts = {
                (model_id, state): count
                for model_id, state, count in session.execute(
                    select(MegaBatchRow.model_id, MegaBatchRow.state, func.count())
                    .where(MegaBatchRow.state.in_(_GATED))
                    .group_by(MegaBatchRow.model_id, MegaBatchRow.state)
                )
            }
        gauge = GaugeMetricFamily(
            "lure_megabatches_quarantined",
            "Mega-batches stopped by the data gate, by model and state (quarantined: waiting "
            "for an admin; discarded)",
            labels=["model", "state"],
        )
        for model_id, name in names.items():
            for state in _GATED:
                gauge.add_metric([name, state], counts.get((model_id, state), 0))
        return gauge

    def _gate(self, names: dict[int, str]):
        """Gate verdicts of the winning candidates, and the last winner's margin over live."""
        with self.sessions() as session:
            winners = session.execute(
                select(VersionRow.model_id, VersionRow.number, VersionRow.gate)
                .where(VersionRow.gate.is_not(None))
                .order_by(VersionRow.number)
            ).all()
        verdicts = GaugeMetricFamily(
            "lure_versions_by_gate_verdict",
            "Published winning candidates by promotion-gate verdict (passed, held, forced)",
            labels=["model", "verdict"],
        )
        margin = GaugeMetricFamily(
            "lure_gate_margin",
            "The last winning candidate's lead over live on the policy's ranking metric",
            labels=["model"],
        )
        counts: dict[tuple[str, str], int] = defaultdict(int)
        last: dict[str, float] = {}
        for model_id, _, gate in winners:
            if not gate.get("winner"):
                continue
            counts[(names[model_id], gate["verdict"])] += 1
            if gate.get("margin") is not None:
                last[names[model_id]] = float(gate["margin"])
        for name in names.values():
            for verdict in ("passed", "held", "forced"):
                verdicts.add_metric([name, verdict], counts[(name, verdict)])
        for name, value in last.items():
            margin.add_metric([name], value)
        yield verdicts
        yield margin

    def _health(self, models: list[str]):
        health = assess(
            self.sessions,
            self.verifier,
            worker_timeout=self.settings.worker_timeout_seconds,
            stale_after=self.settings.stale_job_seconds,
        )
        yield GaugeMetricFamily(
            "lure_workers_alive",
            "Worker processes that reported recently",
            value=health.workers_alive,
        )
        yield GaugeMetricFamily(
            "lure_jobs_stale",
            "Running update jobs whose worker stopped reporting",
            value=len(health.stale_jobs),
        )
        failed = GaugeMetricFamily(
            "lure_jobs_failed_waiting",
            "Failed update jobs not yet retried, by model",
            labels=["model"],
        )
        damaged = GaugeMetricFamily(
            "lure_live_checkpoint_damaged",
            "1 when the model's live checkpoint fails its sha256 check",
            labels=["model"],
        )
        for name in models:
            failed.add_metric([name], len(health.failed_jobs.get(name, [])))
            damaged.add_metric([name], int(name in health.damaged_live))
        yield failed
        yield damaged
        yield GaugeMetricFamily(
            "lure_health_problems",
            "Reasons /readyz reports degraded (0: healthy)",
            value=len(health.problems),
        )

    @staticmethod
    def _durations(names: dict[int, str], timings) -> HistogramMetricFamily:
        family = HistogramMetricFamily(
            "lure_update_duration_seconds",
            "Update duration by model and phase (total, unlearn, train, evaluate)",
            labels=["model", "phase"],
        )
        observed: dict[tuple[str, str], list[float]] = defaultdict(list)
        for model_id, timing in timings:
            for phase in PHASES:
                value = (timing or {}).get(f"{phase}_seconds")
                if value is not None:
                    observed[(names[model_id], phase)].append(float(value))
        for (model, phase), values in sorted(observed.items()):
            buckets = [
                (str(b) if b != float("inf") else "+Inf", sum(v <= b for v in values))
                for b in UPDATE_BUCKETS
            ]
            family.add_metric([model, phase], buckets, sum(values))
        return family


class MetricsMiddleware:
    """Counts and times every request under its route template (``/v1/models/{name}``), not
    its URL.
    """

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}

        async def send_wrapper(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")  # set by the router, in place
            method = scope["method"]
            self.metrics.latency.labels(route, method).observe(time.perf_counter() - started)
            self.metrics.requests.labels(route, method, str(status["code"])).inc()
