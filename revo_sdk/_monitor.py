"""``client.monitor``: health checks, alert rules and status in one place."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ._alerts import AlertManager, AlertRule, AlertSink, HookSink, SlackSink, log_sink
from ._health import (
    HealthResult,
    HealthScheduler,
    HealthThresholds,
    collect_status,
    service_levels,
    store_result,
)
from ._records import AlertRecord

if TYPE_CHECKING:
    from ._client import Client

log = logging.getLogger(__name__)


class Monitor:
    """Runs health probes and alert rules for one client.

    Nothing runs until :meth:`start` (or a call to :meth:`check` or
    :meth:`evaluate`); :meth:`Client.close` stops the scheduler.

    ::

        client.monitor.start(interval=60)
        client.monitor.check("github")  # one probe now
        client.monitor.alerts.add_sink(lambda alert: print(alert))

    :param client: the owning client.
    :param interval: seconds between two rounds of probes (with jitter).
    :param jitter: relative spread of that interval.
    :param rules: alert rules (default: the built-in ones).
    :param thresholds: when an integration counts as degraded or unhealthy.
    :param clock: epoch seconds, for alert evaluation and stored results.

    Thread safety: every method may be called from any thread.
    """

    def __init__(
        self,
        client: Client,
        *,
        interval: float = 60.0,
        jitter: float = 0.1,
        rules: Iterable[AlertRule] | None = None,
        thresholds: HealthThresholds | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._clock = clock
        self.thresholds = thresholds
        self.alerts = AlertManager(
            lambda: client.database,
            rules=rules,
            sinks=(log_sink, HookSink(client.plugin_manager)),
            clock=clock,
        )
        self.scheduler = HealthScheduler(
            names=lambda: client.integrations,
            probe=self._probe,
            store=self._store,
            interval=interval,
            jitter=jitter,
            after_round=self._evaluate_quietly,
        )

    def check(self, name: str) -> HealthResult:
        """Probe integration ``name`` now, store the result and return it."""
        result = self._probe(name)
        self._store(result)
        return result

    def _probe(self, name: str) -> HealthResult:
        outcome = self._client.integration(name).health()
        return HealthResult(
            integration=name,
            ok=bool(outcome["ok"]),
            status=int(outcome["status"]),
            latency_ms=float(outcome["latency_ms"]),
            error=str(outcome["error"]),
            timestamp=self._clock(),
        )

    def _store(self, result: HealthResult) -> None:
        store_result(self._client.database, result)

    def start(self, *, interval: float | None = None) -> None:
        """Start probing every integration (and evaluating alerts) in the
        background; ``interval`` overrides the constructor's."""
        if interval is not None:
            if interval <= 0:
                raise ValueError("interval must be > 0")
            self.scheduler.interval = interval
        self.scheduler.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the scheduler thread. Idempotent."""
        self.scheduler.stop(timeout)

    def evaluate(self) -> list[AlertRecord]:
        """Flush metrics, then evaluate every alert rule once."""
        self._client.metrics.flush()
        return self.alerts.evaluate(self._client.integrations)

    def _evaluate_quietly(self) -> None:
        self.evaluate()

    def add_sink(self, sink: AlertSink) -> None:
        """Tell ``sink`` about every alert that fires or resolves."""
        self.alerts.add_sink(sink)

    def notify_slack(self, integration: str, channel: str) -> SlackSink:
        """Post alerts to ``channel`` through Slack integration ``integration``."""
        self._client.integration(integration)  # fail now on an unknown name
        sink = SlackSink(self._client, integration, channel)
        self.alerts.add_sink(sink)
        return sink

    def status(self) -> list[dict[str, Any]]:
        """One status row per integration (see :func:`collect_status`)."""
        self._client.metrics.flush()
        return collect_status(
            self._client.database,
            now=self._clock(),
            live=self._client.status(),
            names=self._client.integrations,
            thresholds=self.thresholds,
        )

    def service_levels(self) -> list[dict[str, Any]]:
        """The pass/fail service-level lines."""
        self._client.metrics.flush()
        return service_levels(self._client.database, now=self._clock())


__all__ = ["Monitor"]
