#!/usr/bin/env bash
# Installs uv (into ./.tools, not system-wide) and the locked workspace into ./.venv.
# Sourced by demo.sh and test.sh so a fresh machine with only Python 3.11+ needs nothing else.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
UV_VERSION="0.13.9"
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "analytics-platform needs Python 3.11 or newer (found: $("$PYTHON" --version 2>&1))" >&2
  exit 1
fi
if [ ! -x "$ROOT/.tools/bin/uv" ] || [ "$("$ROOT/.tools/bin/uv" --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  "$PYTHON" -m venv "$ROOT/.tools"
  "$ROOT/.tools/bin/pip" install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi
UV="$ROOT/.tools/bin/uv"
# --frozen: install exactly what uv.lock says; a stale lock is an error, not a silent re-resolve.
"$UV" sync --frozen --all-packages --quiet --directory "$ROOT"
export UV
