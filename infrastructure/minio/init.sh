#!/bin/sh
# minio-init (docker-compose.yml): creates the snapshot bucket and one MinIO user per service with a
# least-privilege policy. Idempotent: safe on every `docker compose up`.
set -eu

: "${MINIO_URL:?}" "${MINIO_BUCKET:?}" "${MINIO_ROOT_USER:?}" "${MINIO_ROOT_PASSWORD:?}"
: "${MINIO_ETL_SECRET_KEY:?set MINIO_ETL_SECRET_KEY in .env}" "${MINIO_API_SECRET_KEY:?set MINIO_API_SECRET_KEY in .env}"
HERE="${0%/*}"  # no dirname: keep to the shell built-ins the mc image surely has

mc alias set local "$MINIO_URL" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null
mc mb --ignore-existing "local/$MINIO_BUCKET"

# Policies name the bucket `analytics`; refuse to apply them to another bucket silently.
if [ "$MINIO_BUCKET" != "analytics" ]; then
  echo "minio-init: the policies in $HERE grant access to bucket 'analytics', not '$MINIO_BUCKET'" >&2
  exit 1
fi
mc admin policy create local analytics-etl "$HERE/etl-policy.json"
mc admin policy create local analytics-api "$HERE/api-policy.json"

# `user add` on an existing user only updates its secret key.
mc admin user add local etl-service "$MINIO_ETL_SECRET_KEY"
mc admin user add local api-service "$MINIO_API_SECRET_KEY"

attach() {  # policy user; attaching twice is reported as "already in effect", which is fine
  if ! out="$(mc admin policy attach local "$1" --user "$2" 2>&1)"; then
    case "$out" in
      *already*) ;;
      *) echo "$out" >&2; exit 1 ;;
    esac
  fi
}
attach analytics-etl etl-service
attach analytics-api api-service
echo "minio-init: bucket $MINIO_BUCKET ready; users etl-service (read/write) and api-service (read-only)"
