#!/usr/bin/env bash
# Deploys this checkout to Railway with the Railway CLI (`railway up`): the ETL, the API or both.
# Each Railway service builds its own Dockerfile from the repository root, as its config file
# (infrastructure/railway/etl.json, infrastructure/railway/api.json) says; docs/deployment-guide.md
# explains the one-time setup.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ETL_SERVICE="${RAILWAY_ETL_SERVICE:-etl-service}"
API_SERVICE="${RAILWAY_API_SERVICE:-api-service}"

usage() {
  cat <<EOF
Usage: scripts/deploy.sh [options] {etl|api|all}

Uploads the repository to Railway and deploys the named service(s) with \`railway up\`.
\`all\` deploys the ETL first: the API's healthcheck (/ready) only passes once a snapshot exists.
Without --detach, \`all\` runs in --ci mode (each upload returns when its build ends).

Options:
  -e, --environment NAME   Railway environment (default: the one chosen with \`railway link\`)
  -d, --detach             return after the upload instead of streaming the build and deploy logs
      --ci                 stream only the build logs and exit with the build's status
  -h, --help               show this help

Environment:
  RAILWAY_ETL_SERVICE      Railway service name of the ETL (default: etl-service)
  RAILWAY_API_SERVICE      Railway service name of the API (default: api-service)
  RAILWAY_TOKEN            a project token, for CI (then \`railway login\`/\`railway link\` are not needed)

One-time setup on a workstation:
  npm install -g @railway/cli     # or: brew install railway
  railway login
  railway link                    # pick the project (and environment) that holds both services
EOF
}

die() { echo "deploy.sh: $*" >&2; exit 1; }

target=""
up_args=()
mode=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    -e|--environment)
      [[ $# -ge 2 ]] || die "$1 needs a value"
      up_args+=(--environment "$2"); shift 2 ;;
    -d|--detach) mode="--detach"; shift ;;
    --ci) mode="--ci"; shift ;;
    etl|api|all)
      [[ -z "$target" ]] || die "name one target (etl, api or all)"
      target="$1"; shift ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
if [[ -z "$target" ]]; then
  usage >&2
  die "name a target: etl, api or all"
fi

if [[ "$target" == all && -z "$mode" ]]; then
  mode="--ci"  # attached `railway up` keeps streaming the deploy logs and would never return
fi
if [[ -n "$mode" ]]; then
  up_args+=("$mode")
fi

if ! command -v railway >/dev/null 2>&1; then
  cat >&2 <<'EOF'
deploy.sh: the Railway CLI (`railway`) is not installed or not on PATH.
Install it with one of:
  npm install -g @railway/cli
  brew install railway
  cargo install railwayapp --locked
(see https://docs.railway.com/guides/cli), then run `railway login` and `railway link` once.
EOF
  exit 1
fi

deploy() {  # service name
  # ${arr[@]+...}: an empty array under `set -u` breaks bash 3.2 (macOS) otherwise.
  echo "deploy.sh: railway up --service $1 ${up_args[*]+${up_args[*]}}" >&2
  if ! railway up --service "$1" ${up_args[@]+"${up_args[@]}"}; then
    die "railway up --service $1 failed (logged in? \`railway login\`; project linked? \`railway link\`; service named $1?)"
  fi
}

cd "$ROOT"
case "$target" in
  etl) deploy "$ETL_SERVICE" ;;
  api) deploy "$API_SERVICE" ;;
  all) deploy "$ETL_SERVICE"; deploy "$API_SERVICE" ;;
esac
