"""The model in its own process: a native crash, a kill or a hang there never takes the server
or the CLI down (`WorkerEngine`, the parent side; `child`, the worker)."""
