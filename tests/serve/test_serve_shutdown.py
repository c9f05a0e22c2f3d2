"""Graceful shutdown of a real ``ragtune serve`` process: SIGTERM while requests are in flight.

The server runs the CLI in a subprocess whose encoder takes 2 s per call (a patch in the
launching script) and touches a marker file when a call starts, so the test knows requests are
inside the server when it sends SIGTERM. They complete with 200, a new request is refused, and
the process exits with status 0.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

SLOW_SERVER = """
import pathlib, sys, time
from ragtune.serve import batcher

marker = pathlib.Path(sys.argv.pop(1))
real = batcher.EncodeBatcher._encode_group

def slow(self, prompt, jobs):
    marker.write_text("encoding")
    time.sleep(2.0)
    real(self, prompt, jobs)

batcher.EncodeBatcher._encode_group = slow
from ragtune.cli.main import main
sys.argv[0] = "ragtune"
main()
"""


def test_sigterm_finishes_requests_in_flight_refuses_new_ones_and_exits_0(sample_index, tmp_path):
    marker = tmp_path / "encoding"
    process = subprocess.Popen(
        [sys.executable, "-c", SLOW_SERVER, str(marker), "serve", str(sample_index),
         "--port", "0", "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"on (http://127\.0\.0\.1:\d+)/", line)
        assert match is not None, line + process.stdout.read()
        url = match.group(1)

        def embed(text: str) -> httpx.Response:
            return httpx.post(f"{url}/v1/embeddings", json={"input": text}, timeout=60)

        with ThreadPoolExecutor(4) as pool:
            in_flight = [pool.submit(embed, f"text {i}") for i in range(4)]
            deadline = time.monotonic() + 60
            while not marker.exists():  # the first request is being encoded
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.02)
            time.sleep(0.2)  # the other three reach the queue
            process.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            try:
                late = embed("after the signal")
                refused = late.status_code == 503
            except httpx.TransportError:  # the listening socket is already closed
                refused = True
            assert refused
            responses = [f.result(60) for f in in_flight]
        assert [r.status_code for r in responses] == [200] * 4
        assert all(len(r.json()["data"]) == 1 for r in responses)
        assert process.wait(60) == 0, process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
