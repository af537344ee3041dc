"""Round trip of identity providers through the official Cloudflare Python SDK.

Run by crates/gatehouse/tests/sdk_python.rs against a real `gatehouse serve`, with
SDK_BASE_URL (…/client/v4), SDK_API_TOKEN and SDK_READ_ONLY_TOKEN in the environment.
Exits non-zero on the first failed check.
"""

import os
import sys

import cloudflare
from cloudflare import Cloudflare

BASE_URL = os.environ["SDK_BASE_URL"]
TOKEN = os.environ["SDK_API_TOKEN"]
READ_ONLY_TOKEN = os.environ["SDK_READ_ONLY_TOKEN"]

TENANT = "8ce83790-a293-4d7b-9f1e-1a2b3c4d5e6f"
CLIENT = "c37d0163-d4a4-43a8-8b1e-1a2b3c4d5e6f"

checks = 0


def check(cond, what):
    global checks
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    checks += 1
    print(f"ok: {what}")


def main():
    client = Cloudflare(api_token=TOKEN, base_url=BASE_URL, max_retries=0)

    verify = client.user.tokens.verify()
    check(verify.status == "active", "token verifies as active")

    accounts = list(client.accounts.list())
    check(len(accounts) == 1 and len(accounts[0].id) == 32, "one 32-hex account")
    account_id = accounts[0].id

    created = client.zero_trust.identity_providers.create(
        account_id=account_id,
        name="Entra ID",
        type="azureAD",
        config={
            "client_id": CLIENT,
            "client_secret": "Qx8~the-secret-value",
            "directory_id": TENANT,
            "support_groups": True,
            "pkce_enabled": True,
            "claims": ["employeeId"],
            "email_claim_name": "upn",
        },
        scim_config={"enabled": True, "user_deprovision": True, "identity_update_behavior": "automatic"},
    )
    idp_id = created.id
    check(created.type == "azureAD" and created.name == "Entra ID", "create returns the azureAD IdP")
    check(created.config.support_groups is True, "support_groups kept")
    check(created.config.directory_id == TENANT, "directory_id kept")
    check(getattr(created.config, "client_secret", None) in (None, ""), "client_secret not returned")
    secret = created.scim_config.secret
    check(secret is not None and len(secret) > 40, "SCIM secret returned on enabling")
    check(created.scim_config.scim_base_url.endswith(f"/populations/{idp_id}/scim/v2"), "scim_base_url derived")
    check(created.config.redirect_url.endswith("/cdn-cgi/access/callback"), "redirect_url derived")

    fetched = client.zero_trust.identity_providers.get(idp_id, account_id=account_id)
    check(fetched.id == idp_id and fetched.name == "Entra ID", "get returns it")
    check(fetched.scim_config.secret is None, "SCIM secret not returned on get")
    check(fetched.scim_config.enabled is True and fetched.scim_config.user_deprovision is True, "scim_config kept")

    client.zero_trust.identity_providers.create(
        account_id=account_id,
        name="Plain OIDC",
        type="oidc",
        config={
            "client_id": "plain",
            "client_secret": "s3cret",
            "auth_url": "https://idp.example.com/authorize",
            "token_url": "https://idp.example.com/token",
            "certs_url": "https://idp.example.com/keys",
            "scopes": ["openid", "email", "profile"],
        },
    )
    listed = list(client.zero_trust.identity_providers.list(account_id=account_id, per_page=1))
    check(sorted(i.name for i in listed) == ["Entra ID", "Plain OIDC"], "list pages through both IdPs")
    check(all(getattr(i.scim_config, "secret", None) is None for i in listed if i.scim_config), "no secret in list")
    scim_only = list(client.zero_trust.identity_providers.list(account_id=account_id, scim_enabled="true"))
    check([i.id for i in scim_only] == [idp_id], "scim_enabled filter")

    updated = client.zero_trust.identity_providers.update(
        idp_id,
        account_id=account_id,
        name="Entra ID (prod)",
        type="azureAD",
        config={"client_id": CLIENT, "directory_id": TENANT, "support_groups": False, "prompt": "login"},
        scim_config={"enabled": True, "user_deprovision": True, "seat_deprovision": True},
    )
    check(updated.name == "Entra ID (prod)", "update (PUT) renames")
    check(updated.config.support_groups is False and updated.config.prompt == "login", "update replaces config")
    check(updated.scim_config.secret is None, "SCIM secret not returned again when already enabled")
    check(updated.scim_config.seat_deprovision is True, "seat_deprovision set")

    try:
        client.zero_trust.identity_providers.create(
            account_id=account_id, name="bad", type="azureAD", config={"client_id": CLIENT, "client_secret": "x"}
        )
        check(False, "missing directory_id refused")
    except cloudflare.BadRequestError as e:
        check(e.status_code == 400 and "directory_id" in str(e), "missing directory_id refused with 400")

    read_only = Cloudflare(api_token=READ_ONLY_TOKEN, base_url=BASE_URL, max_retries=0)
    check(len(list(read_only.zero_trust.identity_providers.list(account_id=account_id))) == 2, "read-only token reads")
    try:
        read_only.zero_trust.identity_providers.delete(idp_id, account_id=account_id)
        check(False, "read-only token refused on delete")
    except cloudflare.PermissionDeniedError as e:
        check(e.status_code == 403, "read-only token refused on delete with 403")

    deleted = client.zero_trust.identity_providers.delete(idp_id, account_id=account_id)
    check(deleted.id == idp_id, "delete returns the id")
    try:
        client.zero_trust.identity_providers.get(idp_id, account_id=account_id)
        check(False, "deleted IdP is gone")
    except cloudflare.NotFoundError:
        check(True, "deleted IdP is gone (404)")

    org = client.zero_trust.organizations.list(account_id=account_id)
    check(org.session_duration == "24h", "organization readable")
    org = client.zero_trust.organizations.update(account_id=account_id, name="Acme", session_duration="12h")
    check(org.name == "Acme" and org.session_duration == "12h", "organization update")

    print(f"{checks} checks passed")


if __name__ == "__main__":
    main()
