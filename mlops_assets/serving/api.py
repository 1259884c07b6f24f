"""The prediction API: FastAPI over :mod:`mlops_assets.core.serving.champion`.

``mlops serve`` runs it with uvicorn. It serves the registry's ``champion`` and follows it:
a background thread polls the registry and swaps a new champion in once it has loaded and
validated. Every answer the API can give is in its OpenAPI document with its model; every
error is JSON with a ``detail`` that names the problem, and no stack trace or internal path
is ever sent.

Long on purpose: one FastAPI application, every endpoint next to its OpenAPI model.
"""

import asyncio
import hmac
import json
import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, create_model
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlops_assets.core.serving.champion import ModelSlot, Poller, model_rows, require_model
from mlops_assets.core.serving.notify import REFRESH_PATH
from mlops_assets.errors import MlopsError
from mlops_assets.settings import Settings
from mlops_assets.task import Feature, TaskSchema

log = logging.getLogger("mlops_assets.serving.api")
KEY_HEADER = "X-API-Key"


def instance_model(task: TaskSchema) -> type[BaseModel]:
    """One row of features, nothing else: a number inside its plausible range, or one of a
    categorical feature's values; ``null`` (or left out) only where the task imputes a
    missing value."""
    fields = {feature.name: _feature_field(feature) for feature in task.features}
    return create_model("Instance", __config__=ConfigDict(extra="forbid"), **fields)


def _feature_field(feature: Feature) -> tuple[Any, Any]:
    if feature.categorical:
        kind: Any = Literal[feature.values]  # an enum in the OpenAPI document
        described = f"{feature.name.replace('_', ' ')}: one of {', '.join(feature.values)}"
        constraints: dict[str, Any] = {"examples": [feature.values[0]]}
    else:
        kind = float
        described = feature.name.replace("_", " ") + (f" in {feature.unit}" if feature.unit else "")
        constraints = {
            "ge": feature.minimum if math.isfinite(feature.minimum) else None,
            "le": feature.maximum if math.isfinite(feature.maximum) else None,
            "strict": True,
            "allow_inf_nan": False,
            "examples": [_example(feature.minimum, feature.maximum)],
        }
    if feature.imputed:
        described += "; null or left out when unknown (the model imputes it)"
        return kind | None, Field(default=None, description=described, **constraints)
    return kind, Field(description=described, **constraints)


def _example(low: float, high: float) -> float:
    if math.isfinite(low) and math.isfinite(high):
        return low + (high - low) / 4
    return low if math.isfinite(low) else (high if math.isfinite(high) else 0.0)


DOCS_PAGES = ("/docs", "/redoc")
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'"
)
EXAMPLE_BODY = '{"instances": [{...}, ...]} or {"instances": {...}}'
# The two shapes ``instances`` may take; the name of the one a request used is left out of
# an error's field (``_field``).
BATCH, SINGLE = "batch", "single"


def _instances_shape(value: Any) -> str | None:
    """Which shape to validate ``instances`` as: a list is a batch, an object one instance.
    Only that one is validated, so each problem is reported once (a plain union would report
    it for both shapes)."""
    if isinstance(value, list):
        return BATCH
    if isinstance(value, dict | BaseModel):
        return SINGLE
    return None


def predict_request_model(task: TaskSchema, max_batch: int) -> type[BaseModel]:
    """The request body: ``{"instances": [...]}`` with one to ``max_batch`` instances, or
    ``{"instances": {...}}`` with one instance object."""
    instance = instance_model(task)
    batch = Annotated[list[instance], Field(min_length=1, max_length=max_batch)]  # type: ignore[valid-type]
    shapes = Annotated[
        Annotated[batch, Tag(BATCH)] | Annotated[instance, Tag(SINGLE)],  # type: ignore[valid-type]
        Discriminator(
            _instances_shape,
            custom_error_type="instances_shape",
            custom_error_message="Input should be a list of instances, or one instance object",
        ),
    ]
    return create_model(
        "PredictRequest",
        __config__=ConfigDict(extra="forbid"),
        instances=(
            shapes,
            Field(
                description="Rows to predict: a list of instances, or one instance object "
                "(a list of one)."
            ),
        ),
    )


class Prediction(BaseModel):
    label: str = Field(description="The most probable class.")
    index: int = Field(description="Its position in the task's class list.")
    probabilities: dict[str, float] = Field(description="Probability of every class.")


class Refresh(BaseModel):
    status: str


class ModelRef(BaseModel):
    name: str
    version: str


class PredictResponse(BaseModel):
    predictions: list[Prediction]
    model: ModelRef


class Health(BaseModel):
    status: str = Field(
        description="`ok`, or `degraded` while an older version than the champion is served "
        "(the newest failed to load, or the registry cannot be read; see GET /model)."
    )
    name: str
    version: str


