"""The anchor servers: a raw ASGI endpoint (fast target for load generators) and a bare FastAPI one."""

from fastapi import FastAPI


async def raw_app(scope, receive, send):
    """The fastest Python endpoint we can serve: a fixed 2-byte body."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


def bare_fastapi() -> FastAPI:
    """A bare FastAPI app with one JSON endpoint: the anchor for the reference service's routes."""
    app = FastAPI()

    @app.get("/bare")
    async def bare() -> dict:
        return {"ok": True}

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    return app
