"""``python -m chatroom``: the same as the ``chatroom`` command."""

from chatroom.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
