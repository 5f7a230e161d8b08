"""Embeddings: text to vectors, position information, the vocabulary as a map, neighbours and analogies,
meaning in context, and sentence vectors for search.

Vectors come out as numpy; projections of a whole vocabulary are cached on disk (the bundled models' ship in
assets/projections, made by `python3 -m explorer.embeddings`).
"""

from __future__ import annotations

import hashlib
import math
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from explorer import activations, models
from explorer.labels import piece_style, token_labels

TOKEN_KINDS = ("hangul", "latin_word", "continuation", "digits", "punctuation", "special", "byte_piece", "other")
METHODS = ("umap", "pca", "tsne")
SHIPPED = Path(__file__).resolve().parent.parent / "assets" / "projections"
MAX_SUBSET = 3000  # points projected on demand
MAX_SENTENCES = 200


# ---------------------------------------------------------------- the vocabulary

def vocabulary_matrix(loaded: models.LoadedModel) -> np.ndarray:
    """The static token-embedding matrix: (vocab, d) float32, one row per token id (a copy where the table is
    stored narrower: `vocabulary_rows` reads it without one)."""
    return loaded.model.get_input_embeddings().weight.detach().float().cpu().numpy()


def vocabulary_rows(loaded: models.LoadedModel) -> UnitRows:
    """The token-embedding table's rows at unit length, read from the model's own weights."""
    return UnitRows(loaded.model.get_input_embeddings().weight.detach().cpu())


@torch.inference_mode()
def input_scale(loaded: models.LoadedModel) -> float:
    """What the embedding module multiplies a table row by on its way into the model: 1 for most, √640 ≈ 25.3 for
    Gemma 3 (its `embed_scale`), measured on one token rather than read from a family's attribute."""
    embed = loaded.parts.embed
    weight = embed.weight  # (vocab, d)
    token = int(torch.argmax(weight.detach()[:1000].float().norm(dim=-1)))  # a row that is not zero (not padding)
    row = embed(torch.tensor([[token]], device=weight.device))[0, 0].float()  # (d,)
    return float(row.norm() / weight[token].float().norm())


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.maximum(np.linalg.norm(matrix, axis=-1, keepdims=True), 1e-12)  # (n, d)


class UnitRows:
    """A table's rows scaled to unit length, without a copy of the table: rows and products divide by the norms.

    For a vocabulary this saves a second (vocab, d) array per model (SmolLM2: 113 MB of the shared process): the
    table is the model's own weights, in their own dtype; a bfloat16 table (Gemma 3's) is read in float32 slices of
    ROWS rows, never as a 640 MB float32 copy.
    """

    ROWS = 16_384  # rows widened at a time: 40 MB at d = 640

    def __init__(self, table: np.ndarray | torch.Tensor):
        self.table = torch.as_tensor(table).detach()  # (n, d), shares the array's or the weight's memory
        self.norms = torch.cat([rows.float().norm(dim=-1) for rows in self.table.split(self.ROWS)]).clamp_min(1e-12).numpy()  # (n,)
        self.shape = tuple(self.table.shape)

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, ids) -> np.ndarray:
        return self.table[ids].float().numpy() / self.norms[ids][..., None]  # (..., d)

    def __matmul__(self, other: np.ndarray) -> np.ndarray:
        """unit rows @ other: (d,) -> (n,), (d, m) -> (n, m)."""
        other = torch.as_tensor(np.asarray(other, dtype=np.float32))
        product = torch.cat([rows.float() @ other for rows in self.table.split(self.ROWS)]).numpy()
        return product / (self.norms if product.ndim == 1 else self.norms[:, None])


