"""High availability with two real ``driftwatch run`` processes against the sandbox.

Both replicas watch and compare; only the Lease holder records incidents (as DriftIncident
objects) and notifies. The leader is killed with SIGKILL in the middle of a burst of
changes; the follower takes over within the lease duration, catches up, and delivers what
the dead leader left pending. In the end every incident has reached the PagerDuty and
webhook stand-ins, each under one dedup key / one webhook id: none lost, none announced
twice (issue #6).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftwatch.sandbox import SandboxThread
from driftwatch.sandbox.kubectl import Kubectl
from tests.standins.pagerduty import PagerDutyStandIn
from tests.standins.webhook import WebhookStandIn
from tests.test_daemon import EXAMPLES, ROOT, needs_kubectl
from tests.test_notify_restart import DaemonProcess

CRD = ROOT / "config" / "kubernetes" / "crd-driftincident.yaml"
"""Installed in the sandbox as in a real cluster (``kubectl apply -k config/kubernetes``)."""
LEASE = {"lease_duration": "2s", "renew_deadline": "1500ms", "retry_period": "250ms"}
BURST = 40
"""Unmanaged policies created (one incident each): half before the kill, half after."""


def unmanaged(first: int, count: int) -> str:
    """``count`` NetworkPolicies Git does not know (each an ``unmanaged`` drift)."""
    docs = [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": f"stray-{n:03d}", "namespace": "shop"},
            "spec": {
                "podSelector": {"matchLabels": {"app": f"stray-{n}"}},
                "ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}],
            },
        }
        for n in range(first, first + count)
    ]
    return yaml.safe_dump_all(docs)


def config(tmp_path: Path, kubeconfig: Path, identity: str, services: dict[str, Any]) -> Path:
    path = tmp_path / f"{identity}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "cluster": {"name": "test", "kubeconfig": str(kubeconfig)},
                "desired": {"path": str(EXAMPLES)},
                "notifiers": [s.receiver_config(n) for n, s in services.items()],
                "ha": {
                    "enabled": True,
                    "store": "kubernetes",
                    "identity": identity,
                    "lease_namespace": "default",
                    **LEASE,
                },
                "log": {"format": "json"},
            }
        )
    )
    return path


@pytest.mark.kubectl
@pytest.mark.slow
@needs_kubectl
def test_the_follower_takes_over_from_a_killed_leader_and_nothing_is_lost_or_repeated(
    tmp_path: Path,
) -> None:
    with SandboxThread(seed=[EXAMPLES, CRD], bookmark_interval=0.2) as sandbox:
        kubeconfig = sandbox.kubeconfig_path(tmp_path)
        kubectl = Kubectl(kubeconfig, tmp_path / "home")

        async def apply(text: str) -> None:
            manifest = tmp_path / f"burst-{time.monotonic_ns()}.yaml"
            manifest.write_text(text)
            await asyncio.to_thread(kubectl.run, "apply", "-f", str(manifest))

        async def scenario() -> None:
            async with PagerDutyStandIn() as pagerduty, WebhookStandIn() as webhook:
                services: dict[str, Any] = {"pagerduty": pagerduty, "webhook": webhook}
                a = await DaemonProcess.start(config(tmp_path, kubeconfig, "a", services))
                b: DaemonProcess | None = None
                try:
                    await a.ready()
                    await a.until(lambda: bool(a.events("caught up as leader")), "a leads", 10)
                    b = await DaemonProcess.start(config(tmp_path, kubeconfig, "b", services))
                    await b.ready()
                    follower = b

                    await apply(unmanaged(0, BURST // 2))
                    # Kill the leader in the middle of its work: some incidents recorded,
                    # some delivered, the rest of the burst not yet seen.
                    await a.until(lambda: len(a.events("incident opened")) >= 5, "a at work", 15)
                    second_half = asyncio.create_task(apply(unmanaged(BURST // 2, BURST // 2)))
                    await a.kill()
                    killed = time.monotonic()
                    await second_half
                    await follower.until(
                        lambda: bool(follower.events("caught up as leader")), "b takes over", 10
                    )
                    took_over = time.monotonic() - killed

                    expected = {f"test/shop/stray-{n:03d}#1" for n in range(BURST)}

                    def all_delivered() -> bool:
                        return {d.incident_id for d in webhook.delivered} >= expected and {
                            d.incident_id for d in pagerduty.delivered
                        } >= expected

                    await follower.until(all_delivered, "every incident delivered", 30)
                    await asyncio.sleep(1.5)  # room for a late duplicate
                finally:
                    await a.stop()
                    if b is not None:
                        await b.stop()

                print(f"b took over {took_over:.2f} s after a was killed")
                assert took_over <= 2.0 + 2.0  # the lease duration, plus the catch-up
                # Every incident of the burst, announced once: one webhook id and one dedup
                # key each (a redelivery by the new leader would reuse them).
                webhook_ids: dict[str, set[str]] = defaultdict(set)
                for d in webhook.delivered:
                    assert d.kind == "opened", d
                    webhook_ids[d.incident_id].add(d.raw["headers"]["webhook-id"])
                assert set(webhook_ids) == expected
                assert {i: len(ids) for i, ids in webhook_ids.items() if len(ids) != 1} == {}
                triggers = Counter(d.incident_id for d in pagerduty.delivered)
                assert set(triggers) == expected
                assert all(set(pagerduty.actions_for(i)) == {"trigger"} for i in expected)
                # A notification in flight when the leader died (at most max_in_flight, 4,
                # per receiver) may be sent again by the new leader, under the same ids.
                resent = {
                    "pagerduty": sum(triggers.values()) - len(expected),
                    "webhook": len(webhook.delivered) - len(expected),
                }
                print(f"sent again after the takeover (same ids): {resent}")
                assert all(0 <= n <= 4 for n in resent.values()), resent
                assert pagerduty.rejected == []
                # b recorded and sent nothing while it followed: all its work came after it
                # won the Lease.
                assert b is not None
                names = [e.get("event") for e in b.logs]
                took = names.index("started leading")
                work = ("incident opened", "notification delivered")
                assert [n for n in names[:took] if n in work] == []
                assert [n for n in names[took:] if n in work], "b did the rest"

        asyncio.run(asyncio.wait_for(scenario(), timeout=90))
