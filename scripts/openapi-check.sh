#!/usr/bin/env bash
# Checks the OpenAPI document against a real server: starts `fota server` on loopback with the
# v2 API (fresh keys), the legacy API (a PSK) and an admin token, provisions one device,
# fetches /api/v2/openapi.json, validates it with openapi-spec-validator, then lets
# schemathesis generate requests for every operation (operator operations with the admin
# token, device operations with the device's) and fails on any 5xx, any answer whose status is
# not documented for its operation, and any body that departs from its documented schema.
#
# Usage: scripts/openapi-check.sh FOTA_BINARY VENV
#   FOTA_BINARY  the `fota` binary to run (e.g. target/debug/fota)
#   VENV         a Python venv with openapi-spec-validator and schemathesis installed
#
# DELETE /api/v2/tokens/{id} is not fuzzed: revoking the admin token would turn every later
# request into a 401 and test nothing more (the Rust tests cover revocation).
set -euo pipefail

fota=$(realpath "${1:?usage: $0 FOTA_BINARY VENV}")
venv=$(realpath "${2:?usage: $0 FOTA_BINARY VENV}")
budget=${OPENAPI_CHECK_SECONDS:-300}

work=$(mktemp -d)
server_pid=
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid"
        wait "$server_pid" || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

"$fota" keys init --no-passphrase --dir "$work/keys" >/dev/null 2>&1
printf 'openapi-check-legacy-psk-32-bytes' >"$work/psk"
export FOTA_ADMIN_TOKEN="fota_op_openapi_check_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
unset FOTA_DATA FOTA_LISTEN FOTA_LEGACY_PSK FOTA_KEY_PASSPHRASE

RUST_LOG=${RUST_LOG:-warn} "$fota" server --data "$work/data" --listen 127.0.0.1:0 \
    --root "$work/keys/root.bin" --status-key "$work/keys/status.key" \
    --legacy-psk-file "$work/psk" >"$work/server.out" 2>"$work/server.log" &
server_pid=$!

base=
for _ in $(seq 200); do
    base=$(sed -n 's/^listening on //p' "$work/server.out")
    [ -n "$base" ] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$base" ]; then
    echo "openapi-check: the server did not start:" >&2
    cat "$work/server.out" "$work/server.log" >&2
    exit 1
fi
echo "openapi-check: server at $base"

# The document, and a provisioned device whose credential the device operations are fuzzed
# with (with the admin token they would only ever answer 401).
FOTA_CHECK_DEVICE_TOKEN=$("$venv/bin/python" - "$base" "$work/openapi.json" <<'EOF'
import json, os, sys, urllib.request
base, out = sys.argv[1], sys.argv[2]
with urllib.request.urlopen(base + "/api/v2/openapi.json", timeout=10) as r:
    open(out, "wb").write(r.read())
req = urllib.request.Request(
    base + "/api/v2/devices",
    data=json.dumps({"id": "openapi-check-device", "class": "openapi-check"}).encode(),
    headers={"Authorization": "Bearer " + os.environ["FOTA_ADMIN_TOKEN"],
             "Content-Type": "application/json"},
)
with urllib.request.urlopen(req, timeout=10) as r:
    print(json.load(r)["token"])
EOF
)
export FOTA_CHECK_DEVICE_TOKEN
"$venv/bin/openapi-spec-validator" "$work/openapi.json"

# Credentials by security scheme: operator operations get the admin token, device operations
# the device's (schemathesis reads the ${...} from the environment).
cat >"$work/schemathesis.toml" <<'EOF'
[auth.openapi.bearer]
bearer = "${FOTA_ADMIN_TOKEN}"

[auth.openapi.device]
bearer = "${FOTA_CHECK_DEVICE_TOKEN}"
EOF

# schemathesis keeps its example database and reports in the working directory: run it in the
# scratch folder, not in the checkout.
status=0
(
    cd "$work"
    timeout --kill-after=10 "$budget" "$venv/bin/schemathesis" \
        --config-file "$work/schemathesis.toml" run "$work/openapi.json" \
        --url "$base" \
        --exclude-operation-id revoke_token \
        --checks not_a_server_error,status_code_conformance,response_schema_conformance \
        --max-examples 20 \
        --request-timeout 30 \
        --generation-database none \
        --no-color
) || status=$?
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    echo "openapi-check: schemathesis did not finish within ${budget}s" >&2
fi
if [ "$status" -ne 0 ]; then
    echo "openapi-check: failed (exit $status); server log:" >&2
    tail -n 50 "$work/server.log" >&2
    exit "$status"
fi
echo "openapi-check: passed"
