"""A slow reader: a client that reads 1 KiB a second, like a phone on a bad link.

The server holds a bounded buffer per listener and disconnects one that falls too far
behind (``CHATROOM_CLIENT_BUFFER`` events), so the others are never slowed. Each time that
happens, the row ``SSE slow reader dropped`` counts it, with how long the reader lasted;
the reader then resumes from its last id and must see no gap.
"""

from __future__ import annotations

import time

import gevent
from locust import task

from _chat import ChatUser, report


class SlowReader(ChatUser):
    """Reads its stream through a small window, slowly."""

    weight = 1
    kind = "slow"

    def on_start(self) -> None:
        super().on_start()
        # One reader, which keeps its last id; its deliveries get a row of their own so
        # its (expected) lateness does not hide in the others' latency.
        self.reader = self.stream(rcvbuf=4096, read_size=1024, row="SSE deliver (slow reader)")

    @task
    def read_slowly(self) -> None:
        stream = self.reader
        started = time.time()
        stream.connect()
        try:
            for event, data in stream.frames():
                stream.check(event, data)
                gevent.sleep(1)
        except OSError:
            pass
        finally:
            stream.close()
        report("SSE slow reader dropped", started)


if __name__ == "__main__":
    from locust import run_single_user

    run_single_user(SlowReader)
