#!/usr/bin/env bash
# Validates docs/openapi.json with openapi-spec-validator (docs/api.md#contract), run by
# scripts/test.sh; the `contract` unit test holds the file to what the code produces. The
# validator is first shown to refuse a broken copy, so a check that passes everything is caught.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
log() { printf '[openapi-check] %s\n' "$*"; }
die() { printf '[openapi-check] error: %s\n' "$*" >&2; exit 1; }

validator=.venv/bin/openapi-spec-validator
[ -x "$validator" ] || die "$validator is missing: scripts/services.sh up installs it"
# A response that refers to a schema the document does not hold.
python3 - docs/openapi.json "$WORK/broken.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
d["paths"]["/health/live"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] = {"$ref": "#/components/schemas/Nowhere"}
json.dump(d, open(sys.argv[2], "w"))
PY
if "$validator" "$WORK/broken.json" >/dev/null 2>&1; then die "the validator passed a dangling reference"; fi
"$validator" docs/openapi.json >"$WORK/valid.log" 2>&1 || die "docs/openapi.json: $(cat "$WORK/valid.log")"
log "docs/openapi.json: valid OpenAPI $(python3 -c 'import json; print(json.load(open("docs/openapi.json"))["openapi"])'), $(python3 -c 'import json; d=json.load(open("docs/openapi.json")); print(sum(len(v) for v in d["paths"].values()))') operations"
