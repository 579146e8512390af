"""Listeners: logged-in users who keep one event stream open and check every message.

    locust -f loadtests/listeners.py,loadtests/posters.py --host http://localhost:5000
"""

from __future__ import annotations

from locust import task

from _chat import ChatUser


class Listener(ChatUser):
    """Follows the room forever, reconnecting with Last-Event-ID like a browser."""

    weight = 10
    kind = "listen"

    @task
    def listen(self) -> None:
        self.stream().run()


if __name__ == "__main__":
    from locust import run_single_user

    run_single_user(Listener)
