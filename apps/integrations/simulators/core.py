"""Shared machinery for the provider simulators: a real threaded HTTP server with request
capture, fault injection and control endpoints.

Control endpoints (every simulator):

- ``GET  /__sim__/requests``  requests received so far (method, path, query, headers, json)
- ``POST /__sim__/faults``    add a fault (a JSON object or list of objects, fields of ``Fault``)
- ``DELETE /__sim__/faults``  remove all faults
- ``POST /__sim__/reset``     forget requests, faults and all in-memory state
- ``GET  /__sim__/state``     simulator-specific state summary

Bad control input is answered 400 with ``{"error": "<what is wrong>"}`` (``ControlError``),
never a traceback; ``control_emit`` is the shared, validated ``POST /__sim__/emit``.

Subclasses register routes with ``self.route(method, path, handler)``; a handler receives a
``SimRequest`` and returns a ``Reply`` or a ``Stream``.
"""

from __future__ import annotations

import inspect
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

FAULT_KINDS = {
    "latency",  # wait `delay` seconds, then answer normally
    "error",  # answer `status` with the provider's real error body for `code`
    "rate_limit",  # provider's retryable throttling answer, with Retry-After
    "quota",  # provider's non-retryable quota/balance answer
    "auth",  # provider's invalid-credential answer
    "hang",  # never answer (until `delay` seconds or server stop), then drop the connection
    "cut",  # streams: close the connection after `after_chunks` frames; JSON: half a body
    "stall",  # streams: stop sending after `after_chunks` frames but keep the socket open
    "stream_error",  # streams: provider's in-stream error frame after `after_chunks` frames
    "moderation",  # DashScope: data_inspection_failed mid-stream after `after_chunks` frames
    "garbage",  # a non-JSON (HTML 502) body from a proxy
}


@dataclass
class Fault:
    """One injected fault. ``path`` is an exact API path (without the simulator's URL prefix)
    or ``"*"``; ``times`` limits how many requests it hits (None: until cleared)."""

    kind: str
    path: str = "*"
    times: int | None = None
    delay: float = 0.0
    status: int | None = None
    code: str | None = None
    message: str | None = None
    body: Any = None
    retry_after: float | None = None
    after_chunks: int = 1

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; use one of {sorted(FAULT_KINDS)}")

    @classmethod
    def from_dict(cls, data: dict) -> Fault:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class ControlError(Exception):
    """A control endpoint refuses its input: answered ``status`` with ``{"error": message}``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


_FAULT_TYPES: dict[str, tuple[type, ...]] = {
    "kind": (str,),
    "path": (str,),
    "times": (int, type(None)),
    "delay": (int, float),
    "status": (int, type(None)),
    "code": (str, type(None)),
    "message": (str, type(None)),
    "retry_after": (int, float, type(None)),
    "after_chunks": (int,),
}


def fault_from_control(item: Any) -> Fault:
    """A ``Fault`` from one control-endpoint object, or a ``ControlError`` naming what is wrong
    (unlike ``Fault.from_dict``, unknown fields and wrong types are refused)."""
    if not isinstance(item, dict):
        raise ControlError('each fault must be a JSON object such as {"kind": "error"}')
    if "kind" not in item:
        raise ControlError(f"'kind' is required: one of {sorted(FAULT_KINDS)}")
    allowed = {f.name for f in fields(Fault)}
    unknown = sorted(set(item) - allowed)
    if unknown:
        raise ControlError(f"unknown field(s) {unknown}; a fault takes {sorted(allowed)}")
    for name, value in item.items():
        types = _FAULT_TYPES.get(name)
        if types and (not isinstance(value, types) or isinstance(value, bool)):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise ControlError(f"'{name}' must be {names}, not {json.dumps(value)}")
    try:
        return Fault(**item)
    except ValueError as exc:
        raise ControlError(str(exc)) from None


def call_with_body(func: Callable[..., Any], body: dict, *, what: str) -> Any:
    """Call ``func(**body)`` after checking the body against its keyword parameters: missing,
    unknown and wrongly typed fields become a ``ControlError`` that names them."""
    params = {
        name: p
        for name, p in inspect.signature(func).parameters.items()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    }
    required = sorted(n for n, p in params.items() if p.default is inspect.Parameter.empty)
    missing = [n for n in required if n not in body]
    unknown = sorted(set(body) - set(params))
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing field(s) {missing}")
        if unknown:
            parts.append(f"unknown field(s) {unknown}")
        optional = sorted(set(params) - set(required))
        raise ControlError(f"{what}: {'; '.join(parts)} (required {required}, optional {optional})")
    for name, value in body.items():
        expected = str(params[name].annotation)
        if value is None and "None" in expected:
            continue
        if expected.startswith("str") and not isinstance(value, str):
            raise ControlError(f"{what}: '{name}' must be a string")
        if expected.startswith("int") and (not isinstance(value, int) or isinstance(value, bool)):
            raise ControlError(f"{what}: '{name}' must be an integer")
        if expected.startswith("list") and not isinstance(value, list):
            raise ControlError(f"{what}: '{name}' must be a list")
    return func(**body)


def qr_png_data_uri(data: str, *, scale: int = 6) -> str:
    """A real, scannable QR code of ``data`` as a ``data:image/png;base64,...`` URL (segno:
    pure Python, no Pillow), as the platforms hand out their login QR codes."""
    import segno

    return segno.make(data, error="m").png_data_uri(scale=scale, border=2)


def json_object(request: Any) -> dict:
    """The request's JSON body as a (copied) object, or a ``ControlError``."""
    if not isinstance(request.json, dict):
        raise ControlError("the body must be a JSON object")
    return dict(request.json)


