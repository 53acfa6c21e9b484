"""The OpenAI chat-completions protocol over :class:`~chatbot.service.ChatService`: ``/v1/models``
and ``/v1/chat/completions`` (whole or streamed as server-sent events).

The last user message is the question, the earlier ones its history, as in the chat; system
messages are read and ignored: the reader's rules are the server's. The message content is the
answer with its [n] markers and a «Sources» list (title and verbatim quote; ``"sources":
false`` in the request leaves it out); the structured citations travel in the ``chatbot``
extension field (docs/api.md), in the last chunk when streaming. Errors have OpenAI's shape,
``{"error": {"message", "type", "code"}}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from chatbot.access import Guard, client_id
from chatbot.answer import Answer, Citation, Progress, Sentence
from chatbot.errors import (
    AlreadyVotedError,
    BackendError,
    ChatbotError,
    IndexStateError,
    ModelError,
    QuestionError,
    RateLimitedError,
)
from chatbot.links import text_fragment_url
from chatbot.reader import ModelReader
from chatbot.retrieval import clean_question
from chatbot.service import ChatService

logger = logging.getLogger(__name__)

SOURCES = {"fr": "Sources :", "en": "Sources:"}
CLOSEST = {
    "fr": "Passage le plus proche (ce n’est pas une réponse) :",
    "en": "Closest passage (not an answer):",
}
# Where an assistant message sent back by a client stops being the answer: its sources list.
_APPENDIX = re.compile(r"\n\n(?:" + "|".join(re.escape(h) for h in [*SOURCES.values(), *CLOSEST.values()]) + r")", re.S)
ROLES = ("system", "developer", "user", "assistant")
# A refused question is answered after this pause (never longer than its Retry-After): a
# client that loops without waiting sends one request a second per connection instead of
# hundreds, each costing the process that answers the others (measured: docs/api.md, Load).
REFUSAL_PAUSE_S = 1.0


class ApiError(Exception):
    """An error answered in OpenAI's shape with ``status``."""

    def __init__(
        self, status: int, message: str, kind: str, code: str | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.code = code
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "code": self.code, "param": None}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def invalid(message: str, code: str = "invalid_request") -> ApiError:
    return ApiError(400, message, "invalid_request_error", code)


@dataclass(frozen=True)
class Conversation:
    """What a request asks: the question, the earlier user messages (oldest first) and the
    (question, answer) pairs a language model reads; the system messages are not kept."""

    question: str
    history: tuple[str, ...] = ()
    turns: tuple[tuple[str, str], ...] = ()


def _text(content: Any, index: int) -> str:
    """A message's text: a string, or a list of ``{"type": "text", "text": ...}`` parts.

    Raises:
        ApiError: any other content (images, audio...).
    """
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        texts = [p.get("text") for p in content]
        if all(isinstance(t, str) for t in texts):
            return "".join(str(t) for t in texts)
    raise invalid(f"messages[{index}].content must be a string or a list of text parts.", "invalid_content")


def answer_part(content: str) -> str:
    """An assistant message as this API wrote it, without its sources list: the answer."""
    return _APPENDIX.split(content, maxsplit=1)[0].strip()


def parse_messages(messages: Any) -> Conversation:
    """The conversation of a request's ``messages``.

    Raises:
        ApiError: not a list of messages with known roles and text content, or the last one
            is not the user's.
    """
    if not isinstance(messages, list) or not messages:
        raise invalid("messages must be a non-empty list of {role, content} objects.", "invalid_messages")
    parsed: list[tuple[str, str]] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise invalid(f"messages[{i}] must be an object whose role is one of {', '.join(ROLES)}.", "invalid_role")
        parsed.append((str(message["role"]), _text(message.get("content"), i)))
    if parsed[-1][0] != "user":
        raise invalid("The last message must be the user's question.", "invalid_messages")
    history: list[str] = []
    turns: list[tuple[str, str]] = []
    asked: str | None = None
    for role, text in parsed[:-1]:
        if role == "user":
            history.append(text)
            asked = text
        elif role == "assistant" and asked is not None:
            turns.append((asked, answer_part(text)))
            asked = None
    return Conversation(parsed[-1][1], tuple(history), tuple(turns))


