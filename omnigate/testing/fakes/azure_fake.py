"""FakeAzureOpenAI: Azure OpenAI deployments (api-key, api-version, content-filter annotations)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import orjson
from aiohttp import web

from omnigate.testing.fakes.openai_fake import FakeOpenAI
from omnigate.testing.fakes.script import RecordedRequest, Reply
from omnigate.testing.fakes.server import Call, Handler

__all__ = ["FakeAzureOpenAI"]

_SAFE = {"filtered": False, "severity": "safe"}
_NO_KEY = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
    "valid key for an active subscription and use a correct regional API endpoint for your resource."
)


def _filter_results(*, prompt: bool = False, blocked: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"hate": _SAFE, "self_harm": _SAFE, "sexual": _SAFE, "violence": _SAFE}
    if prompt:
        out["jailbreak"] = {"filtered": False, "detected": False}
    else:
        out["protected_material_text"] = {"filtered": False, "detected": False}
    if blocked:
        out["violence"] = {"filtered": True, "severity": "medium"}
    return out


class FakeAzureOpenAI(FakeOpenAI):
    """Fake Azure OpenAI resource; ``base_url`` is the origin (use as ``azure_endpoint``).

    Serves ``POST /openai/deployments/{deployment}/chat/completions?api-version=…`` (and the
    v1 API ``POST /openai/v1/chat/completions``, model = deployment, no api-version). Auth:
    ``api-key`` header or ``Authorization: Bearer``. Missing ``api-version`` → 404
    ``Resource not found``; a version outside ``api_versions`` (when given) → 400.
    ``deployments`` maps deployment → model name reported in responses (None: any
    deployment, reported model = deployment name); unknown → 404 ``DeploymentNotFound``.
    Responses carry ``prompt_filter_results`` / ``content_filter_results``; streams start
    with an empty-``choices`` chunk. Errors use Azure's ``{"error":{"code":"<str>","message"}}``.
    """

    provider: ClassVar[str] = "azure"
    base_path: ClassVar[str] = ""
    azure: ClassVar[bool] = True

    def __init__(
        self,
        *,
        api_key: str | None = None,
        deployments: Mapping[str, str] | None = None,
        api_versions: Sequence[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(api_key=api_key, models=list((deployments or {}).values()), host=host, port=port)
        self.deployments = dict(deployments) if deployments is not None else None
        self.api_versions = list(api_versions) if api_versions is not None else None

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("POST", "/openai/deployments/{deployment}/chat/completions", self._deployment_chat),
            ("POST", "/openai/v1/chat/completions", self._v1_chat),
        ]

    def check_auth(self, record: RecordedRequest) -> Reply | None:
        key = record.headers.get("api-key", "")
        auth = record.headers.get("authorization", "")
        if not key and auth.lower().startswith("bearer "):
            key = auth[7:].strip()
        if not key or (self.api_key is not None and key != self.api_key):
            return Reply.error(401, _NO_KEY, code="401")
        return None

    def _deployment_model(self, deployment: str) -> str | Reply:
        if self.deployments is None:
            return deployment
        if deployment not in self.deployments:
            msg = (
                "The API deployment for this resource does not exist. If you created the deployment "
                "within the last 5 minutes, please wait a moment and try again."
            )
            return Reply.error(404, msg, code="DeploymentNotFound")
        return self.deployments[deployment]

    async def _deployment_chat(self, request: web.Request, record: RecordedRequest) -> web.StreamResponse:
        version = record.query.get("api-version")
        if not version:
            return await self.respond(request, record, Reply.error(404, "Resource not found", code="404"))
        if self.api_versions is not None and version not in self.api_versions:
            reply = Reply.error(400, "API version not supported", code="BadRequest")
            return await self.respond(request, record, reply)
        return await self._serve(request, record, request.match_info["deployment"])

    async def _v1_chat(self, request: web.Request, record: RecordedRequest) -> web.StreamResponse:
        body = record.json
        deployment = str(body.get("model") or "") if isinstance(body, dict) else ""
        return await self._serve(request, record, deployment)

    async def _serve(
        self, request: web.Request, record: RecordedRequest, deployment: str
    ) -> web.StreamResponse:
        problem = self.check_auth(record) or self.check_body(record.json, need_model=False)
        if problem is not None:
            return await self.respond(request, record, problem)
        model = self._deployment_model(deployment)
        if isinstance(model, Reply):
            return await self.respond(request, record, model)
        return await self.serve_chat(request, record, model)

    async def _not_found(self, request: web.Request, record: RecordedRequest) -> web.StreamResponse:
        return await self.respond(request, record, Reply.error(404, "Resource not found", code="404"))

    def response_headers(self, seq: int) -> dict[str, str]:
        rid = f"00000000-0000-4000-8000-{seq:012d}"
        return {"apim-request-id": rid, "x-request-id": rid, "x-ms-region": "Fake Region"}

    def error_body(self, reply: Reply) -> Any:
        err: dict[str, Any] = {"code": reply.code or str(reply.status), "message": reply.message}
        if reply.error_type is not None:
            err = {"message": reply.message, "type": reply.error_type, "param": None, "code": reply.code}
        return {"error": err}

    def decorate_choice(self, call: Call, choice: dict[str, Any], *, final: bool) -> dict[str, Any]:
        blocked = call.reply.finish() == "content_filter"
        content = "delta" not in choice or bool(choice["delta"].get("content"))
        results = _filter_results(blocked=blocked and final) if content or (final and blocked) else {}
        return {**choice, "content_filter_results": results}

    def decorate_completion(self, call: Call, doc: dict[str, Any]) -> dict[str, Any]:
        results = [{"prompt_index": 0, "content_filter_results": _filter_results(prompt=True)}]
        return {**doc, "prompt_filter_results": results}

    def stream_chunks(self, call: Call) -> list[dict[str, Any]]:
        prelude = {
            "choices": [],
            "created": 0,
            "id": "",
            "model": "",
            "object": "",
            "prompt_filter_results": [
                {"prompt_index": 0, "content_filter_results": _filter_results(prompt=True)}
            ],
        }
        return [prelude, *super().stream_chunks(call)]

    def render_stream_error(self, call: Call) -> bytes:
        reply = call.reply
        err = {
            "code": reply.error_type or "InternalServerError",
            "message": reply.message or "Internal error",
        }
        return b"data: " + orjson.dumps({"error": err}) + b"\n\n"
