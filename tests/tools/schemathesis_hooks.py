"""Guestpass' error contract as schemathesis checks (scripts/fuzz-graphql loads this file).

Every well-formed request is answered HTTP 200; every error carries a stable `extensions.code`; no
error is an internal one (the `INTERNAL` code or the generic message that hides internals).
"""
import schemathesis


@schemathesis.check
def guestpass_error_contract(ctx, response, case):
    if response.status_code != 200:
        raise AssertionError(f"HTTP {response.status_code} to a well-formed request")
    body = response.json()
    for error in body.get("errors") or []:
        code = (error.get("extensions") or {}).get("code")
        if not code:
            raise AssertionError(f"an error without extensions.code: {error}")
        message = error.get("message", "")
        if code == "INTERNAL" or "internal error" in message.lower():
            raise AssertionError(f"an internal error: {error}")
    return None
