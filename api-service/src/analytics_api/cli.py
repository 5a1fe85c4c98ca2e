"""`analytics-api`: serve | issuer-init DIR | token | check-config."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from analytics_shared.errors import ConfigError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="analytics-api", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run Gunicorn with uvicorn workers on 0.0.0.0:$PORT (WEB_CONCURRENCY workers)")
    sub.add_parser("check-config", help="validate the environment and the whitelist, then exit")
    init = sub.add_parser("issuer-init", help="create (or keep) a local RSA token issuer and its JWKS file; "
                                              "prints the AUTH0_* settings that make the API trust it")
    init.add_argument("directory", type=Path)
    token = sub.add_parser("token", help="mint a token from a local issuer")
    token.add_argument("--issuer-dir", type=Path, required=True)
    token.add_argument("--sub", default="dev-user")
    token.add_argument("--scope", default="read:analytics read:schema")
    token.add_argument("--audience", default=None, help="default: AUTH0_API_AUDIENCE or the local audience")
    token.add_argument("--ttl", type=int, default=86400, help="seconds until expiry")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except ConfigError as exc:
        sys.stderr.write(f"analytics-api: {exc.message}\n")
        return 2


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "serve":
        from analytics_api.config import get_settings
        from analytics_api.services import build_services

        build_services(get_settings())  # fail here, once, with one line, not in every worker
        os.execvp(sys.executable, [sys.executable, "-m", "gunicorn", "-c", "python:analytics_api.gunicorn_conf"])
    if args.command == "check-config":
        from analytics_api.config import get_settings
        from analytics_api.services import build_services

        services = build_services(get_settings())
        sys.stdout.write(f"ok: {len(services.whitelist.tables)} tables, {len(services.whitelist.queries)} named queries\n")
        return 0
    from analytics_api.auth.local_issuer import LOCAL_AUDIENCE, LocalIssuer

    if args.command == "issuer-init":
        issuer = LocalIssuer.load_or_create(args.directory)
        jwks = (args.directory / "jwks.json").resolve()
        sys.stdout.write(f"export AUTH0_JWKS_URL=file://{jwks}\nexport AUTH0_ISSUER={issuer.issuer}\n"
                         f"export AUTH0_API_AUDIENCE={LOCAL_AUDIENCE}\n")
        return 0
    issuer = LocalIssuer.load(args.issuer_dir)
    audience = args.audience or os.environ.get("AUTH0_API_AUDIENCE") or LOCAL_AUDIENCE
    sys.stdout.write(issuer.mint(sub=args.sub, scopes=args.scope, audience=audience, ttl_seconds=args.ttl) + "\n")
    return 0
