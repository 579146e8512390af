"""A reconnect storm: listeners that keep dropping and coming back with Last-Event-ID.

Each drop is followed by a replay of exactly what was missed: a gap or a duplicate shows
as a failure in the ``SSE continuity`` row.
"""

from __future__ import annotations

import random

from locust import constant, task

from _chat import ChatUser


class Reconnector(ChatUser):
    """Reads for a moment, drops the connection, reconnects at once from the last id."""

    weight = 2
    kind = "storm"
    wait_time = constant(0)

    def on_start(self) -> None:
        super().on_start()
        self.reader = self.stream()  # one reader: its last id and sequences carry over

    @task
    def drop_and_resume(self) -> None:
        self.reader.run(seconds=random.uniform(0.5, 3))


if __name__ == "__main__":
    from locust import run_single_user

    run_single_user(Reconnector)
