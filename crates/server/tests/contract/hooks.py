"""Credentials for a schemathesis run against `tsp-job serve` (the `contract` integration test,
docs/api.md#fuzzing).

TSP_FUZZ_AS says who calls: `user` and `operator` log in (TSP_FUZZ_LOGIN, a JSON login body) and
log in again after any 401, since the fuzzer itself logs out and ends sessions; `key` presents
the service key TSP_FUZZ_KEY.
"""

import json
import os
import urllib.request

import schemathesis

BASE = os.environ["TSP_FUZZ_BASE"]
AS = os.environ["TSP_FUZZ_AS"]


def _login() -> str:
    request = urllib.request.Request(
        BASE + "/auth/login",
        data=os.environ["TSP_FUZZ_LOGIN"].encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)["token"]


# A fresh session on the first request and after each 401 (`retry_on`), never on a timer.
@schemathesis.auth(refresh_interval=24 * 3600, retry_on=[401])
class Credential:
    def get(self, case, context):
        return os.environ["TSP_FUZZ_KEY"] if AS == "key" else _login()

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"


# A feed upload's body is bytes, sent as generated (the server refuses what is not a zip).
schemathesis.serializer.alias("application/zip", "application/octet-stream")
