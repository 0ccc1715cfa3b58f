"""Prometheus metrics: invitations, completions, poll cycles, errors by kind, ack latency."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

REGISTRY = CollectorRegistry()

INVITATIONS = Counter("imocha_invitations_sent_total", "iMocha invitations sent, resent or re-attempted", ["action"], registry=REGISTRY)
COMPLETIONS = Counter("imocha_completions_total", "Assessments that reached a finished status", registry=REGISTRY)
INTAKE = Counter("imocha_intake_events_total", "ATS stage events received", ["source", "outcome"], registry=REGISTRY)
CALLBACKS = Counter("imocha_callbacks_total", "iMocha callbacks received", registry=REGISTRY)
IMOCHA_ERRORS = Counter("imocha_api_errors_total", "iMocha API errors by kind", ["kind"], registry=REGISTRY)
SLACK_ERRORS = Counter("imocha_slack_errors_total", "Slack delivery errors by kind", ["kind"], registry=REGISTRY)
POLL_SECONDS = Histogram("imocha_poll_cycle_seconds", "Duration of one status poll cycle", registry=REGISTRY)
ACK_LATENCY = Histogram(
    "imocha_slack_ack_seconds",
    "HTTP response time of Slack requests",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)


def render() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
