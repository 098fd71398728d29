"""The yardstick: a bare ASGI app that does a predict's parse-and-compare and nothing else.

No framework, no validation, no model lookup: read the body, parse it with orjson,
compare the value with a fixed band, answer with orjson. A body with ``values`` (a fit
body) or ``series`` (an Azure detect body) is parsed and acknowledged: the yardstick for
large bodies. The issue measures the
service's predict against this app, on the same machine, in the same run.
"""

from __future__ import annotations

from typing import Any

import orjson

UPPER, LOWER = 273.0, -73.0


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        return
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    document = orjson.loads(b"".join(chunks))
    if "value" in document:  # a predict: parse and compare
        value = float(document["value"])
        answer = orjson.dumps({"anomaly": value > UPPER or value < LOWER, "model_version": "1"})
    elif "series" in document:  # an Azure detect body: accept it
        answer = orjson.dumps({"accepted": len(document["series"])})
    else:  # a fit body: accept it
        answer = orjson.dumps({"accepted": len(document["values"])})
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(answer)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": answer})