def model_names(service: ChatService) -> list[str]:
    """The readers this server answers with: its own, and the extractive one a writing reader
    falls back on."""
    names = [service.reader.name]
    if isinstance(service.reader, ModelReader):
        names.append("extractive")
    return names


def _where(citation_text_start: int, start: int, end: int) -> dict[str, int]:
    return {
        "passage_start": start,
        "passage_end": end,
        "article_start": citation_text_start + start,
        "article_end": citation_text_start + end,
    }


def extension(service: ChatService, result: Answer, answer_id: str) -> dict[str, Any]:
    """The ``chatbot`` field: the answer's structured citations, or its closest passage."""

    def cited(c: Citation) -> dict[str, Any]:
        return {
            "n": c.n,
            "article_id": c.article_id,
            "article": c.article,
            **({"article_url": c.article_url, "url": c.url} if c.article_url else {}),
            "chunk_id": c.chunk_id,
            "quote": c.quote,
            **_where(c.chunk_start, c.quote_start, c.quote_end),
        }

    def closest(s: Sentence) -> dict[str, Any]:
        chunk = s.hit.chunk
        return {
            "article_id": chunk.article_id,
            "article": chunk.article_title,
            **(
                {"article_url": chunk.article_url, "url": text_fragment_url(chunk.article_url, s.text)}
                if chunk.article_url
                else {}
            ),
            "chunk_id": chunk.id,
            "quote": s.text,
            **_where(chunk.start, s.start, s.end),
            "not_an_answer": True,
        }

    near = result.evidence[:1] if result.abstained else ()
    return {
        "answer_id": answer_id,
        "abstained": result.abstained,
        "reader": result.reader,
        "mode": result.mode,
        "lang": result.lang,
        "note": result.note,
        "citations": [cited(c) for c in result.citations],
        "closest": closest(near[0]) if near else None,
    }


def content(result: Answer, sources: bool = True) -> str:
    """The message text: the answer, its note, and (``sources``) the titles and quotes, with
    the link to the post on the blog when the article has one."""
    lang = result.lang if result.lang in SOURCES else "fr"
    parts = [result.text + (f"\n\n({result.note})" if result.note else "")]
    if not sources:
        return parts[0]
    if result.abstained and result.evidence:
        s = result.evidence[0]
        parts.append(f"{CLOSEST[lang]} {s.hit.chunk.article_title} — « {' '.join(s.text.split())} »")
    elif result.citations:
        lines = [SOURCES[lang]]
        for n, cited in result.sources():
            quotes = " […] ".join(f"« {' '.join(c.quote.split())} »" for c in cited)
            link = f" {cited[0].url}" if cited[0].url else ""  # the post on the blog, at the first quote
            lines.append(f"[{n}] {cited[0].article} — {quotes}{link}")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


@dataclass(frozen=True)
class Asked:
    """A valid request: what to answer, with which reader, for which client."""

    conversation: Conversation
    model: str
    stream: bool
    sources: bool
    client: str


def parse_request(body: Any, service: ChatService, client: str) -> Asked:
    """A request body's meaning.

    Raises:
        ApiError: malformed (400), or an unknown model (404).
    """
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.", "invalid_body")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model is required: one of " + ", ".join(model_names(service)) + ".", "missing_model")
    conversation = parse_messages(body.get("messages"))
    if model not in model_names(service):
        raise ApiError(
            404,
            f"The model {model!r} does not exist here; use one of {', '.join(model_names(service))}.",
            "invalid_request_error",
            "model_not_found",
        )
    try:
        clean_question(conversation.question, service.settings.max_question_chars)
    except QuestionError as exc:
        raise invalid(str(exc), "invalid_question") from exc
    return Asked(conversation, model, bool(body.get("stream")), body.get("sources", True) is not False, client)