def token_kind(label: str, special: bool, wordpiece: bool) -> str:
    """Which colour a vocabulary entry gets on the map."""
    if special:
        return "special"
    if "0x" in label and ("⟨" in label or label.startswith("0x")):
        return "byte_piece"
    if any("\uac00" <= c <= "\ud7a3" or "\u1100" <= c <= "\u11ff" or "\u3130" <= c <= "\u318f" for c in label):
        return "hangul"
    core = label[2:] if wordpiece and label.startswith("##") else label.lstrip(" ")
    if core.isdigit():
        return "digits"
    if core and not any(c.isalnum() for c in core):
        return "punctuation"
    if core.isascii() and any(c.isalpha() for c in core):
        starts_word = not label.startswith("##") if wordpiece else label.startswith(" ")
        return "latin_word" if starts_word else "continuation"
    return "other"


SCRIPTS = ("all", "hangul", "latin", "other")  # the map's filter
SCRIPT_OF_KIND = {"hangul": "hangul", "latin_word": "latin", "continuation": "latin"}  # every other kind: "other"
MAP_POINTS = 50_000  # points sent to the browser: SmolLM2's 49,152 are ~2.6 MB; Gemma's 262,144 would be ~14 MB


def map_ids(kinds: np.ndarray, script: str = "all", limit: int = MAP_POINTS) -> np.ndarray:
    """The token ids the map draws: those of one script (all: every kind), at most `limit`, lowest ids first (a
    BPE vocabulary numbers its pieces in the order it learned them, so the commonest pieces come first)."""
    if script == "all":
        chosen = np.arange(len(kinds))
    else:
        scripts = np.array([SCRIPT_OF_KIND.get(kind, "other") for kind in kinds])
        chosen = np.flatnonzero(scripts == script)
    return chosen[:limit]


def token_kinds(tokenizer, labels: list[str]) -> np.ndarray:
    special = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}) or {})
    wordpiece = piece_style(tokenizer) == "wordpiece"
    return np.array([token_kind(label, i in special, wordpiece) for i, label in enumerate(labels)])


def neighbours(unit_matrix: np.ndarray | UnitRows, vector: np.ndarray, k: int = 10, exclude=()) -> tuple[np.ndarray, np.ndarray]:
    """The k rows most similar to `vector` by cosine, in the full space: (ids, similarities), best first."""
    similarity = unit_matrix @ (vector / max(float(np.linalg.norm(vector)), 1e-12))  # (vocab,)
    if len(exclude):
        similarity = similarity.copy()
        similarity[list(exclude)] = -np.inf
    best = np.argpartition(-similarity, min(k, len(similarity) - 1))[:k]
    best = best[np.argsort(-similarity[best])]
    return best, similarity[best]


def neighbour_ids(unit_matrix: np.ndarray | UnitRows, ids: list[int], k: int = 10) -> np.ndarray:
    """The k nearest rows to each of `ids` (itself first), in one matrix product: (len(ids), k)."""
    similarity = (unit_matrix @ unit_matrix[ids].T).T  # (n, vocab)
    best = np.argpartition(-similarity, min(k, similarity.shape[1] - 1), axis=1)[:, :k]  # (n, k) unordered
    order = np.argsort(-np.take_along_axis(similarity, best, axis=1), axis=1)
    return np.take_along_axis(best, order, axis=1)


def word_pieces(tokenizer, word: str) -> list[int]:
    """The ids a word becomes on its own (byte-level models: with the space that starts a word mid-sentence)."""
    text = " " + word.strip() if piece_style(tokenizer) != "wordpiece" else word.strip()
    return tokenizer(text, add_special_tokens=False)["input_ids"]


@dataclass
class Analogy:
    answers: list[tuple[int, float]]  # (token id, cosine) best first, the three input words left out
    split_words: list[str]  # words that are several tokens: their vector is the mean of the pieces, which is rough


def analogy(tokenizer, unit_matrix: np.ndarray | UnitRows, a: str, b: str, c: str, k: int = 8) -> Analogy:
    """a − b + c: 'king' − 'man' + 'woman' should land near 'queen' when each word is one token."""
    vectors, used, split = [], set(), []
    for word in (a, b, c):
        ids = word_pieces(tokenizer, word)
        if not ids:
            raise ValueError(word)
        if len(ids) > 1:
            split.append(word)
        used.update(ids)
        vectors.append(unit_matrix[ids].mean(axis=0))  # (d,)
    target = vectors[0] - vectors[1] + vectors[2]
    ids, scores = neighbours(unit_matrix, target, k, exclude=sorted(used))
    return Analogy(list(zip(ids.tolist(), scores.tolist())), split)


