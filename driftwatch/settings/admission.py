"""The ``admission:`` section: driftwatch as a ValidatingAdmissionWebhook (issue #9, "Block").

With it, ``driftwatch run`` serves ``POST /admission/validate`` over TLS on a listener of
its own (the API server calls webhooks over HTTPS only) and answers each NetworkPolicy
write the API server sends it (see ``config/kubernetes/validatingwebhookconfiguration.yaml``):
a write that would make a policy of a protected namespace differ from Git is refused
(``enforce: deny``) or allowed with a warning (``enforce: warn``); the identity that
applies Git is never stopped. :meth:`AdmissionSettings.to_policy` turns the section into
the plain value the pure decision (:mod:`driftwatch.drift.admission`) takes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from driftwatch.drift.admission import AdmissionPolicy, GitIdentities
from driftwatch.settings.server import parse_listen
from driftwatch.values.secrets import resolve_path

__all__ = ["AdmissionSettings", "GitIdentitySettings", "service_account_username"]

_SERVICE_ACCOUNT = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?):([a-z0-9]([-.a-z0-9]*[a-z0-9])?)$")


def service_account_username(text: str) -> str:
    """``argocd:argocd-application-controller`` ->
    ``system:serviceaccount:argocd:argocd-application-controller`` (the user name the API
    server reports for a service account's requests)."""
    return f"system:serviceaccount:{text}"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GitIdentitySettings(_Model):
    """The identities that apply Git (Argo CD, Flux, a CI job): their writes are always
    allowed, even when they make a policy differ from the desired state driftwatch has
    loaded (Git may be a commit ahead of it)."""

    service_accounts: list[str] = Field(default_factory=list)
    """Service accounts as ``namespace:name`` (``argocd:argocd-application-controller``,
    ``flux-system:kustomize-controller``): requests authenticated as
    ``system:serviceaccount:<namespace>:<name>``."""
    usernames: list[str] = Field(default_factory=list)
    """User names as the API server reports them (``request.userInfo.username``), e.g. a CI
    job's ``ci-deployer`` or a full ``system:serviceaccount:...`` name."""
    field_managers: list[str] = Field(default_factory=list)
    """Field managers (``request.options.fieldManager``): ``kubectl apply
    --field-manager=argocd-controller``, or Flux's ``kustomize-controller``. Any client
    can choose its field manager: prefer service accounts or user names where you can."""

    @field_validator("service_accounts")
    @classmethod
    def _service_accounts(cls, value: list[str]) -> list[str]:
        for text in value:
            if not _SERVICE_ACCOUNT.fullmatch(text):
                raise ValueError(
                    f"{text!r} is not namespace:name (e.g. argocd:argocd-application-controller)"
                )
        return value

    @field_validator("usernames", "field_managers")
    @classmethod
    def _not_empty(cls, value: list[str]) -> list[str]:
        if any(not text.strip() for text in value):
            raise ValueError("must not hold an empty name")
        return value

    def to_identities(self) -> GitIdentities:
        users = {*self.usernames, *map(service_account_username, self.service_accounts)}
        return GitIdentities(frozenset(users), frozenset(self.field_managers))


class AdmissionSettings(_Model):
    """The ``admission:`` section: the validating webhook (absent: none)."""

    listen: str = "0.0.0.0:8443"
    """``host:port`` of the webhook's TLS listener (the API server must reach it: in a Pod,
    ``0.0.0.0:8443`` behind the Service the ValidatingWebhookConfiguration names)."""
    cert_file: Path
    """The server certificate (PEM, its chain after it), valid for the Service's DNS name
    ``<service>.<namespace>.svc``; re-read when it changes on disk (cert-manager renewals)."""
    key_file: Path
    """The certificate's private key (PEM)."""
    enforce: Literal["deny", "warn"] = "deny"
    """``deny``: refuse a write that would make a policy differ from Git, naming its source
    in Git and the risk; ``warn``: allow it, with that text as a warning kubectl prints."""
    namespaces: list[str] = Field(default_factory=lambda: ["*"])
    """Globs of the protected namespaces (default: every namespace the webhook is sent);
    writes elsewhere are allowed. The ``ignore:`` rules apply too."""
    git_identities: GitIdentitySettings = Field(default_factory=GitIdentitySettings)
    """Who applies Git: never stopped."""

    @field_validator("listen")
    @classmethod
    def _valid_listen(cls, value: str) -> str:
        parse_listen(value)
        return value.strip()

    @field_validator("cert_file", "key_file")
    @classmethod
    def _resolve(cls, value: Path, info: ValidationInfo) -> Path:
        return resolve_path(value, info)

    @field_validator("namespaces")
    @classmethod
    def _globs(cls, value: list[str]) -> list[str]:
        if any(not glob.strip() for glob in value):
            raise ValueError("must not hold an empty glob")
        return value

    @property
    def address(self) -> tuple[str, int]:
        """``listen`` as (host, port), brackets removed."""
        return parse_listen(self.listen)

    def to_policy(self) -> AdmissionPolicy:
        return AdmissionPolicy(
            enforce=self.enforce,
            namespaces=tuple(self.namespaces),
            identities=self.git_identities.to_identities(),
        )
