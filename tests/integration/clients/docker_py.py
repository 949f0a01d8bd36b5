"""docker-py (PyPI `docker`) as a user's program runs it, driven by docker_py.rs: its
credential-store client against docker-credential-coffer, and an image pull through the engine
(DOCKER_HOST) with the credentials docker-py finds through config.json's credsStore.

Prints one JSON value per call; a refusal prints {"error": <class>, "message": <text>}."""

import json
import sys

import docker
from docker import credentials


def main(action, *args):
    store = credentials.Store("coffer")
    try:
        if action == "store":
            server, username = args
            # The secret comes on stdin, never in argv.
            store.store(server=server, username=username, secret=sys.stdin.read())
            result = None
        elif action == "get":
            result = store.get(args[0])
        elif action == "list":
            result = store.list()
        elif action == "erase":
            store.erase(args[0])
            result = None
        elif action == "pull":
            repository, tag = args
            image = docker.from_env().images.pull(repository, tag=tag)
            result = {"id": image.id, "tags": image.tags}
        else:
            raise SystemExit(f"unknown action {action}")
    except (credentials.errors.StoreError, docker.errors.APIError) as error:
        result = {"error": type(error).__name__, "message": str(error)}
    print(json.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:])