# ---------------------------------------------------------------- positions

def sinusoidal(positions: int, width: int) -> np.ndarray:
    """The original Transformer's encoding: sin on even columns, cos on odd, wavelengths from 2π to 10000·2π."""
    position = np.arange(positions)[:, None]  # (n, 1)
    rates = 1.0 / 10000 ** (np.arange(0, width, 2) / width)  # (width / 2,)
    table = np.zeros((positions, width), dtype=np.float32)
    table[:, 0::2] = np.sin(position * rates)
    table[:, 1::2] = np.cos(position * rates[: width // 2])
    return table


def learned_positions(loaded: models.LoadedModel, positions: int) -> np.ndarray:
    """Learned position rows (positions, d) (BERT, GPT-2); a rotary model has none (CaptureError not_available)."""
    table = loaded.parts.position_table
    if table is None:
        raise activations.CaptureError("not_available", "position_embeddings")
    return table.weight[:positions].detach().float().cpu().numpy()


def cosine_matrix(vectors: np.ndarray) -> np.ndarray:
    unit = unit_rows(vectors)
    return unit @ unit.T  # (n, n)


@dataclass(frozen=True)
class RotaryBase:
    layer_type: str  # the key in Architecture.rotary_bases ("" where one base serves every layer)
    base: float  # θ in inverse frequency_i = θ^(-2i / head_dim): 10,000 for most models
    layers: list[int]  # the layers that turn their queries and keys with it


def rotary_bases(loaded: models.LoadedModel) -> list[RotaryBase]:
    """Each rotary base the model uses and its layers (Gemma 3: 10,000 on the sliding-window layers, 1,000,000 on the
    full ones), read from the inverse frequencies its rotary module holds."""
    parts = loaded.parts
    found = []
    for layer_type, inverse in parts.rotary_bases.items():
        base = float(torch.exp(-torch.log(inverse[1]) * len(inverse))) if len(inverse) > 1 else float("nan")
        layers = [i for i, kind in enumerate(parts.layer_types) if kind == layer_type]
        found.append(RotaryBase(layer_type, float(f"{base:.3g}"), layers))  # 999,999.9 in float32 is 1,000,000
    return sorted(found, key=lambda b: b.layers[0] if b.layers else 0)


def rotary_angles(loaded: models.LoadedModel, positions: int, layer_type: str | None = None) -> np.ndarray:
    """The angle each query/key pair is turned by at each position: (positions, head_dim / 2), from the model's own
    rotary module (position × inverse frequency); `layer_type` picks one of several bases (default: layer 0's)."""
    parts = loaded.parts
    if not parts.rotary_bases:
        raise activations.CaptureError("not_available", "rotary positions")
    inverse = parts.rotary_bases[parts.layer_types[0] if layer_type is None else layer_type]
    return (np.arange(positions)[:, None] * inverse.cpu().numpy()[None, :]).astype(np.float32)


def rotate(vectors: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Llama's rotary embedding: dimension i turns with i + head_dim/2 as a 2-D pair by the angle of pair i.

    vectors: (n, head_dim), angles: (n, head_dim / 2) -> (n, head_dim); lengths are unchanged.
    """
    half = vectors.shape[-1] // 2
    first, second = vectors[:, :half], vectors[:, half:]  # (n, half) each
    cos, sin = np.cos(angles), np.sin(angles)
    return np.concatenate([first * cos - second * sin, second * cos + first * sin], axis=-1)


def first_layer_queries(loaded: models.LoadedModel, text: str, head: int = 0) -> tuple[np.ndarray, list[str]]:
    """Layer 0's query vectors for one head before rotation (after Gemma's per-head `q_norm`, as attention sees them):
    (seq, head_dim), and the token labels."""
    projection = loaded.parts.query_projection(0)
    if projection is None:
        raise activations.CaptureError("not_available", "a separate query projection")
    norm, query, head_norm = projection
    result = activations.capture(loaded, text, ["blocks.0.resid_pre"], max_tokens=64)
    states = torch.as_tensor(result["blocks.0.resid_pre"], device=models.device_of(loaded.model), dtype=loaded.dtype)  # (seq, d)
    head_dim = loaded.parts.head_dim
    with loaded.lock, torch.inference_mode():
        queries = query(norm(states))[:, head * head_dim:(head + 1) * head_dim]  # (seq, head_dim)
        if head_norm is not None:
            queries = head_norm(queries)
    return queries.float().cpu().numpy(), token_labels(result)


@dataclass
class RotaryView:
    """One query vector placed at positions 0..n-1 and turned by the model's rotary embedding, for three pairs."""

    pairs: np.ndarray  # (pairs, n, 2): each chosen dimension pair's 2-D point at each position
    pair_ids: list[int]  # which pairs: a fast one, a middle one, a slow one
    token: str  # the text's first token, whose query is turned


def rotary_view(loaded: models.LoadedModel, text: str, positions: int = 12) -> RotaryView:
    queries, labels = first_layer_queries(loaded, text)  # (seq, head_dim)
    first = 1 if len(labels) > 1 and labels[0] in loaded.tokenizer.all_special_tokens else 0  # Gemma's <bos>: not a word
    shown = min(positions, len(queries))
    same = np.repeat(queries[first:first + 1], shown, axis=0)  # (shown, head_dim): one query at positions 0..shown-1
    rotated = rotate(same, rotary_angles(loaded, shown))  # (shown, head_dim)
    half = rotated.shape[1] // 2
    pair_ids = list(dict.fromkeys([0, min(4, half - 1), half // 2]))  # fast, faster-middle, slow; no repeats
    pairs = np.stack([np.stack([rotated[:, i], rotated[:, i + half]], axis=-1) for i in pair_ids])  # (3, shown, 2)
    return RotaryView(pairs, pair_ids, labels[first])


# ---------------------------------------------------------------- projections

def pca(points: np.ndarray, dims: int = 2) -> np.ndarray:
    """(n, d) -> (n, dims): the centred points on their `dims` main axes (an SVD), each axis's sign fixed so that its
    largest loading is positive, as scikit-learn does. Plain numpy: importing scikit-learn costs the process ~100 MB."""
    centred = points - points.mean(axis=0)  # (n, d)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)  # axes: (min(n, d), d)
    axes = axes[:dims]
    signs = np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])  # (dims,)
    return (centred @ (axes * signs[:, None]).T).astype(np.float32)  # (n, dims)


def project(points: np.ndarray, method: str = "umap", dims: int = 2, seed: int = 0) -> np.ndarray:
    """(n, d) -> (n, dims) float32 with UMAP (cosine), PCA or t-SNE; small inputs fall back to what they allow."""
    points = np.asarray(points, dtype=np.float32)
    if len(points) <= dims + 1:
        return np.pad(points[:, :dims], ((0, 0), (0, max(0, dims - points.shape[1])))).astype(np.float32)
    if method == "pca" or len(points) < 6:
        return pca(points, dims)
    if method == "tsne":
        from sklearn.manifold import TSNE

        return TSNE(n_components=dims, perplexity=min(30.0, (len(points) - 1) / 3), metric="cosine", init="pca",
                    random_state=seed).fit_transform(points).astype(np.float32)
    import umap

    return umap.UMAP(n_components=dims, n_neighbors=min(15, len(points) - 1), metric="cosine", min_dist=0.1,
                     random_state=seed).fit_transform(points).astype(np.float32)


_warm = threading.Event()
_warming: list[threading.Thread] = []  # at most one warm-up thread per process
_warming_lock = threading.Lock()


def warm_up_umap() -> None:
    """UMAP compiles itself with numba on its first fit in a process (15–40 s): pay that once, off the page's path."""
    if not _warm.is_set():
        project(np.random.default_rng(0).normal(size=(64, 8)), "umap")
        _warm.set()


def start_umap_warm_up() -> threading.Thread | None:
    """Start the warm-up once per process; later calls (every page rerun) find it running or done."""
    with _warming_lock:
        if _warm.is_set() or _warming:
            return None
        thread = threading.Thread(target=warm_up_umap, name="umap-warm-up", daemon=True)
        _warming.append(thread)
    thread.start()
    return thread


def umap_is_warm() -> bool:
    return _warm.is_set()


def projection_path(model_key: str, method: str, dims: int, folder: Path | None = None, fingerprint: str = "") -> Path:
    """The shipped file is named by the bundled key; a cached one also by the weights' fingerprint, so a model
    replaced under the same name is projected anew."""
    safe = hashlib.blake2b(model_key.encode(), digest_size=6).hexdigest() if "/" in model_key else model_key
    weights = f"-{fingerprint}" if fingerprint else ""
    return (folder or models.cache_dir() / "projections") / f"{safe}{weights}-{method}-{dims}d.npy"


def vocabulary_projection(loaded: models.LoadedModel, method: str = "umap", dims: int = 2) -> np.ndarray:
    """The whole vocabulary on a map: (vocab, dims). Read from assets/ (bundled models) or the cache, else computed
    once and written to the cache. A file of the wrong shape or that cannot be read is recomputed."""
    vocab = loaded.model.get_input_embeddings().weight.shape[0]
    cached = projection_path(loaded.info.key, method, dims, fingerprint=loaded.fingerprint)
    for path in (projection_path(loaded.info.key, method, dims, SHIPPED), cached):
        try:
            stored = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            continue
        if stored.shape == (vocab, dims) and np.isfinite(stored).all():
            return stored.astype(np.float32)
    projected = project(vocabulary_matrix(loaded), method, dims)
    save_projection(projected, cached)
    return projected


def save_projection(projected: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npy")
    np.save(partial, projected.astype(np.float16))  # map coordinates need no more precision
    partial.replace(path)


# ---------------------------------------------------------------- meaning in context

def word_span(sentence: str, word: str) -> tuple[int, int] | None:
    start = sentence.find(word)
    return None if start < 0 else (start, start + len(word))


def contextual_states(loaded: models.LoadedModel, sentence: str, word: str) -> np.ndarray:
    """The word's vector at the input and after every layer, averaged over its tokens: (layers + 1, d)."""
    span = word_span(sentence, word)
    if span is None:
        raise activations.CaptureError("not_available", word)
    result = activations.capture(loaded, sentence, ["blocks.0.resid_pre", "blocks.*.resid_post"], max_tokens=256)
    offsets = result.offsets  # (seq, 2)
    inside = (offsets[:, 0] < span[1]) & (offsets[:, 1] > span[0]) & (offsets[:, 1] > offsets[:, 0])  # (seq,)
    layers = [result["blocks.0.resid_pre"]] + [result[f"blocks.{i}.resid_post"] for i in range(loaded.info.layers)]
    return np.stack([states[inside].mean(axis=0) for states in layers])  # (layers + 1, d)


def sense_similarity(states: np.ndarray, senses: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Mean cosine between uses of the same sense and of different senses, per layer.

    states: (uses, layers + 1, d) -> within (layers + 1,), across (layers + 1,)
    """
    senses = np.asarray(senses)
    same = senses[:, None] == senses[None, :]  # (uses, uses)
    off_diagonal = ~np.eye(len(senses), dtype=bool)
    within, across = [], []
    for layer in range(states.shape[1]):
        similarity = cosine_matrix(states[:, layer])  # (uses, uses)
        within.append(similarity[same & off_diagonal].mean() if (same & off_diagonal).any() else math.nan)
        across.append(similarity[~same].mean() if (~same).any() else math.nan)
    return np.array(within), np.array(across)


# ---------------------------------------------------------------- sentence vectors

def sentence_embeddings(loaded: models.LoadedModel, sentences: list[str], batch: int = 32) -> np.ndarray:
    """Mean of the last layer's token vectors over the attention mask, then unit length: (n, d).

    This is what sentence-transformers does for all-MiniLM-L6-v2 (its 1_Pooling and 2_Normalize modules).
    """
    tokenizer, model = loaded.tokenizer, loaded.model
    device = models.device_of(model)
    out = []
    for start in range(0, len(sentences), batch):
        encoded = tokenizer(sentences[start:start + batch], padding=True, truncation=True, max_length=256,
                            return_tensors="pt").to(device)
        with loaded.lock, torch.inference_mode():
            states = model(**encoded).last_hidden_state  # (b, seq, d)
        out.append(mean_pool(states, encoded["attention_mask"]).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.hidden_size), dtype=np.float32)


class _EnoughLayers(Exception):
    """Raised by a hook once the layer a caller wants has run: the blocks above it are not computed."""


def decoder_sentence_vectors(loaded: models.LoadedModel, sentences: list[str], layer: int | None = None,
                             batch: int = 32) -> np.ndarray:
    """A decoder's sentence vectors: one layer's residual stream (default: a third of the way up, where a decoder's
    states are more about what the text says than about the next token), averaged over the sentence's own tokens,
    unit length: (n, d). The forward stops after that layer (a hook under the model's lock, removed at once): Gemma's
    layer 6 costs a third of the whole model. Measured on the topic set at 16 per topic (Gemma 3, standardised
    features): layer 6 Korean 88 % / English 86 %; 9: 75 / 84; 13: 81 / 91; 18: 83 / 92."""
    tokenizer, model = loaded.tokenizer, loaded.model
    layer = max(1, loaded.info.layers // 3 if layer is None else layer)
    device = models.device_of(model)
    found: dict[str, torch.Tensor] = {}

    def enough(module, args, output):
        found["states"] = output[0] if isinstance(output, tuple) else output  # (b, seq, d)
        raise _EnoughLayers

    out = []
    for start in range(0, len(sentences), batch):
        encoded = tokenizer(sentences[start:start + batch], padding=True, truncation=True, max_length=128,
                            add_special_tokens=False, return_tensors="pt").to(device)
        with loaded.lock, torch.inference_mode():
            handle = loaded.parts.blocks[layer - 1].register_forward_hook(enough)
            try:
                model(**encoded)
            except _EnoughLayers:
                pass
            finally:
                handle.remove()
        out.append(mean_pool(found.pop("states"), encoded["attention_mask"]).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, loaded.info.hidden_size), dtype=np.float32)


def mean_pool(states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(b, seq, d) token vectors -> (b, d) unit sentence vectors: the mean over real tokens, then unit length."""
    mask = attention_mask.unsqueeze(-1).float()  # (b, seq, 1)
    pooled = (states.float() * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (b, d)
    return torch.nn.functional.normalize(pooled, dim=-1)


def rank_sentences(query: np.ndarray, sentence_vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sentences by cosine similarity to the query, best first: (order, similarities)."""
    similarity = sentence_vectors @ query  # (n,) both unit length
    order = np.argsort(-similarity)
    return order, similarity[order]


if __name__ == "__main__":  # make the shipped projections: python3 -m explorer.embeddings
    import time

    for key in models.BUNDLED:
        loaded = models.load(key)
        for dims in (2, 3):
            started = time.perf_counter()
            coordinates = project(vocabulary_matrix(loaded), "umap", dims)
            save_projection(coordinates, projection_path(key, "umap", dims, SHIPPED))
            print(f"{key} umap {dims}d: {coordinates.shape} in {time.perf_counter() - started:.1f} s")
