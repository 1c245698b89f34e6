"""A client generated from docs/openapi.json (openapi-python-client, into TSP_CLIENT_DIR) used
against a live `serve` (TSP_CLIENT_BASE), as docs/api.md#clients shows: log in, post a trip,
follow its job to the end, read the user's stats. Run by the `contract` integration test."""

import json
import os
import sys
import time

sys.path.insert(0, os.environ["TSP_CLIENT_DIR"])

from tsp_job_client import AuthenticatedClient, Client  # noqa: E402
from tsp_job_client.api.jobs import get_job, post_job  # noqa: E402
from tsp_job_client.api.sessions import login  # noqa: E402
from tsp_job_client.api.users import user_stats  # noqa: E402
from tsp_job_client.models import (  # noqa: E402
    CachedUserStats,
    Enqueued,
    JobInfo,
    Login,
    PostJob,
    Session,
)

base = os.environ["TSP_CLIENT_BASE"]
session = login.sync(client=Client(base_url=base), body=Login.from_dict(json.loads(os.environ["TSP_CLIENT_LOGIN"])))
assert isinstance(session, Session), session
api = AuthenticatedClient(base_url=base, token=session.token)

trip = json.loads(os.environ["TSP_CLIENT_TRIP"])
job = PostJob.from_dict({"type": "trip.complete", "queue": "trips", "payload": trip})
created = post_job.sync(client=api, body=job)
assert isinstance(created, Enqueued), created

# The worker completes it; the job's state says when (bounded).
deadline = time.monotonic() + 60
while True:
    info = get_job.sync(created.id, client=api, queue=created.queue)
    assert isinstance(info, JobInfo), info
    if info.state == "completed":
        break
    assert info.state in ("waiting", "active", "delayed"), info.state
    assert time.monotonic() < deadline, f"job {created.id} is still {info.state}"
    time.sleep(0.1)

stats = user_stats.sync(trip["userId"], client=api, days=30)
assert isinstance(stats, CachedUserStats), stats
print(json.dumps({"job": created.id, "trips": stats.trips, "distance_m": stats.total_distance_m}))
