"""Runs scim2-tester, a third-party SCIM 2.0 compliance checker, against a Gatehouse SCIM
endpoint and prints one JSON line per check: status, title, resource type, reason.

Environment: SCIM_BASE_URL (the IdP's .../scim/v2 URL) and SCIM_TOKEN (its bearer secret).
The Rust test crates/gatehouse/tests/scim_compliance.rs starts the gateway and judges the
results; this script only reports them (exit 0 unless the checker itself cannot run).
"""

import json
import os
import sys

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import check_server


def main() -> int:
    base = os.environ["SCIM_BASE_URL"].rstrip("/")
    token = os.environ["SCIM_TOKEN"]
    http = httpx2.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    client = SyncSCIMClient(http)
    results = check_server(client, raise_exceptions=False)
    for r in results:
        print(
            json.dumps(
                {
                    "status": r.status.name,
                    "title": r.title,
                    "resource_type": r.resource_type,
                    "tags": sorted(r.tags or []),
                    "reason": None if r.reason is None else str(r.reason)[:500],
                }
            )
        )
    print(f"{len(results)} checks reported", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
