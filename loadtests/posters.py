"""Posters: users who post a numbered message every CHATROOM_LOAD_POST_INTERVAL seconds."""

from __future__ import annotations

from locust import constant_pacing, task

from _chat import POST_INTERVAL, ChatUser


class Poster(ChatUser):
    """Posts at a steady pace; listeners measure how long each message takes to arrive."""

    weight = 2
    kind = "post"
    wait_time = constant_pacing(POST_INTERVAL)

    @task
    def post(self) -> None:
        self.post_message()


if __name__ == "__main__":
    from locust import run_single_user

    run_single_user(Poster)
