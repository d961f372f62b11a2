"""An upstream that cannot be the bottleneck: nginx answering fixed bodies.

The shipped Python mock serves about 10k requests a second, so a benchmark against it measures
the mock. nginx answering a fixed body from a file (no upstream) serves well over 100k a
second on one core, far beyond any proxy measured through it. Two flavours, since
nginx cannot choose by the request's body: `json` answers whole chat completions and
embeddings, `sse` answers chat completions as a stream of 20 chunks and a usage chunk. Bodies
are about what a short real answer weighs (a ~600-byte completion, as the mock's 12 words).
"""

from __future__ import annotations

import base64
import json
import struct
import tempfile
from pathlib import Path

from targets import Target, free_port, nginx_binary, run_nginx

MODEL = "gpt-4o-mini"
CONTENT = "An AI gateway gives every app one door to every model, with keys and limits."
USAGE = {"prompt_tokens": 28, "completion_tokens": 17, "total_tokens": 45}


def chat_json() -> str:
    return json.dumps(
        {
            "id": "chatcmpl-bench0001",
            "object": "chat.completion",
            "created": 1764547200,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": CONTENT, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": USAGE,
            "service_tier": "default",
            "system_fingerprint": "fp_bench",
        },
        separators=(",", ":"),
    )


def chat_sse(chunks: int = 20) -> str:
    words = CONTENT.split(" ")
    per = max(1, len(words) // chunks + 1)
    events = []
    head = {"id": "chatcmpl-bench0001", "object": "chat.completion.chunk", "created": 1764547200}
    for i in range(chunks):
        piece = " ".join(words[i * per : (i + 1) * per])
        delta = {"content": (piece + " ") if piece else ""}
        if i == 0:
            delta["role"] = "assistant"
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
        if i == chunks - 1:
            choice["finish_reason"] = "stop"
        events.append({**head, "model": MODEL, "choices": [choice]})
    events.append({**head, "model": MODEL, "choices": [], "usage": USAGE})
    lines = [f"data: {json.dumps(e, separators=(',', ':'))}\n\n" for e in events]
    return "".join(lines) + "data: [DONE]\n\n"


def embeddings_json(dims: int = 256) -> str:
    vector = base64.b64encode(struct.pack(f"<{dims}f", *([0.0625] * dims))).decode()
    return json.dumps(
        {
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": vector}],
            "model": "text-embedding-3-small",
            "usage": {"prompt_tokens": 10, "total_tokens": 10},
        },
        separators=(",", ":"),
    )


CONF = """
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    client_max_body_size 32m;
    client_body_buffer_size 1m;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        location = /healthz {{ return 200 "ok"; }}
        # Files, since a stream is longer than an nginx string may be; a POST to a static
        # file is a 405, which serves the file instead.
        location = /v1/chat/completions {{
            default_type {chat_type}; alias {dir}/chat.body; error_page 405 =200 $uri;
        }}
        location = /v1/embeddings {{
            default_type application/json; alias {dir}/embeddings.body; error_page 405 =200 $uri;
        }}
        location / {{ return 404; }}
    }}
}}
"""


def start_fixed_upstream(cpus: str | None, flavour: str) -> Target | None:
    """The fixed-body nginx as the `direct` target (None when nginx is not installed)."""
    binary = nginx_binary()
    if binary is None:
        return None
    workdir = Path(tempfile.mkdtemp(prefix="tollway-bench-upstream-"))
    port = free_port()
    stream = flavour == "sse"
    workdir.chmod(0o755)  # nginx's workers (nobody, when started as root) read the bodies
    (workdir / "chat.body").write_text(chat_sse() if stream else chat_json())
    (workdir / "embeddings.body").write_text(embeddings_json())
    conf = workdir / "nginx.conf"
    conf.write_text(
        CONF.format(
            dir=workdir,
            port=port,
            chat_type="text/event-stream" if stream else "application/json",
        )
    )
    return run_nginx("direct", binary, conf, port, cpus)
