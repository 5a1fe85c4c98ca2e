"""Security headers for every console response.

The Content-Security-Policy allows scripts, styles and fetches from the API's own origin only,
plus the Auth0 tenant when the console logs in through it (the SDK fetches /oauth/token there and
renews tokens in a hidden iframe). No inline script, no eval, no other origin: a page that holds a
bearer token in memory must not run or send anything it did not ship.
"""

from __future__ import annotations

from analytics_api.config import ApiSettings


def auth0_origin(settings: ApiSettings) -> str | None:
    if settings.auth0_console_client_id and settings.auth0_domain:
        return f"https://{settings.auth0_domain}"
    return None


def content_security_policy(settings: ApiSettings) -> str:
    tenant = auth0_origin(settings)
    extra = f" {tenant}" if tenant else ""
    directives = [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        # Style *attributes* only (not <style> elements or sheets): CodeMirror writes a few
        # (tab-size on the editor, the completion box's position). An attribute cannot run script,
        # and with img-src/font-src/connect-src pinned it cannot send anything anywhere either.
        "style-src-attr 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self'",
        f"connect-src 'self'{extra}",
        f"frame-src {tenant}" if tenant else "frame-src 'none'",
        "worker-src 'none'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
    return "; ".join(directives)


def security_headers(settings: ApiSettings) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(settings),
        "X-Content-Type-Options": "nosniff",
        # The share link carries SQL in the URL; never hand it to another site as a Referer.
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
    }
