"""Domain errors. Library code raises these; the CLI and the web chat turn them into messages."""

from __future__ import annotations


class ChatbotError(Exception):
    """Base class of every error this package raises on purpose."""


class CorpusError(ChatbotError):
    """The corpus folder is missing, empty or unreadable."""


class IndexStateError(ChatbotError):
    """Base class of index problems; the message names the command that fixes it."""


class IndexMissingError(IndexStateError):
    """No index has been built in the folder yet."""


class IndexCorruptError(IndexStateError):
    """An index file is missing, truncated, corrupt, or of another format version."""


class IndexMismatchError(IndexStateError):
    """The index was built with other settings (embedder, chunking) than the ones configured."""


class IndexLockedError(IndexStateError):
    """Another indexer is writing to the same index folder."""


class UsageError(ChatbotError, ValueError):
    """The command or its options cannot work as given (an unknown reader, a setting out of
    range...); the message says what to change. A ``ValueError`` too, for callers that catch
    those."""


class QuestionError(ChatbotError):
    """The question cannot be searched (empty, too long...)."""


class EmptyQuestionError(QuestionError):
    """Nothing to search once spaces and control characters are removed."""


class QuestionTooLongError(QuestionError):
    """Longer than ``Settings.max_question_chars``."""

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(f"The question is too long ({length} characters; at most {limit}).")
        self.length = length
        self.limit = limit


class ModelError(ChatbotError):
    """The embedding or reranking model cannot be loaded."""


class ReaderModelError(ChatbotError):
    """The reader has no decline model for the index's embedder, or its file cannot be read;
    the message names the command that fits one."""


class LocalModelError(ChatbotError):
    """The local language model is not installed, or its assembled file is not the pinned one;
    the message names the fix."""


class LanguageModelFailedError(ChatbotError):
    """The language model failed while writing (llama.cpp: the prompt past its context window,
    a decoding error); the reader answers with the extractive answer instead."""


class ModelBusyError(ChatbotError):
    """A language model cannot take the question now (queue full, waited too long, too slow);
    the reader answers with the extractive answer instead."""


class BenchError(ChatbotError):
    """A step of ``chatbot bench`` cannot run (the chat server it starts never listens...);
    the message says which and what to check."""


class ImportSourceError(ChatbotError):
    """A file given to ``chatbot import`` cannot be read at all (not XML, truncated, an XML
    bomb, not UTF-8...); the message says why."""


class FeedbackFullError(ChatbotError, OSError):
    """The feedback file has reached its size cap; nothing more is written to it."""


class BackendError(IndexStateError):
    """The search engine behind ``--backend milvus`` cannot be used: its client is not
    installed, the URI or token is wrong, the server is down or refuses a request; the message
    names the fix."""


class RateLimitedError(ChatbotError):
    """A client asked more than its limit allows; ``retry_after`` seconds until it may again."""

    def __init__(self, what: str, retry_after: int) -> None:
        super().__init__(f"Too many {what}: try again in {retry_after} s.")
        self.what = what
        self.retry_after = retry_after


class AlreadyVotedError(ChatbotError):
    """This client already voted (or commented) on this answer."""