def _answers(service: ChatService, request: Asked) -> Iterator[Progress | str | Answer]:
    c = request.conversation
    return service.stream(
        c.question, list(c.history), list(c.turns), service.settings.top_k, service.settings.mode, reader=request.model
    )


def _remember(service: ChatService, request: Asked, result: Answer, started: float) -> str:
    """Keep the answer for feedback (and the question log): its id."""
    c = request.conversation
    return service.remember(c.question, list(c.history), result, client=request.client, started=started, via="api")


def complete(service: ChatService, request: Asked) -> dict[str, Any]:
    """The whole ``chat.completion`` object.

    Raises:
        ChatbotError: the question could not be answered.
    """
    started = time.monotonic()
    result = next(item for item in _answers(service, request) if isinstance(item, Answer))
    answer_id = _remember(service, request, result, started)
    return {
        "id": f"chatcmpl-{answer_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content(result, request.sources)},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        "chatbot": extension(service, result, answer_id),
    }


def _event(data: Any) -> bytes:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def stream_events(service: ChatService, request: Asked) -> Iterator[bytes]:
    """The server-sent events of a streamed answer: the role at once, a comment per stage of
    the work (clients ignore them; they keep proxies from closing), the checked answer, then
    the last chunk with ``finish_reason`` and the ``chatbot`` field, then ``[DONE]``. Text is
    sent once its citations are checked, so a client never shows words the check removes."""
    created = int(time.time())
    head = {"object": "chat.completion.chunk", "created": created, "model": request.model}
    provisional = f"chatcmpl-{time.monotonic_ns():x}"

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return _event({"id": provisional, **head, "choices": [choice], **extra})

    yield chunk({"role": "assistant", "content": ""})
    started = time.monotonic()
    try:
        for item in _answers(service, request):
            if isinstance(item, Progress):
                yield f": {item.stage}\n\n".encode()
            elif isinstance(item, Answer):
                answer_id = _remember(service, request, item, started)
                text = content(item, request.sources)
                for piece in re.findall(r"\S+\s*|\s+", text):
                    yield chunk({"content": piece})
                yield chunk({}, "stop", chatbot=extension(service, item, answer_id))
    except ChatbotError as exc:  # after the first event the status is sent: the error is an event
        logger.warning("Streamed question failed: %s", exc)
        yield _event(failed(exc).body())
    yield b"data: [DONE]\n\n"


def bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def authorised_client(request: Request, guard: Guard) -> str:
    """The client a request comes from: its key when keys are set (checked), else its IP.

    Raises:
        ApiError: 401, a missing or wrong key.
    """
    address = request.client.host if request.client else None
    if not guard.access.api_keys:
        return client_id(None, address)
    token = bearer(request)
    if not token:
        raise ApiError(401, "Missing API key: send Authorization: Bearer <key>.", "invalid_request_error",
                       "missing_api_key", {"WWW-Authenticate": "Bearer"})  # fmt: skip
    if not guard.access.key_matches(token):
        raise ApiError(401, "Incorrect API key.", "invalid_request_error", "invalid_api_key",
                       {"WWW-Authenticate": "Bearer"})  # fmt: skip
    return client_id(token, address)


async def read_body(request: Request, limit: int) -> Any:
    """The JSON body, at most ``limit`` bytes.

    Raises:
        ApiError: 413 when larger, 400 when not JSON.
    """
    too_big = ApiError(413, f"The request body is larger than {limit} bytes.", "invalid_request_error",
                       "request_too_large")  # fmt: skip
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_big
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise too_big
    try:
        return json.loads(body)
    except ValueError as exc:
        raise invalid(f"The request body is not JSON: {exc}.", "invalid_json") from exc


