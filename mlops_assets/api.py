"""The prediction API: FastAPI over :mod:`mlops_assets.core.serving`.

``mlops serve`` runs it with uvicorn. It serves the registry's ``champion`` and follows it:
a background thread polls the registry and swaps a new champion in once it has loaded and
validated. Every error is JSON with a ``detail`` that names the problem; no stack trace or
internal path is ever sent.
"""

import hmac
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlops_assets.core.serving import ModelSlot, Poller, require_model
from mlops_assets.errors import MlopsError
from mlops_assets.settings import Settings
from mlops_assets.task import TASK, TaskSchema

log = logging.getLogger("mlops_assets.api")


def instance_model(task: TaskSchema) -> type[BaseModel]:
    """One row of features: every feature required, a finite number inside its plausible
    range, nothing else."""
    fields: dict[str, Any] = {
        feature.name: (
            float,
            Field(
                ge=feature.minimum,
                le=feature.maximum,
                strict=True,
                allow_inf_nan=False,
                description=f"{feature.name.replace('_', ' ')} in {feature.unit}",
                examples=[feature.minimum + (feature.maximum - feature.minimum) / 4],
            ),
        )
        for feature in task.features
    }
    return create_model("Instance", __config__=ConfigDict(extra="forbid"), **fields)


Instance = instance_model(TASK)


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, dict) else value


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    instances: Annotated[list[Instance], BeforeValidator(_one_or_many)] = Field(  # type: ignore[valid-type]
        min_length=1,
        description="Rows to predict; a single object is accepted as a list of one.",
    )


class Prediction(BaseModel):
    label: str = Field(description="The most probable class.")
    index: int = Field(description="Its position in the task's class list.")
    probabilities: dict[str, float] = Field(description="Probability of every class.")


class ModelRef(BaseModel):
    name: str
    version: str


class PredictResponse(BaseModel):
    predictions: list[Prediction]
    model: ModelRef


class Health(BaseModel):
    status: str
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


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413, counting the bytes as they arrive
    (a Content-Length can be missing or wrong)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._too_large(send)
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _BodyTooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _BodyTooLarge:
            await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        response = JSONResponse(
            {"detail": f"request body over {self.max_bytes} bytes; send fewer instances"},
            status_code=413,
        )
        await response({"type": "http"}, _no_receive, send)


class _BodyTooLarge(Exception):
    pass


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


def _field(location: tuple[Any, ...]) -> str:
    """``("body", "instances", 0, "sepal_length")`` -> ``instances[0].sepal_length``."""
    parts = [p for p in location if p != "body"]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def create_app(settings: Settings, slot: ModelSlot) -> FastAPI:
    """The API serving ``slot``, polled every ``settings.api_poll_seconds``."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        slot.refresh()  # serve at once when there is a champion
        poller = Poller(slot, settings.api_poll_seconds)
        poller.start()
        yield
        poller.stop()

    app = FastAPI(
        title="mlops_assets prediction API",
        summary=f"Serves the registry's champion of {settings.model_name} ({TASK.name}).",
        version="1",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimit, max_bytes=settings.api_max_body_bytes)

    def require_key(request: Request) -> None:
        if settings.api_key is None:
            return
        given = request.headers.get("x-api-key", "")
        if not hmac.compare_digest(given.encode(), settings.api_key.encode()):
            raise _Refused(401, "missing or wrong X-API-Key header")

    authorized: list[Callable[..., Any]] = [Depends(require_key)]

    @app.exception_handler(_Refused)
    async def refused(_: Request, exc: _Refused) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    @app.exception_handler(MlopsError)
    async def unavailable(_: Request, exc: MlopsError) -> JSONResponse:
        return JSONResponse({"detail": exc.message, "hint": exc.hint}, status_code=503)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _field(tuple(e.get("loc", ()))), "message": e.get("msg", "invalid")}
            for e in exc.errors()
        ]
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            return JSONResponse({"detail": "the body is not valid JSON"}, status_code=400)
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        return JSONResponse({"detail": summary, "errors": errors[:50]}, status_code=422)

    @app.exception_handler(Exception)
    async def fault(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; it has been logged"}, status_code=500)

    @app.get("/health", response_model=Health, responses={503: {"description": "No model yet"}})
    def health() -> Health:
        """200 once a model is loaded (with its name and version), 503 before."""
        current = require_model(slot)
        return Health(status="ok", name=current.name, version=current.version)

    @app.get("/model", response_model=ModelInfo, dependencies=authorized)
    def model() -> ModelInfo:
        """The served version, its benchmark metrics, and the state of following the alias."""
        return ModelInfo(**require_model(slot).describe(), **slot.status())

    @app.post(
        "/predict",
        response_model=PredictResponse,
        dependencies=authorized,
        responses={
            401: {"description": "Missing or wrong X-API-Key (when one is configured)"},
            413: {"description": "Too many instances or too large a body"},
            422: {"description": "An instance is invalid; the field is named"},
            503: {"description": "No model loaded yet"},
        },
    )
    async def predict(request: PredictRequest) -> JSONResponse:
        """Class, class index and probabilities for each instance."""
        # async: the prediction takes well under a millisecond, less than a thread hop.
        if len(request.instances) > settings.api_max_batch:
            raise _Refused(
                413,
                f"{len(request.instances)} instances; at most {settings.api_max_batch} per "
                "request (MLOPS_API_MAX_BATCH)",
            )
        current = require_model(slot)  # one model for the whole request, even mid-swap
        features = np.array(
            [[getattr(row, name) for name in TASK.feature_names] for row in request.instances]
        )
        # Built from checked values, so returned as is rather than validated again.
        return JSONResponse(
            {
                "predictions": current.predict(features, TASK),
                "model": {"name": current.name, "version": current.version},
            }
        )

    return app


class _Refused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        self.status, self.detail = status, detail


def app_from_settings(settings: Settings) -> FastAPI:
    """The API for ``settings``: follows ``champion`` of the configured model."""
    from mlops_assets.core.reference_data import load_reference_data
    from mlops_assets.core.registry import CHAMPION
    from mlops_assets.core.serving import champion_slot

    probe = load_reference_data(settings.iris_csv, TASK).frame.sample(20, random_state=0)
    slot = champion_slot(settings.tracking_uri, settings.model_name, TASK, probe, CHAMPION)
    return create_app(settings, slot)
