#!/usr/bin/env bash
# The README's first command: installs what mailout needs, builds it, starts a
# local STARTTLS mail server (aiosmtpd, certificate made for this run) and
# sends a message through it with `mailout send`, logging in with a password
# made only of digits. Then it shows the message as the server received it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --demo
if [ -f build/build.ninja ]; then meson setup --reconfigure build >/dev/null; else meson setup build >/dev/null; fi
meson compile -C build >/dev/null

work=$(mktemp -d)
cleanup() { [ -n "${server_pid:-}" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/inbox"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
/usr/bin/python3 scripts/demo_server.py "$port" "$work/cert.pem" "$work/key.pem" "$work/inbox" &
server_pid=$!
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done

printf 'Hello from mailout.\n\nThis letter went through STARTTLS with a digits-only password.\n' >"$work/body.txt"
echo
echo "\$ printf 123456 | mailout send --host localhost --port $port --security starttls \\"
echo "    --ca-file cert.pem --username shop@example.test --password-stdin \\"
echo "    --from 'Shop <shop@example.test>' --to owner@example.test --subject 'mailout works ✓' --text-file body.txt"
printf '123456' | ./build/src/cli/mailout send --host localhost --port "$port" --security starttls \
  --ca-file "$work/cert.pem" --username shop@example.test --password-stdin \
  --from 'Shop <shop@example.test>' --to owner@example.test \
  --subject 'mailout works ✓' --text-file "$work/body.txt"
sleep 0.3
echo
echo "---- what the server received ----"
cat "$work/inbox/"*.eml