def failed(exc: ChatbotError) -> ApiError:
    """A question the server could not answer, told by its kind: the detail (paths, hosts) is
    the server's log's, never the client's."""
    if isinstance(exc, IndexStateError):
        message = "The articles' index is missing, damaged or being replaced; the operator must rebuild it."
    elif isinstance(exc, BackendError):
        message = "The search engine does not answer; try again later."
    elif isinstance(exc, ModelError):
        message = "The embedding model could not be loaded; the operator must check the server."
    else:
        message = "The question could not be answered; try again later."
    return ApiError(500, message, "server_error", "answer_failed")


def limited(exc: RateLimitedError) -> ApiError:
    return ApiError(429, str(exc), "rate_limit_error", "rate_limit_exceeded", {"Retry-After": str(exc.retry_after)})


def router(service: ChatService, guard: Guard) -> APIRouter:
    """``/v1/models`` and ``/v1/chat/completions`` (and ``/v1/feedback``) over ``service``."""
    api = APIRouter(prefix="/v1")

    @api.get("/models")
    async def models(request: Request) -> JSONResponse:
        try:
            authorised_client(request, guard)
        except ApiError as exc:
            return exc.response()
        rows = [{"id": name, "object": "model", "created": 0, "owned_by": "chatbot"} for name in model_names(service)]
        return JSONResponse({"object": "list", "data": rows})

    @api.post("/chat/completions", response_model=None)
    async def chat_completions(request: Request) -> JSONResponse | StreamingResponse:
        try:
            client = authorised_client(request, guard)
            try:  # first: a client over its limit costs neither the body's reading nor its parsing
                service.admit(client)
            except RateLimitedError as exc:
                await asyncio.sleep(min(REFUSAL_PAUSE_S, exc.retry_after))
                raise limited(exc) from exc
            wanted = parse_request(await read_body(request, guard.access.max_body_bytes), service, client)
            if wanted.stream:
                events = stream_events(service, wanted)
                return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
            try:
                return JSONResponse(await run_in_threadpool(complete, service, wanted))
            except ChatbotError as exc:
                logger.warning("Question failed: %s", exc)
                raise failed(exc) from exc
        except ApiError as exc:
            return exc.response()

    @api.post("/feedback")
    async def feedback(request: Request) -> JSONResponse:
        """``{"answer_id", "vote": "up"|"down"|"", "comment"}`` on an answer this API gave."""
        try:
            client = authorised_client(request, guard)
            body = await read_body(request, 20_000)
            if not isinstance(body, dict) or not isinstance(body.get("answer_id"), str):
                raise invalid("The body is {answer_id, vote, comment}.", "invalid_body")
            try:
                await run_in_threadpool(service.record_feedback, body["answer_id"], str(body.get("vote", "")),
                                        str(body.get("comment", "")), client)  # fmt: skip
            except KeyError as exc:
                raise ApiError(404, "No such answer (or it is too old).", "invalid_request_error",
                               "unknown_answer") from exc  # fmt: skip
            except ValueError as exc:
                raise invalid(str(exc), "invalid_vote") from exc
            except AlreadyVotedError as exc:
                raise ApiError(409, str(exc), "invalid_request_error", "already_voted") from exc
            except RateLimitedError as exc:
                raise limited(exc) from exc
            except OSError as exc:
                logger.warning("Feedback not written: %s", exc)
                raise ApiError(507, "The feedback was not written: the server's feedback file is full or cannot "
                               "be written.", "server_error", "feedback_full") from exc  # fmt: skip
            return JSONResponse({"ok": True})
        except ApiError as exc:
            return exc.response()

    @api.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def unknown(rest: str) -> JSONResponse:
        return error_shape(404, f"No endpoint /v1/{rest} here: /v1/models, /v1/chat/completions, /v1/feedback.")

    return api


def error_shape(status: int, detail: str) -> JSONResponse:
    """Starlette's own errors under /v1 (405, unknown path) in OpenAI's shape."""
    return ApiError(status, detail, "invalid_request_error", str(status)).response()
