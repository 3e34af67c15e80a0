"""`mixedclf serve`: FastAPI app over the same stage functions as `classify`, with dynamic micro-batching.

Modules: settings (options, pydantic), app (create_app / run_server and the routes), state (the server's
state and lifespan: pool, model, batcher, stage timeouts, cost accounting), schemas (request and response
bodies), errors (ServeError), middleware (request metrics, body-size guard), batcher (the micro-batcher),
device (the device stage it runs), metrics (Prometheus), testing (a server in a subprocess on a free loopback
port, for tests and benchmarks). Importing this package stays light: FastAPI and torch load only with
`mixedclf.serve.app` (and the modules it imports).
"""

from mixedclf.serve.settings import ServeSettings

__all__ = ["ServeSettings", "create_app", "run_server"]


def __getattr__(name: str):
    if name in ("create_app", "run_server"):
        from mixedclf.serve import app

        return getattr(app, name)
    raise AttributeError(name)
