"""The admission webhook's TLS listener (``driftwatch.server.admission``): it answers
AdmissionReviews over HTTPS only, refuses bodies that are not AdmissionReviews with a JSON
400, re-reads a renewed certificate without a restart (keeping the one in use when the new
files are broken), and says which file it cannot load. Certificates are made here
(trustme)."""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme

from driftwatch.drift.admission import ADMISSION_API_VERSION
from driftwatch.policy import NetworkPolicy
from driftwatch.rules import RuleEngine, RuleOptions
from driftwatch.server.admission import ADMISSION_PATH, AdmissionBackend, AdmissionServer
from driftwatch.server.app import ServerError
from driftwatch.settings.admission import AdmissionSettings
from tests.aio import async_test
from tests.test_admission_decision import DESIRED, as_served, git_doc, review, world_open

ENGINE = RuleEngine(RuleOptions())


def write_cert(ca: trustme.CA, directory: Path) -> tuple[Path, Path]:
    leaf = ca.issue_cert("127.0.0.1")
    cert, key = directory / "tls.crt", directory / "tls.key"
    for i, blob in enumerate(leaf.cert_chain_pems):
        blob.write_to_path(str(cert), append=i > 0)
    leaf.private_key_pem.write_to_path(str(key))
    return cert, key


def later(*paths: Path, by: float = 10) -> None:
    """Move the files' modification times on (a file system may count whole seconds)."""
    for path in paths:
        stamp = path.stat().st_mtime + by
        os.utime(path, (stamp, stamp))


def server_for(cert: Path, key: Path, **extra: Any) -> AdmissionServer:
    settings = AdmissionSettings(listen="127.0.0.1:0", cert_file=cert, key_file=key, **extra)
    return AdmissionServer(settings, reload_interval=3600)


def backend(loaded: bool = True) -> AdmissionBackend:
    def lookup(namespace: str, name: str) -> NetworkPolicy | None:
        return DESIRED.get((namespace, name))

    return AdmissionBackend(desired=lambda: lookup if loaded else None, engine=lambda: ENGINE)


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@async_test
async def test_reviews_are_answered_over_https_and_anything_else_is_a_json_error(
    tmp_path: Path,
) -> None:
    ca = trustme.CA()
    server = server_for(*write_cert(ca, tmp_path))
    await server.start(backend())
    url = server.url + ADMISSION_PATH
    assert url.startswith("https://127.0.0.1:")
    try:
        async with aiohttp.ClientSession() as http:
            tls = client_context(ca)
            body = review("UPDATE", as_served(world_open()), as_served(git_doc()))
            async with http.post(url, json=body, ssl=tls) as r:
                assert r.status == 200
                answer = await r.json()
            assert answer["apiVersion"] == ADMISSION_API_VERSION
            assert answer["response"]["uid"] == body["request"]["uid"]
            assert answer["response"]["allowed"] is False
            async with http.post(url, data=b"{not json", ssl=tls) as r:
                assert r.status == 400
                assert "not JSON" in (await r.json())["error"]
            async with http.post(url, json={"kind": "Pod"}, ssl=tls) as r:
                assert r.status == 400
                assert "not an AdmissionReview v1 request" in (await r.json())["error"]
            async with http.get(url, ssl=tls) as r:
                assert r.status == 405
                assert (await r.json())["error"] == "method not allowed"
            with pytest.raises(aiohttp.ClientError):  # no plain HTTP on the webhook's port
                async with http.post(url.replace("https", "http"), json=body) as r:
                    await r.read()
    finally:
        await server.close()
    assert not server.listening.is_set()


@async_test
async def test_before_the_desired_state_is_loaded_every_write_is_allowed_with_a_warning(
    tmp_path: Path,
) -> None:
    ca = trustme.CA()
    server = server_for(*write_cert(ca, tmp_path))
    await server.start(backend(loaded=False))
    try:
        async with aiohttp.ClientSession() as http:
            body = review("UPDATE", as_served(world_open()), as_served(git_doc()))
            url = server.url + ADMISSION_PATH
            async with http.post(url, json=body, ssl=client_context(ca)) as r:
                response = (await r.json())["response"]
        assert response["allowed"] is True
        assert "not loaded" in response["warnings"][0]
    finally:
        await server.close()


@async_test
async def test_a_renewed_certificate_is_used_without_a_restart(tmp_path: Path) -> None:
    old_ca, new_ca = trustme.CA(), trustme.CA()
    cert, key = write_cert(old_ca, tmp_path)
    server = server_for(cert, key)
    await server.start(backend())
    url = server.url + ADMISSION_PATH
    body = review("CREATE", git_doc())
    try:
        assert server.reload_if_changed() is False  # nothing changed
        write_cert(new_ca, tmp_path)
        later(cert, key)
        assert server.reload_if_changed() is True
        async with aiohttp.ClientSession() as http:
            async with http.post(url, json=body, ssl=client_context(new_ca)) as r:
                assert r.status == 200
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                async with http.post(url, json=body, ssl=client_context(old_ca)) as r:
                    await r.read()
        # A broken renewal (a key that does not match) keeps the certificate in use.
        key.write_text(new_ca.issue_cert("127.0.0.1").private_key_pem.bytes().decode())
        later(key, by=20)
        assert server.reload_if_changed() is False
        async with (
            aiohttp.ClientSession() as http,
            http.post(url, json=body, ssl=client_context(new_ca)) as r,
        ):
            assert r.status == 200
    finally:
        await server.close()


@async_test
async def test_a_missing_certificate_is_a_server_error_naming_it(tmp_path: Path) -> None:
    server = server_for(tmp_path / "absent.crt", tmp_path / "absent.key")
    with pytest.raises(ServerError, match=r"absent\.crt"):
        await server.start(backend())
    assert not server.listening.is_set()
