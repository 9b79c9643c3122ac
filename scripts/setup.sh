#!/usr/bin/env bash
# Install everything Warden needs on a fresh Debian machine with Python 3.11: Debian packages
# (Prometheus, Alertmanager, the venv module, libpython for Triton's Python backend stub), then a
# virtual environment in .venv with the project and its test extras. Idempotent and quick when
# nothing changed (the venv is reinstalled only when pyproject.toml changes).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
need_apt=()
command -v prometheus >/dev/null || need_apt+=(prometheus)
command -v prometheus-alertmanager >/dev/null || need_apt+=(prometheus-alertmanager)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)            # dashboard browser test
[ -x /usr/bin/chromedriver ] || need_apt+=(chromium-driver)
"$PY" -c "import venv, ensurepip" 2>/dev/null || need_apt+=(python3-venv)
libdir=$("$PY" -c "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))")
ldlib=$("$PY" -c "import sysconfig; print(sysconfig.get_config_var('LDLIBRARY'))")
if [ ! -e "$libdir/$ldlib" ] && ! ldconfig -p | grep -q "libpython3.11.so.1.0"; then
  need_apt+=(libpython3.11)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

stamp=.venv/.warden-installed
want=$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing Python packages into .venv (first run takes a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[test]'
  echo "$want" > "$stamp"
fi
