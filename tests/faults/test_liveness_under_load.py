"""Liveness under scrape load (issue 21, class 7): in a mixed burst of 200 requests, 43 of 67 ``/healthz``
used to answer 503 from the connection cap, so a liveness probe would restart a healthy scheduler.

A real server (uvicorn on 127.0.0.1) whose store reads hold until released: the health report and
``/metrics`` fill the cap of the expensive endpoints (each mix of them in turn), the ones over it are
refused at once, and a concurrent burst of ``/healthz`` probes meanwhile must all answer 200 within the
probe's deadline (its client timeout, 5 s). Every request is one case.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor, as_completed

import pytest
import requests
from health_support import auth, make_settings, planner_of, serving

from shiol_lib.scheduling.health import MAX_CONNECTIONS
from shiol_lib.store import Store

pytestmark = pytest.mark.faults("liveness")

REPORT, METRICS = "/api/v1/scheduler/health", "/metrics"
EXPENSIVE, PROBES = MAX_CONNECTIONS + 36, 67  # 200 requests in all with the cap's 64, as in the issue


@pytest.mark.parametrize("paths", [(REPORT,), (METRICS,), (REPORT, METRICS)], ids=["report", "metrics", "mixed"])
def test_healthz_answers_through_a_burst_that_fills_the_cap_of_the_expensive_endpoints(
    tmp_path, store, fault_cases, paths
):
    # The store reads of the report and /metrics hold until `gate`: MAX_CONNECTIONS of them fill the cap,
    # the rest are refused (503), and /healthz, fired in a concurrent burst meanwhile, answers 200 each time.
    fault_cases(EXPENSIVE + PROBES)
    gate = threading.Event()

    def held_store() -> Store:
        gate.wait()
        return store

    with (
        serving(make_settings(tmp_path), held_store, planner_of(store), read_timeout_s=600) as url,
        ThreadPoolExecutor(max_workers=EXPENSIVE + PROBES) as pool,
    ):
        try:
            held = [
                pool.submit(requests.get, f"{url}{paths[n % len(paths)]}", headers=auth(), timeout=600)
                for n in range(EXPENSIVE)
            ]
            refused = []
            for future in as_completed(held):  # the ones over the cap answer at once; the others wait
                refused.append(future.result().status_code)
                if len(refused) == EXPENSIVE - MAX_CONNECTIONS:
                    break
            assert refused == [503] * (EXPENSIVE - MAX_CONNECTIONS)
            assert sum(not f.done() for f in held) == MAX_CONNECTIONS  # the cap is full
            burst = [pool.submit(requests.get, f"{url}/healthz", timeout=5) for _ in range(PROBES)]
            assert [f.result().status_code for f in burst] == [200] * PROBES
            assert sum(not f.done() for f in held) == MAX_CONNECTIONS  # still full all along
        finally:
            gate.set()
        codes = sorted(f.result().status_code for f in held)
    assert codes == [200] * MAX_CONNECTIONS + [503] * (EXPENSIVE - MAX_CONNECTIONS)
