"""Chatters: people in a class: a stream open all along, a message now and then."""

from __future__ import annotations

import gevent
from locust import between, task

from _chat import ChatUser


class Chatter(ChatUser):
    """Listens the whole time and posts with the pauses of someone typing and reading."""

    weight = 4
    kind = "chat"
    wait_time = between(3, 15)

    def on_start(self) -> None:
        super().on_start()
        self.reader = gevent.spawn(self.stream().run)

    def on_stop(self) -> None:
        self.reader.kill(block=False)

    @task
    def say_something(self) -> None:
        self.post_message()


if __name__ == "__main__":
    from locust import run_single_user

    run_single_user(Chatter)
