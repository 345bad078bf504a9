"""The fake OpenAI upstream in its own process, so the load generator does not share its GIL.

    python -m bench.upstream --delay 1.0 --chunk-delay 0.01

prints its base URL (``http://127.0.0.1:<port>/v1``) on one line, then serves until killed.
"""

from __future__ import annotations

import argparse
import gc
import signal
import threading

from harness.fake_upstream import FakeUpstream

REPLY = "Redis is an in-memory data store used as a database, cache and message broker."


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--chunk-delay", type=float, default=0.0)
    args = parser.parse_args()
    upstream = FakeUpstream()
    upstream.delay = args.delay
    upstream.chunk_delay = args.chunk_delay
    upstream.reply_text = REPLY
    url = upstream.start()
    # The fake records every request; the benchmark never reads them, so keep none.
    upstream.requests = _Nowhere()
    print(url, flush=True)
    gc.freeze()  # as main.py does: no full collections over what start-up loaded
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    upstream.stop()


class _Nowhere(list):  # type: ignore[type-arg]
    def append(self, item: object) -> None:
        """Drop it."""


if __name__ == "__main__":
    main()
