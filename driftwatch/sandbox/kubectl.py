"""Driving the real ``kubectl`` against a sandbox, for tests and demos.

Each :class:`Kubectl` has its own ``HOME`` (so kubectl's discovery and OpenAPI caches never
mix sandboxes or touch the user's) and the sandbox's kubeconfig; nothing else from the
caller's kubectl setup leaks in.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["Kubectl", "KubectlError", "kubectl_path"]


def kubectl_path() -> str | None:
    """The kubectl on PATH, or None."""
    return shutil.which("kubectl")


class KubectlError(Exception):
    """kubectl exited non-zero; carries its exit status and output."""

    def __init__(self, args: list[str], result: subprocess.CompletedProcess[str]) -> None:
        self.result = result
        self.returncode = result.returncode
        self.stdout = result.stdout
        self.stderr = result.stderr
        super().__init__(
            f"kubectl {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}"
        )


class Kubectl:
    """``kubectl`` with a given kubeconfig and a private home directory."""

    def __init__(
        self,
        kubeconfig: str | os.PathLike[str],
        home: str | os.PathLike[str],
        *,
        binary: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        found = binary or kubectl_path()
        if found is None:
            raise FileNotFoundError("kubectl is not on PATH")
        self.binary = found
        self.kubeconfig = Path(kubeconfig)
        self.home = Path(home)
        self.home.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout

    def env(self, **extra: str) -> dict[str, str]:
        keep = ("PATH", "LANG", "LC_ALL", "TZ", "SYSTEMROOT", "TMPDIR")
        env = {k: v for k, v in os.environ.items() if k in keep}
        env.update(
            HOME=str(self.home),
            KUBECONFIG=str(self.kubeconfig),
            KUBECACHEDIR=str(self.home / ".kube" / "cache"),
        )
        env.update(extra)
        return env

    def run(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl; raise :class:`KubectlError` on a non-zero exit when ``check``."""
        result = subprocess.run(
            [self.binary, *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=self.timeout,
            env=env or self.env(),
            check=False,
        )
        if check and result.returncode != 0:
            raise KubectlError(list(args), result)
        return result

    def json(self, *args: str) -> Any:
        """Run ``kubectl ARGS -o json`` and parse the output."""
        return json.loads(self.run(*args, "-o", "json").stdout)

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """Start kubectl in the background (for ``get -w``); the caller kills it."""
        return subprocess.Popen(
            [self.binary, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env or self.env(),
        )
