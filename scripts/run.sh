#!/usr/bin/env bash
# The README's first command: installs what mailout needs, builds it, and
# starts its main job, `mailout serve`, on the embedded default: the data
# folder ./mailout-data (SQLite database and the key file), the admin panel and the
# HTTP API on http://127.0.0.1:8025, delivery of queued mail.
#   MAILOUT_HOME  another data folder      MAILOUT_HTTP  another address
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
if [ -f build/build.ninja ]; then meson setup --reconfigure build >/dev/null; else meson setup build >/dev/null; fi
meson compile -C build >/dev/null
home="${MAILOUT_HOME:-$PWD/mailout-data}"
# A newcomer gets a sandbox account (letters stay in the data folder) until they set up theirs.
./build/src/cli/mailout --home "$home" sandbox ensure-account
echo "mailout: open http://${MAILOUT_HTTP:-127.0.0.1:8025}/ in a browser on this machine:"
echo "  create the admin password, then Configuration > System > General > Mail (SMTP)."
echo "  Press the green 'Send test email' button: the letter shows under 'Sandbox inbox'."
echo "  (or in a terminal: ./build/src/cli/mailout --home $home setup)"
exec ./build/src/cli/mailout --home "$home" serve --http "${MAILOUT_HTTP:-127.0.0.1:8025}"
