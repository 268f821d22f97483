"""driftwatch's HTTP server: probes, Prometheus metrics, the incidents API and the Git push
hook (``server:`` in the configuration).

It sits between the daemon and the settings: the daemon builds a :class:`Backend` (plain
values and callables: readiness, the incident store, the Git trigger, :class:`Metrics`)
and runs :meth:`HttpServer.serve` as one of its supervised tasks. Lower layers never import
prometheus_client; they are handed :class:`Metrics` methods as callbacks.
"""

from driftwatch.server.api import incident_json
from driftwatch.server.app import HttpServer, ServerError, build_app
from driftwatch.server.auth import github_signature
from driftwatch.server.backend import Backend, GitTrigger, Readiness, Role, RoleProvider
from driftwatch.server.hooks import ref_matches
from driftwatch.server.metrics import DriftAges, Metrics, summarise_incidents

__all__ = [
    "Backend",
    "DriftAges",
    "GitTrigger",
    "HttpServer",
    "Metrics",
    "Readiness",
    "Role",
    "RoleProvider",
    "ServerError",
    "build_app",
    "github_signature",
    "incident_json",
    "ref_matches",
    "summarise_incidents",
]
