"""The bot's Prometheus metrics, on a registry each app owns (no process-wide globals)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    """Counters and gauges the webhook handler, the dispatcher and the outbound layer update.

    Label values are bounded: webhook and command outcomes are fixed words, command names come
    from the command tree (``(unknown)`` for anything typed that is not one), and statuses are
    HTTP codes or ``timeout`` / ``connection_error`` / ``token_error``.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._children: dict[tuple[Counter, tuple[str, ...]], Any] = {}
        self.webhooks = Counter(
            "chatopsbot_webhooks",
            "Webhook deliveries by outcome (accepted, duplicate, bad_signature, malformed, ...).",
            ["outcome"],
            registry=self.registry,
        )
        self.commands = Counter(
            "chatopsbot_commands",
            "Commands run, by command and outcome (ok, usage, unknown, error, timeout).",
            ["command", "outcome"],
            registry=self.registry,
        )
        self.actions = Counter(
            "chatopsbot_actions",
            "Button clicks and dropdown picks, by plugin:action and outcome (ok, error, stale).",
            ["action", "outcome"],
            registry=self.registry,
        )
        self.hooks = Counter(
            "chatopsbot_hook_requests",
            "Requests to plugin HTTP hooks, by plugin and HTTP status.",
            ["plugin", "status"],
            registry=self.registry,
        )
        self.outbound = Counter(
            "chatopsbot_outbound_requests",
            "Requests made to Zoom's chatbot API, by HTTP status or failure kind.",
            ["status"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "chatopsbot_outbound_rate_limited",
            "429 answers from Zoom (each one is waited out and retried).",
            ["kind"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "chatopsbot_outbound_dead_letters",
            "Messages moved to the dead letters, by reason (rejected, expired, error); each one "
            "is also logged, and `chatopsbot outbox list` shows them.",
            ["reason"],
            registry=self.registry,
        )
        self.retries = Counter(
            "chatopsbot_outbound_retries",
            "Failed attempts that will be retried, by reason (5xx, timeout, connection, token).",
            ["reason"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "chatopsbot_outbound_queue_depth",
            "Messages in the outbox waiting to be sent or being sent.",
            registry=self.registry,
        )
        self.oldest_age = Gauge(
            "chatopsbot_outbound_oldest_age_seconds",
            "Age of the oldest message in the outbox (0 when it is empty).",
            registry=self.registry,
        )
        self.failing = Gauge(
            "chatopsbot_outbound_failing_seconds",
            "How long requests to Zoom have been failing, for the account failing longest.",
            registry=self.registry,
        )
        self.leader = Gauge(
            "chatopsbot_leader",
            "1 while this process holds the leader lease (sends, runs jobs and timers).",
            registry=self.registry,
        )
        self.inbox = Counter(
            "chatopsbot_inbox_replayed",
            "Accepted events found unhandled at startup and handled then.",
            registry=self.registry,
        )
        self.send_latency = Histogram(
            "chatopsbot_outbound_send_seconds",
            "Time from queueing a message to Zoom accepting it.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=self.registry,
        )

    def count(self, counter: Counter, *labels: str) -> None:
        """``counter.labels(*labels).inc()``, keeping the labelled child: ``labels`` checks and
        hashes its arguments on every call, several times per webhook, and the label values
        are bounded (see above)."""
        key = (counter, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = counter.labels(*labels)
        child.inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
