"""The ``server:`` and ``ha:`` sections of the configuration.

``server`` turns on driftwatch's HTTP server (probes, Prometheus metrics, the incidents API
and the Git push hook); without it, ``driftwatch run`` listens on nothing. Its secrets are
``SecretStr`` fields, so they may be given as ``api_token_file`` / ``git_webhook_secret_file``
(a mounted Kubernetes Secret) and reach :meth:`Settings.secret_values` for the log redactor.

``ha`` describes how several replicas share the work (leader election on a Lease, and
incidents kept as Kubernetes objects); the defaults that depend on where driftwatch runs
(the Pod's namespace and name) are resolved when they are used, never at import.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails

from driftwatch.values.durations import Duration, at_least
from driftwatch.values.secrets import SecretFileModel, custom_error

__all__ = ["ApiToken", "HaSettings", "ServerSettings", "parse_listen"]

MAX_BODY_LIMIT = 16 * 1024 * 1024
"""The largest ``max_body_bytes`` accepted (a push event of a big merge is < 1 MiB)."""


def parse_listen(text: str) -> tuple[str, int]:
    """``host:port`` -> (host, port); IPv6 hosts in brackets (``[::1]:8080``); port 0 picks
    a free port. ValueError with the expected form otherwise."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"{text!r} is not host:port (write 127.0.0.1:8080 or [::1]:8080)")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"{text!r}: the port must be 0-65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{text!r}: {host!r} in brackets is not an IPv6 address") from None
    elif ":" in host:
        raise ValueError(f"{text!r}: write an IPv6 address in brackets, e.g. [::1]:8080")
    return host, port


class _Model(SecretFileModel):
    # Inputs stay out of ValidationError texts: they may be secrets.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class ApiToken(_Model):
    """One named bearer token of ``/api/v1`` (``server.api_tokens``): its name is the
    actor recorded for what is done with it (``approved by alice``)."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[^\s]+$")
    """Who uses it (a person or a tool), without spaces."""
    token: SecretStr
    """The token (usually ``token_file: /path``)."""


class ServerSettings(_Model):
    """The ``server:`` section: driftwatch's HTTP endpoints (absent: no server)."""

    listen: str = "127.0.0.1:8080"
    """``host:port`` to listen on (``0.0.0.0:8080`` in a Pod, so the kubelet's probes and
    Prometheus reach it; ``[::]:8080`` for IPv6; port 0: any free port)."""
    api_token: SecretStr | None = None
    """Bearer token required by ``/api/v1/...`` (usually ``api_token_file: /path``; compared
    in constant time). Unset (and no ``api_tokens``): the API is disabled (404). Actions
    done with it are recorded as ``<actor> (via API token)``, the actor the request names."""
    api_tokens: tuple[ApiToken, ...] = ()
    """Named bearer tokens (``[{name: alice, token_file: /path}]``), with or instead of
    ``api_token``: actions done with one are recorded under its name."""
    slack_signing_secret: SecretStr | None = None
    """The Slack app's signing secret (usually ``slack_signing_secret_file``): enables
    ``POST /hooks/slack`` (the incident message's buttons). A Slack notifier's own
    ``signing_secret`` does too."""
    git_webhook_secret: SecretStr | None = None
    """Secret of the Git push hook ``POST /hooks/git`` (usually ``git_webhook_secret_file``):
    GitHub's HMAC key (``X-Hub-Signature-256``) or GitLab's token (``X-Gitlab-Token``).
    Unset: no hook (404); needs ``desired.git``."""
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=MAX_BODY_LIMIT)
    """Largest request body accepted (413 beyond it); 1 KiB to 16 MiB, default 1 MiB (a
    GitHub push event with many commits is hundreds of KiB)."""

    @field_validator("listen")
    @classmethod
    def _valid_listen(cls, value: str) -> str:
        parse_listen(value)
        return value.strip()

    @field_validator("api_tokens")
    @classmethod
    def _unique_tokens(cls, value: tuple[ApiToken, ...]) -> tuple[ApiToken, ...]:
        names = [t.name for t in value]
        if len(set(names)) != len(names):
            raise ValueError("token names must be unique")
        secrets = [t.token.get_secret_value() for t in value]
        if len(set(secrets)) != len(secrets):
            raise ValueError("two tokens are the same: each name needs its own")
        return value

    @property
    def address(self) -> tuple[str, int]:
        """``listen`` as (host, port), brackets removed."""
        return parse_listen(self.listen)


class HaSettings(_Model):
    """The ``ha:`` section: several replicas, one leader (a Lease), incidents shared."""

    enabled: bool = False
    """Run as one of several replicas: only the Lease holder notifies, the others keep
    their caches warm and take over when it stops renewing."""
    lease_name: str = Field(default="driftwatch", min_length=1, max_length=253)
    """Name of the ``coordination.k8s.io/v1`` Lease the replicas compete for."""
    lease_namespace: str | None = None
    """Namespace of the Lease; null: ``$POD_NAMESPACE``, else ``default`` (resolved when
    used, see :meth:`namespace`)."""
    identity: str | None = None
    """This replica's name in the Lease; null: ``$POD_NAME``, else the host name (see
    :meth:`holder`)."""
    lease_duration: Annotated[Duration, at_least(1)] = 15.0
    """How long a Lease is valid without renewal: followers take over after it."""
    renew_deadline: Annotated[Duration, at_least(0.1)] = 10.0
    """The leader gives up leadership if it could not renew for this long (shorter than
    ``lease_duration``, so it stops before another replica may start)."""
    retry_period: Annotated[Duration, at_least(0.1)] = 2.0
    """How often replicas try to acquire or renew (shorter than ``renew_deadline``)."""
    store: Literal["sqlite", "kubernetes"] = "sqlite"
    """Where incidents and the outbox live: ``sqlite`` (``state.path``, one replica) or
    ``kubernetes`` (DriftIncident objects, shared by the replicas)."""
    store_namespace: str | None = None
    """Namespace of the DriftIncident objects; null: the Lease's namespace."""

    @model_validator(mode="wrap")
    @classmethod
    def _consistent(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        ha = handler(data)
        problems: list[InitErrorDetails] = []
        if not ha.lease_duration > ha.renew_deadline:
            problems.append(custom_error("renew_deadline", "must be shorter than lease_duration"))
        if not ha.renew_deadline > ha.retry_period:
            problems.append(custom_error("retry_period", "must be shorter than renew_deadline"))
        if ha.enabled and ha.store == "sqlite":
            problems.append(
                custom_error(
                    "store", "two replicas cannot share a SQLite file; use store: kubernetes"
                )
            )
        if problems:
            raise ValidationError.from_exception_data(cls.__name__, problems)
        return ha

    def namespace(self, environ: Mapping[str, str] | None = None) -> str:
        """The Lease's namespace: ``lease_namespace``, ``$POD_NAMESPACE`` or ``default``."""
        env = os.environ if environ is None else environ
        return self.lease_namespace or env.get("POD_NAMESPACE") or "default"

    def incidents_namespace(self, environ: Mapping[str, str] | None = None) -> str:
        """Where DriftIncident objects live: ``store_namespace``, else :meth:`namespace`."""
        return self.store_namespace or self.namespace(environ)

    def holder(self, environ: Mapping[str, str] | None = None) -> str:
        """This replica's identity: ``identity``, ``$POD_NAME``, or the host name and the
        process id (two processes on one host must never share an identity: both would
        think they hold the Lease)."""
        env = os.environ if environ is None else environ
        return self.identity or env.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"
