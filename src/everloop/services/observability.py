"""``GET /metrics``: the process's Prometheus metrics, for the instance's operators.

The metrics describe the whole instance (every tenant's turns, host resources), so like the
durable workers they are shown to operators only: a token acting for the default organization,
or a client address in ``EVERLOOP_METRICS_ALLOW_IPS`` (a Prometheus server that sends no
token). Anyone else is told the route does not exist (404). Gauges of state kept elsewhere are
set as the scrape is answered: queued turns (one count in the app database), SSE subscribers.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence

from everloop.errors import NotFound
from everloop.services.auth import AuthService
from everloop.store import turns as turn_store
from everloop.store.db import Database
from everloop.telemetry import metrics

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class MetricsService:
    def __init__(
        self,
        db: Database,
        auth: AuthService,
        subscribers: Callable[[], int],
        allowed: Sequence[Network] = (),
    ) -> None:
        self._db = db
        self._auth = auth
        self._subscribers = subscribers
        self._allowed = tuple(allowed)

    async def scrape(
        self, authorization: str | None, org_header: str | None, client: str | None
    ) -> bytes:
        """The metrics in the Prometheus text format, if the caller may read them."""
        if not self._allowed_address(client):
            caller = await self._auth.authenticate(authorization, org_header, client)
            if not caller.is_operator:
                raise NotFound(
                    "no such route for this organization: the metrics are shown to the "
                    "operators of this instance only"
                )
        async with self._db.read() as conn:
            metrics.QUEUED_TURNS.set(await turn_store.count_queued(conn))
        metrics.SSE_SUBSCRIBERS.set(self._subscribers())
        return metrics.render()

    def _allowed_address(self, client: str | None) -> bool:
        if not self._allowed or client is None:
            return False
        try:
            address = ipaddress.ip_address(client)
        except ValueError:
            return False
        return any(address in network for network in self._allowed)
