#!/usr/bin/python3
"""Runs a command on a pseudo-terminal of its own, as a person at a terminal would, and prints
everything that terminal showed.

    terminal.py [--answer PROMPT REPLY]... -- PROGRAM ARGS...

Each --answer waits until PROMPT has appeared on the terminal and then types REPLY and Enter,
in the order given. Stdin is also fed to the program's own stdin through a pipe when it is not
a terminal (for `docker login --password-stdin`). Exits with the program's status; gives up
after 120 s.
"""
import os
import pty
import select
import subprocess
import sys
import time


def main():
    args = sys.argv[1:]
    answers = []
    while args and args[0] == "--answer":
        answers.append((args[1].encode(), args[2].encode() + b"\n"))
        args = args[3:]
    assert args and args[0] == "--", "usage: terminal.py [--answer PROMPT REPLY]... -- PROGRAM"
    command = args[1:]
    stdin_data = sys.stdin.buffer.read()

    leader, follower = pty.openpty()

    def on_terminal():
        # A new session whose controlling terminal is the pty: /dev/tty is that terminal.
        os.setsid()
        import fcntl
        import termios
        fcntl.ioctl(follower, termios.TIOCSCTTY, 0)

    child = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=follower,
        stderr=follower,
        preexec_fn=on_terminal,
        close_fds=True,
    )
    os.close(follower)
    child.stdin.write(stdin_data)
    child.stdin.close()
    seen = b""
    searched = 0
    deadline = time.time() + 120
    while time.time() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                break
            seen += chunk
            # Only what comes after one prompt can match the next.
            at = seen.find(answers[0][0], searched) if answers else -1
            if at >= 0:
                prompt, reply = answers.pop(0)
                searched = at + len(prompt)
                os.write(leader, reply)
        elif child.poll() is not None:
            # Drain what is left, then stop.
            ready, _, _ = select.select([leader], [], [], 0.2)
            if not ready:
                break
    else:
        child.kill()
        sys.stdout.buffer.write(seen)
        print("\nterminal.py: gave up after 120 s", file=sys.stderr)
        sys.exit(124)
    sys.stdout.buffer.write(seen)
    sys.exit(child.wait())


main()