def require_str(body: dict, name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise ControlError(f"'{name}' is required (a non-empty string)")
    return value


@dataclass
class SimRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any
    fault: Fault | None = None
    received_at: float = field(default_factory=time.time)

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    def as_dict(self) -> dict:
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "json": self.json,
            "received_at": self.received_at,
        }


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    def encode(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        # ensure_ascii=False like the real Chinese platforms; big ints stay exact JSON numbers.
        return json.dumps(self.body, ensure_ascii=False).encode("utf-8")


@dataclass
class Stream:
    """A streamed answer: ``frames`` yields bytes (written and flushed) or floats (sleep)."""

    frames: Iterable[bytes | float]
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "text/event-stream; charset=utf-8"


Handler = Callable[[SimRequest], "Reply | Stream"]


def sse(data: Any = None, event: str | None = None) -> bytes:
    """One SSE frame. ``data`` None produces an event-only frame (Dify ping)."""
    lines = []
    if event is not None:
        lines.append(f"event: {event}")
    if data is not None:
        text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
        lines.append(f"data: {text}")
    return ("\n".join(lines) + "\n\n").encode("utf-8")


class SimulatorServer:
    """Base simulator: owns the HTTP server thread, request log, faults and routes."""

    name = "sim"
    # URL prefixes the simulator accepts in front of its API paths (first match is stripped).
    prefixes: tuple[str, ...] = ("",)

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, split_writes: bool = True
    ) -> None:
        self.host = host
        self.port = port
        # Split every streamed frame in two writes (possibly inside a UTF-8 character) so
        # clients are exercised against one-read-is-not-one-frame, as on real networks.
        self.split_writes = split_writes
        self._lock = threading.RLock()
        self._routes: dict[tuple[str, str], Handler] = {}
        self._prefix_routes: list[tuple[str, str, Handler]] = []
        self._faults: list[Fault] = []
        self._requests: list[SimRequest] = []
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.deliveries: list[dict] = []
        self.reset_state()

    # -- to override ---------------------------------------------------------------------

    def reset_state(self) -> None:
        """Forget simulator-specific in-memory state."""

    def state(self) -> dict:
        return {}

    def fault_reply(self, request: SimRequest, fault: Fault) -> Reply | None:
        """The provider's real answer for an injected error/rate_limit/quota/auth fault."""
        status = fault.status or 500
        return Reply(status, fault.body or {"error": fault.message or "injected fault"})

    def control(self, action: str, request: SimRequest) -> Reply | None:
        """Handle ``POST /__sim__/<action>`` for simulator-specific actions."""
        return None

    callback_url: str | None = None

    def emit_kinds(self) -> list[str]:
        return sorted(
            n[5:] for n in dir(self) if n.startswith("emit_") and callable(getattr(self, n))
        )

    def control_emit(self, request: SimRequest) -> Reply:
        """``POST /__sim__/emit`` {"kind": "text", ...arguments of ``emit_<kind>``}: validated,
        so a bad body is a 400 naming the problem and a missing callback URL a 409."""
        body = json_object(request)
        kinds = self.emit_kinds()
        kind = body.pop("kind", None)
        if kind is None:
            raise ControlError(f"'kind' is required: one of {kinds}")
        if kind not in kinds:
            raise ControlError(f"unknown kind {json.dumps(kind)}: use one of {kinds}")
        if not self.callback_url:
            raise ControlError(
                "no callback URL set: the platform does not know where to post events yet "
                "(register the connection's webhook first, e.g. its 'set callback' action)",
                status=409,
            )
        return Reply(200, call_with_body(getattr(self, f"emit_{kind}"), body, what=f"kind {kind}"))

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> SimulatorServer:
        handler = _make_handler(self)
        self._server = ThreadingHTTPServer((self.host, self.port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # quick shutdown()
            name=f"{self.name}-sim",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def base_url(self) -> str:
        """Root URL of the server (without any API prefix)."""
        return f"http://{self.host}:{self.port}"

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self._requests.clear()
            self.deliveries.clear()
            # A method replaced on the instance (a test's stand-in) goes too: a reset simulator
            # behaves as built, whatever an earlier user left behind.
            for name, value in list(vars(self).items()):
                if callable(value) and callable(getattr(type(self), name, None)):
                    del self.__dict__[name]
            self.reset_state()

    # -- routes, faults, captured requests -------------------------------------------------

    def route(self, method: str, path: str, handler: Handler, *, prefix: bool = False) -> None:
        if prefix:
            self._prefix_routes.append((method, path, handler))
        else:
            self._routes[(method, path)] = handler

    def add_fault(self, kind: str | Fault, path: str = "*", **kwargs: Any) -> Fault:
        fault = kind if isinstance(kind, Fault) else Fault(kind=kind, path=path, **kwargs)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def requests(self) -> list[SimRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str) -> list[SimRequest]:
        return [r for r in self.requests if r.path == path]

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.path in ("*", path) and (fault.times is None or fault.times > 0):
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return None

    def _strip_prefix(self, path: str) -> str:
        for prefix in self.prefixes:
            if prefix and (path == prefix or path.startswith(prefix + "/")):
                return path[len(prefix) :] or "/"
        return path

    def _find_handler(self, method: str, path: str) -> Handler | None:
        handler = self._routes.get((method, path))
        if handler is None:
            for m, prefix, h in self._prefix_routes:
                if m == method and path.startswith(prefix):
                    return h
        return handler

    def not_found(self, request: SimRequest) -> Reply:
        return Reply(404, {"error": f"no route {request.method} {request.path}"})

    # -- webhooks ------------------------------------------------------------------------

    def post_json(self, url: str, payload: Any, timeout: float = 5.0) -> int | None:
        """POST ``payload`` as the platform would (JSON body) and log the delivery."""
        entry = {"url": url, "payload": payload, "status": None, "error": None}
        try:
            data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
            response = requests.post(
                url, data=data, timeout=timeout, headers={"Content-Type": "application/json"}
            )
            entry["status"] = response.status_code
        except requests.RequestException as exc:
            entry["error"] = type(exc).__name__
        with self._lock:
            self.deliveries.append(entry)
        return entry["status"]

    def post_json_later(self, url: str, payload: Any, delay: float = 0.0) -> None:
        def run() -> None:
            if delay:
                time.sleep(delay)
            self.post_json(url, payload)

        threading.Thread(target=run, daemon=True).start()


def _make_handler(sim: SimulatorServer) -> type[BaseHTTPRequestHandler]:
    class SimHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes; without TCP_NODELAY every answer would
        # wait ~40 ms for the peer's delayed ACK.
        disable_nagle_algorithm = True
        server_version = f"{sim.name}-simulator"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # keep test output quiet

        def do_GET(self) -> None:  # noqa: N802
            self._handle("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._handle("POST")

        def do_DELETE(self) -> None:  # noqa: N802
            self._handle("DELETE")

        def _handle(self, method: str) -> None:
            split = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            bad_json = False
            try:
                parsed = json.loads(body) if body else None
            except ValueError:
                parsed, bad_json = None, True
            request = SimRequest(
                method=method,
                path=split.path,
                query={k: v[-1] for k, v in parse_qs(split.query).items()},
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                json=parsed,
            )
            if split.path.startswith("/__sim__/"):
                if bad_json and method == "POST":
                    self._write(Reply(400, {"error": "the body is not valid JSON"}))
                    return
                try:
                    reply = self._control(request)
                except ControlError as exc:
                    reply = Reply(exc.status, {"error": exc.message})
                except Exception as exc:  # noqa: BLE001 - a control call must never hang up
                    reply = Reply(500, {"error": f"simulator error: {type(exc).__name__}: {exc}"})
                self._write(reply)
                return
            request.path = sim._strip_prefix(split.path)
            with sim._lock:
                sim._requests.append(request)
            fault = sim._take_fault(request.path)
            request.fault = fault
            if fault is not None and fault.kind == "hang":
                sim._stopping.wait(fault.delay or 30.0)
                self.close_connection = True
                return
            if fault is not None and fault.delay and fault.kind != "stall":
                time.sleep(fault.delay)
            if fault is not None and fault.kind in ("error", "rate_limit", "quota", "auth"):
                reply = sim.fault_reply(request, fault)
                if reply is not None:
                    self._write(reply)
                    return
            if fault is not None and fault.kind == "garbage":
                html = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
                self._write(Reply(fault.status or 502, html, content_type="text/html"))
                return
            handler = sim._find_handler(method, request.path)
            result = sim.not_found(request) if handler is None else handler(request)
            if isinstance(result, Stream):
                self._stream(result, fault)
            elif fault is not None and fault.kind == "cut":
                self._write(result, truncate=True)
            else:
                self._write(result)

        def _control(self, request: SimRequest) -> Reply:
            action = request.path[len("/__sim__/") :]
            if action == "requests" and request.method == "GET":
                return Reply(200, [r.as_dict() for r in sim.requests])
            if action == "faults" and request.method == "POST":
                if request.json is None:
                    raise ControlError(
                        f"send a fault object or a list of them, e.g. "
                        f'{{"kind": "error", "status": 500, "times": 1}}; kinds: '
                        f"{sorted(FAULT_KINDS)}"
                    )
                items = request.json if isinstance(request.json, list) else [request.json]
                faults = [fault_from_control(item) for item in items]  # all valid, or none added
                added = [sim.add_fault(fault) for fault in faults]
                return Reply(200, [asdict(f) for f in added])
            if action == "faults" and request.method == "DELETE":
                sim.clear_faults()
                return Reply(200, {"ok": True})
            if action == "faults" and request.method == "GET":
                with sim._lock:
                    return Reply(200, [asdict(f) for f in sim._faults])
            if action == "reset" and request.method == "POST":
                sim.reset()
                return Reply(200, {"ok": True})
            if action == "state" and request.method == "GET":
                return Reply(200, sim.state())
            if action == "deliveries" and request.method == "GET":
                return Reply(200, list(sim.deliveries))
            if request.method == "POST":
                try:
                    reply = sim.control(action, request)
                except ControlError:
                    raise
                except (TypeError, ValueError, KeyError) as exc:
                    return Reply(400, {"error": f"invalid {action} request: {exc}"})
                if reply is not None:
                    return reply
            return Reply(404, {"error": f"unknown control action {action}"})

        def _write(self, reply: Reply, truncate: bool = False) -> None:
            data = reply.encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if truncate:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(data[: len(data) // 2] if truncate else data)
            self.wfile.flush()

        def _stream(self, stream: Stream, fault: Fault | None) -> None:
            self.send_response(stream.status)
            self.send_header("Content-Type", stream.content_type)
            self.send_header("Cache-Control", "no-cache")
            # No Content-Length: the body ends when we close, which is how a cut looks too.
            self.send_header("Connection", "close")
            for name, value in stream.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.close_connection = True
            sent = 0
            limit = fault.after_chunks if fault and fault.kind in ("cut", "stall") else None
            try:
                for item in stream.frames:
                    if isinstance(item, float | int):
                        if sim._stopping.wait(item):
                            return
                        continue
                    if limit is not None and sent >= limit:
                        if fault.kind == "stall":
                            sim._stopping.wait(fault.delay or 30.0)
                        return
                    if sim.split_writes and len(item) > 1:
                        half = len(item) // 2
                        self.wfile.write(item[:half])
                        self.wfile.flush()
                        self.wfile.write(item[half:])
                    else:
                        self.wfile.write(item)
                    self.wfile.flush()
                    sent += 1
            except (BrokenPipeError, ConnectionResetError):
                return

    return SimHandler