class ModelInfo(BaseModel):
    name: str
    version: str
    aliases: list[str]
    model_uuid: str
    metrics: dict[str, float] = Field(description="Benchmark metrics recorded at registration.")
    loaded_at: str
    last_checked: str | None = Field(description="When the registry was last polled.")
    last_error: str | None = Field(
        description="Why the newest champion is not served (failed to load or validate)."
    )
    failed_version: str | None
    champion_version: str | None = Field(description="The version the champion alias names.")


class Error(BaseModel):
    detail: str = Field(description="What is wrong, in words.")
    hint: str | None = Field(default=None, description="What to do about it, when known.")


class FieldError(BaseModel):
    field: str = Field(description="Where, e.g. `instances[0].petal_width`.")
    message: str


class InvalidInput(BaseModel):
    detail: str
    errors: list[FieldError]


def _error(description: str, model: type[BaseModel] = Error) -> dict[str, Any]:
    return {"description": description, "model": model}


NO_MODEL = _error("No model is loaded yet")
UNAUTHORIZED = _error("Missing or wrong X-API-Key (when MLOPS_API_KEY is set)")


class RequestGuard:
    """Before the application sees a request: the key is checked (so nothing is parsed for
    a caller without one), and the body is read here, at most ``max_bytes`` of it whatever
    the framing (Content-Length or chunked), each chunk within ``read_timeout`` seconds."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        key: str | None,
        protected: set[tuple[str, str]],
        max_bytes: int,
        read_timeout: float,
    ) -> None:
        self.app, self.key, self.protected = app, key, protected
        self.max_bytes, self.read_timeout = max_bytes, read_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if self.key is not None and (scope["method"], scope["path"]) in self.protected:
            given = headers.get(KEY_HEADER.lower().encode(), b"")
            if not hmac.compare_digest(given, self.key.encode()):
                return await _answer(send, 401, f"missing or wrong {KEY_HEADER} header")
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await _answer(send, 413, self._too_large())
        body, more = b"", True
        while more:
            try:
                message = await asyncio.wait_for(receive(), timeout=self.read_timeout)
            except TimeoutError:
                return await _answer(send, 408, "the request body did not arrive in time")
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                return await _answer(send, 413, self._too_large())
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def _too_large(self) -> str:
        return f"request body over {self.max_bytes} bytes; send fewer instances"


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _field(location: tuple[Any, ...]) -> str:
    """``("body", "instances", "batch", 0, "sepal_length")`` -> ``instances[0].sepal_length``;
    the shape ``instances`` was read as (``batch``, ``single``) is not part of the name."""
    parts = list(location[1:] if location[:1] == ("body",) else location)
    if parts[:1] == ["instances"] and parts[1:2] in ([BATCH], [SINGLE]):
        del parts[1]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def _is_json(content_type: str | None) -> bool:
    """Whether a body of ``content_type`` is read as JSON: none given, ``application/json``
    or ``application/<anything>+json``, with or without parameters (``charset``)."""
    if not content_type:
        return True
    kind = content_type.split(";")[0].strip().lower()
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


def _field_error(error: dict[str, Any]) -> dict[str, str]:
    """One problem, named by its field; the body as a whole in words that say what to send."""
    location = tuple(error.get("loc", ()))
    if location == ("body",) and error.get("type") == "missing":
        return {"field": "body", "message": f"the request has no body: send {EXAMPLE_BODY}"}
    if location == ("body",):
        return {"field": "body", "message": f"the body must be a JSON object: {EXAMPLE_BODY}"}
    return {"field": _field(location), "message": error.get("msg", "invalid")}


def create_app(settings: Settings, slot: ModelSlot) -> FastAPI:
    """The API serving ``slot``, polled every ``settings.api_poll_seconds``."""

    poller = Poller(slot, settings.api_poll_seconds)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        slot.refresh()  # serve at once when there is a champion
        poller.start()
        yield
        poller.stop()

    # /docs (Swagger UI) and /redoc from the files fastapi-offline ships, never a CDN: they
    # work where the internet cannot be reached.
    app = FastAPIOffline(
        title="mlops_assets prediction API",
        summary=f"Serves the registry's champion of {settings.model_name} ({settings.task.name}).",
        version="1",
        lifespan=lifespan,
        # A body without a Content-Type is read as JSON (README: what /predict accepts).
        strict_content_type=False,
        # No badge fetched from the public validator service.
        swagger_ui_parameters={"validatorUrl": None},
    )
    # Documents the key (an apiKey security scheme); RequestGuard enforces it before the body
    # is read.
    key_scheme = APIKeyHeader(name=KEY_HEADER, auto_error=False)
    keyed = [Depends(key_scheme)] if settings.api_key else []
    app.add_middleware(
        RequestGuard,
        key=settings.api_key,
        protected={("GET", "/model"), ("POST", "/predict"), ("POST", REFRESH_PATH)},
        max_bytes=settings.api_max_body_bytes,
        read_timeout=settings.api_body_timeout,
    )
    request_model = predict_request_model(settings.task, settings.api_max_batch)

    @app.middleware("http")
    async def docs_stay_here(request: Request, call_next: Any) -> Any:
        """The docs pages may load nothing from elsewhere: ReDoc's sidebar would fetch its
        maker's logo from a CDN; this policy stops the browser from even asking."""
        response = await call_next(request)
        if request.url.path in DOCS_PAGES:
            response.headers["Content-Security-Policy"] = DOCS_POLICY
        return response

    @app.exception_handler(MlopsError)
    async def unavailable(_: Request, exc: MlopsError) -> JSONResponse:
        return JSONResponse({"detail": exc.message, "hint": exc.hint}, status_code=503)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        if not _is_json(request.headers.get("content-type")):
            return JSONResponse(
                {
                    "detail": f"the body is sent as {request.headers['content-type']!r}; it "
                    "must be JSON",
                    "hint": "send it with Content-Type: application/json (curl: -H "
                    "'Content-Type: application/json'), or with no Content-Type at all",
                },
                status_code=415,
            )
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            return JSONResponse({"detail": "the body is not valid JSON"}, status_code=400)
        errors = [_field_error(e) for e in exc.errors()]
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        return JSONResponse({"detail": summary, "errors": errors[:50]}, status_code=422)

    @app.exception_handler(Exception)
    async def fault(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; it has been logged"}, status_code=500)

    @app.get("/health", response_model=Health, responses={503: NO_MODEL})
    def health() -> Health:
        """200 once a model is loaded (``ok``, or ``degraded`` while an older version than
        the champion is served), 503 before. Never needs a key."""
        current = require_model(slot)
        return Health(status=slot.health(), name=current.name, version=current.version)

    @app.get(
        "/model",
        response_model=ModelInfo,
        dependencies=keyed,
        responses={401: UNAUTHORIZED, 503: NO_MODEL},
    )
    def model() -> ModelInfo:
        """The served version, its benchmark metrics, and the state of following the alias."""
        return ModelInfo(**require_model(slot).describe(), **slot.status())

    @app.post(
        REFRESH_PATH,
        status_code=202,
        response_model=Refresh,
        dependencies=keyed,
        responses={401: UNAUTHORIZED},
    )
    def refresh() -> Refresh:
        """Look at the registry now rather than at the next poll: what the pipeline calls
        when ``champion`` moves (``MLOPS_API_URL``). Answers at once; a new champion is
        loaded, validated and swapped in behind it (``GET /model`` shows it)."""
        poller.wake()
        return Refresh(status="checking the registry")

    @app.post(
        "/predict",
        response_model=PredictResponse,
        dependencies=keyed,
        responses={
            400: _error("The body is not valid JSON"),
            401: UNAUTHORIZED,
            408: _error("The body did not arrive within MLOPS_API_BODY_TIMEOUT"),
            413: _error(
                "More than MLOPS_API_MAX_BATCH instances, or a body over MLOPS_API_MAX_BODY_BYTES"
            ),
            415: _error("The body is sent with a Content-Type other than JSON"),
            422: _error("An instance is invalid; every bad field is named", InvalidInput),
            503: NO_MODEL,
        },
    )
    async def predict(request: request_model) -> JSONResponse:  # type: ignore[valid-type]
        """Class, class index and probabilities for each instance."""
        # async: the prediction takes well under a millisecond, less than a thread hop.
        instances = request.instances  # type: ignore[attr-defined]
        rows = instances if isinstance(instances, list) else [instances]
        current = require_model(slot)  # one model for the whole request, even mid-swap
        values = [[getattr(row, name) for name in settings.task.feature_names] for row in rows]
        # Built from checked values, so returned as is rather than validated again.
        return JSONResponse(
            {
                "predictions": current.predict(model_rows(values, settings.task), settings.task),
                "model": {"name": current.name, "version": current.version},
            }
        )

    return app


def app_from_settings(settings: Settings) -> FastAPI:
    """The API for ``settings``: follows ``champion`` of the configured model."""
    from mlops_assets.core.data.reference_data import load_reference_data
    from mlops_assets.core.registry.tags import CHAMPION
    from mlops_assets.core.serving.champion import champion_slot

    task = settings.task
    probe = load_reference_data(settings.reference, task).frame.sample(20, random_state=0)
    slot = champion_slot(settings.tracking_uri, settings.model_name, task, probe, CHAMPION)
    return create_app(settings, slot)
