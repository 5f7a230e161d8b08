"""A small recurrent model and a small Transformer, byte-level so Korean works, trained on the same data.

The lesson they make measurable: the GRU squeezes everything into one fixed-size state and reads one step at a
time; the Transformer keeps every token (its key/value cache grows) and looks at all of them at once.

Train the shipped pair with `python3 -m explorer.recurrent` (seeded; weights go to assets/recurrent/).
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from explorer import warmup

ASSETS = Path(__file__).resolve().parent.parent / "assets"
WEIGHTS = ASSETS / "recurrent"
# The recall task: many key → value bindings, then many questions; more than a fixed-size state can hold.
KEYS, VALUES = 48, 16
BINDING = 256  # ids 256 + key * VALUES + value: "key k holds value v", one token each
QUERY = BINDING + KEYS * VALUES  # ids QUERY + k: "what does key k hold?"
VOCAB = QUERY + KEYS  # 256 bytes, then the task's tokens
ANSWER = ord("A")  # the answer is a byte: 'A' + value
DISTANCES = (25, 50, 75, 100, 125, 150, 175, 200)  # upper edges of the distance buckets accuracy is reported for
RECALL_LENGTH = 200  # bindings of every key once, filler bytes, then questions
QUESTIONS = 32


@dataclass
class PairConfig:
    rnn_hidden: int = 224
    rnn_layers: int = 2
    d_model: int = 128
    layers: int = 3
    heads: int = 4
    max_len: int = 512
    text_len: int = 96
    batch: int = 16
    steps: int = 800
    recall_warmup: int = 250  # the first steps train recall alone; text joins after them
    lr: float = 3e-3
    seed: int = 0


# ---------------------------------------------------------------- the two models

class ByteGRU(nn.Module):
    def __init__(self, config: PairConfig):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, config.rnn_hidden)
        self.gru = nn.GRU(config.rnn_hidden, config.rnn_hidden, config.rnn_layers, batch_first=True)
        self.head = nn.Linear(config.rnn_hidden, VOCAB)

    def forward(self, ids: torch.Tensor, state: torch.Tensor | None = None, embedded: torch.Tensor | None = None):
        """ids: (b, n) -> logits (b, n, VOCAB = 1,072), state (layers, b, hidden), every step's top-layer state (b, n, hidden)."""
        x = self.embed(ids) if embedded is None else embedded  # (b, n, hidden)
        outputs, state = self.gru(x, state)  # (b, n, hidden), (layers, b, hidden)
        return self.head(outputs), state, outputs

    def state_bytes(self, dtype_bytes: int = 4) -> int:
        return self.gru.num_layers * self.gru.hidden_size * dtype_bytes


class Block(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor, cache: tuple | None = None, keep_pattern: bool = False):
        """x: (b, n, d) new positions; cache: keys and values of earlier positions, each (b, heads, past, hd)."""
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # (b, h, n, hd) each
        if cache is not None:
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)  # (b, h, past + n, hd)
        past = k.shape[2] - n
        pattern = None
        if keep_pattern:
            scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (b, h, n, past + n)
            hidden = torch.ones(n, k.shape[2], dtype=torch.bool, device=x.device).triu(past + 1)
            pattern = scores.masked_fill(hidden, float("-inf")).softmax(-1)  # (b, h, n, past + n)
            mixed = pattern @ v
        else:
            mask = torch.ones(n, k.shape[2], dtype=torch.bool, device=x.device).tril(past)
            mixed = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (b, h, n, hd)
        x = x + self.out(mixed.transpose(1, 2).reshape(b, n, d))
        x = x + self.mlp(self.norm2(x))
        return x, (k, v), pattern


class ByteTransformer(nn.Module):
    def __init__(self, config: PairConfig):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, config.d_model)
        self.positions = nn.Embedding(config.max_len, config.d_model)
        self.blocks = nn.ModuleList(Block(config.d_model, config.heads) for _ in range(config.layers))
        self.norm = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, VOCAB)
        self.max_len = config.max_len

    def forward(self, ids: torch.Tensor, cache: list | None = None, keep_pattern: bool = False,
                embedded: torch.Tensor | None = None):
        """ids: (b, n) -> logits (b, n, VOCAB = 1,072), the key/value cache, attention patterns per layer (if asked)."""
        past = cache[0][0].shape[2] if cache else 0
        x = self.embed(ids) if embedded is None else embedded  # (b, n, d)
        x = x + self.positions(torch.arange(past, past + ids.shape[1], device=ids.device))
        new_cache, patterns = [], []
        for i, block in enumerate(self.blocks):
            x, kv, pattern = block(x, cache[i] if cache else None, keep_pattern)
            new_cache.append(kv)
            patterns.append(pattern)
        return self.head(self.norm(x)), new_cache, patterns

    def cache_bytes(self, length: int, dtype_bytes: int = 4) -> int:
        d = self.embed.embedding_dim
        return 2 * len(self.blocks) * d * length * dtype_bytes


def parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def logits_of(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    return model(ids)[0]


# ---------------------------------------------------------------- data

def corpus_bytes() -> np.ndarray:
    return np.frombuffer((ASSETS / "corpus_ko_en.txt").read_bytes(), dtype=np.uint8)


def split_corpus(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The last tenth of the corpus is held out: the shipped models never train on it."""
    cut = int(len(data) * 0.9)
    return data[:cut], data[cut:]


def text_batch(rng: np.random.Generator, data: np.ndarray, batch: int, length: int) -> torch.Tensor:
    starts = rng.integers(0, len(data) - length - 1, size=batch)
    return torch.as_tensor(np.stack([data[s:s + length + 1] for s in starts]).astype(np.int64))  # (b, length + 1)


def recall_batch(rng: np.random.Generator, batch: int, fillers=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every key bound once (random order and values), `filler` noise bytes, then QUESTIONS questions '?k'.

    Returns ids (b, RECALL_LENGTH), targets (b, RECALL_LENGTH) with the answer ('A' + value) at each question and
    -100 elsewhere, and distances (b, RECALL_LENGTH): how many tokens back the asked binding is (0 elsewhere).
    """
    span = RECALL_LENGTH - KEYS - QUESTIONS
    fillers = rng.integers(0, span + 1, size=batch) if fillers is None else np.asarray(fillers)
    ids = rng.integers(ord("a"), ord("z") + 1, size=(batch, RECALL_LENGTH))  # (b, L) filler bytes
    targets = np.full((batch, RECALL_LENGTH), -100)
    distances = np.zeros((batch, RECALL_LENGTH), dtype=np.int64)
    for row in range(batch):
        start = span - fillers[row]  # the bindings end `filler` bytes before the questions
        keys, values = rng.permutation(KEYS), rng.integers(0, VALUES, size=KEYS)
        ids[row, start:start + KEYS] = BINDING + keys * VALUES + values
        slot = np.argsort(keys)  # slot[key]: where among the bindings that key stands
        asked = rng.choice(KEYS, size=QUESTIONS, replace=False)
        for j, key in enumerate(asked):
            position = RECALL_LENGTH - QUESTIONS + j
            ids[row, position] = QUERY + key
            targets[row, position] = ANSWER + values[slot[key]]
            distances[row, position] = position - (start + slot[key])
    return torch.as_tensor(ids), torch.as_tensor(targets), torch.as_tensor(distances)


def recall_example(distance: int, seed: int = 0) -> tuple[torch.Tensor, int, int]:
    """One recall sequence (RECALL_LENGTH,) and the position of its question whose binding lies nearest `distance`
    tokens back, with that distance. The filler is chosen so that the questions can reach that far."""
    filler = int(np.clip(distance - 40, 0, RECALL_LENGTH - KEYS - QUESTIONS))
    ids, targets, distances = recall_batch(np.random.default_rng(seed), 1, [filler])  # (1, L) each
    gaps = torch.where(targets[0] >= 0, (distances[0] - distance).abs(), RECALL_LENGTH)  # (L,)
    asked = int(gaps.argmin())
    return ids[0], asked, int(distances[0, asked])


def describe(ids) -> list[str]:
    """Tokens as text: bytes as characters, a binding as 'k17=F', a query as '?k17'."""
    out = []
    for i in map(int, ids):
        if i < BINDING:
            out.append(chr(i) if 32 <= i < 127 else f"0x{i:02X}")
        elif i < QUERY:
            key, value = divmod(i - BINDING, VALUES)
            out.append(f"k{key}={chr(ANSWER + value)}")
        else:
            out.append(f"?k{i - QUERY}")
    return out


def recall_loss(model: nn.Module, ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits_of(model, ids).reshape(-1, VOCAB), targets.reshape(-1), ignore_index=-100)


def text_loss(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    logits = logits_of(model, batch[:, :-1])  # (b, n, VOCAB)
    return F.cross_entropy(logits.reshape(-1, VOCAB), batch[:, 1:].reshape(-1))


# ---------------------------------------------------------------- training

def compose_task_embeddings(model: nn.Module, seed: int) -> None:
    """Start each task token as a sum: a binding "key k holds v" as key k's vector + value v's vector, a question
    "?k" as key k's vector + a question vector, so the key a question shares with its binding is there from step 0.
    (Random rows instead leave both models at chance for longer than the training budget.) Same for both models."""
    table = model.embed.weight  # (VOCAB, d)
    generator = torch.Generator().manual_seed(seed)
    keys, values, question = (torch.randn(n, table.shape[1], generator=generator) for n in (KEYS, VALUES, 1))
    with torch.no_grad():
        table[BINDING:QUERY] = (keys[:, None, :] + values[None, :, :]).reshape(KEYS * VALUES, -1)  # (keys × values, d)
        table[QUERY:] = keys + question  # (keys, d)


def build_pair(config: PairConfig) -> tuple[ByteGRU, ByteTransformer]:
    torch.manual_seed(config.seed)
    pair = ByteGRU(config), ByteTransformer(config)
    for model in pair:
        compose_task_embeddings(model, config.seed)
    return pair


def train(model: nn.Module, config: PairConfig, steps: int | None = None, task: str = "both", progress=None,
          should_stop=None) -> list[dict]:
    """AdamW on text (next byte) and on recall (the answer only), seeded; returns one log row per step. With
    task "both", the first `config.recall_warmup` steps train recall alone.

    progress(step, row) is called every step; should_stop() -> True ends training early (a cancel button).
    """
    steps = config.steps if steps is None else steps
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    train_text, _ = split_corpus(corpus_bytes())
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, total_steps=max(steps, 20),
                                                   pct_start=0.1)  # at least 20: a shorter cycle has no warm-up step
    model.train()
    log = []
    for step in range(steps):
        row = {"step": step}
        loss = torch.zeros(())
        if task == "text" or (task == "both" and step >= config.recall_warmup):
            row["text_loss"] = (piece := text_loss(model, text_batch(rng, train_text, config.batch, config.text_len)))
            loss = loss + piece
        if task in ("both", "recall"):
            ids, targets, _ = recall_batch(rng, config.batch)
            row["recall_loss"] = (piece := recall_loss(model, ids, targets))
            loss = loss + piece
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        row = {name: float(value.detach()) if torch.is_tensor(value) else value for name, value in row.items()}
        log.append(row)
        if progress is not None:
            progress(step, row)
        if should_stop is not None and should_stop():
            break
    model.eval()
    return log


def save_pair(rnn: ByteGRU, transformer: ByteTransformer, config: PairConfig, logs: dict, folder: Path = WEIGHTS) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in rnn.state_dict().items()}, str(folder / "gru.safetensors"))
    save_file({k: v.contiguous() for k, v in transformer.state_dict().items()}, str(folder / "transformer.safetensors"))
    (folder / "training.json").write_text(json.dumps({"config": asdict(config), **logs}, indent=1), encoding="utf-8")


def load_pair(folder: Path = WEIGHTS) -> tuple[ByteGRU, ByteTransformer, dict]:
    from safetensors.torch import load_file

    record = json.loads((folder / "training.json").read_text(encoding="utf-8"))
    config = PairConfig(**record["config"])
    rnn, transformer = ByteGRU(config), ByteTransformer(config)
    rnn.load_state_dict(load_file(str(folder / "gru.safetensors")))
    transformer.load_state_dict(load_file(str(folder / "transformer.safetensors")))
    return rnn.eval(), transformer.eval(), record


def shipped_pair() -> tuple[ByteGRU, ByteTransformer, dict]:
    """The shipped pair, loaded once per process and shared by every visitor (they are only ever read)."""
    return warmup.once("rnn_pair", load_pair)


def speeds_here() -> dict:
    """`measure` of the shipped pair on this machine, once per process: the same for every visitor, so the app
    measures it in the background at start (explorer/warmup.py)."""
    rnn, transformer, _ = shipped_pair()
    return warmup.once("rnn_speeds", lambda: measure(rnn, transformer))


# ---------------------------------------------------------------- what they learned

@torch.inference_mode()
def held_out_loss(model: nn.Module, length: int = 128) -> float:
    """Mean next-byte cross-entropy (nats) over the held-out tenth, in windows of `length`."""
    _, held_out = split_corpus(corpus_bytes())
    windows = [held_out[s:s + length + 1] for s in range(0, len(held_out) - length - 1, length)]
    batch = torch.as_tensor(np.stack(windows).astype(np.int64))
    return float(text_loss(model, batch))


def unigram_loss() -> float:
    """The baseline: each byte predicted from byte frequencies of the training part alone (add-one smoothed)."""
    train_text, held_out = split_corpus(corpus_bytes())
    counts = np.bincount(train_text, minlength=256) + 1.0
    log_probs = np.log(counts / counts.sum())
    return float(-log_probs[held_out[1:]].mean())


@torch.inference_mode()
def recall_accuracy(model: nn.Module, samples: int = 128, seed: int = 1) -> dict[int, float]:
    """Share of questions answered right, by distance bucket (each key is the bucket's upper edge)."""
    ids, targets, distances = recall_batch(np.random.default_rng(seed), samples)
    right = logits_of(model, ids).argmax(-1) == targets  # (b, L)
    asked = targets >= 0
    accuracy, lower = {}, 0
    for upper in DISTANCES:
        bucket = asked & (distances > lower) & (distances <= upper)
        if bucket.any():
            accuracy[upper] = float(right[bucket].float().mean())
        lower = upper
    return accuracy


@torch.inference_mode()
def next_bytes(model: nn.Module, text: str, top: int = 5) -> tuple[list[int], list[float]]:
    ids = torch.as_tensor([list(text.encode("utf-8"))[-500:] or [32]])
    probs = logits_of(model, ids)[0, -1, :256].softmax(-1)  # bytes only, not the recall task's tokens
    best = probs.topk(top)
    return best.indices.tolist(), best.values.tolist()


@torch.inference_mode()
def rnn_states(rnn: ByteGRU, text: str, limit: int = 512) -> np.ndarray:
    """The top layer's hidden state after each of the first `limit` bytes: (bytes, hidden), the same width whatever
    the length."""
    ids = torch.as_tensor([list(text.encode("utf-8"))[:limit]])
    return rnn(ids)[2][0].numpy()


@torch.inference_mode()
def transformer_attention(transformer: ByteTransformer, text: str, layer: int = -1) -> np.ndarray:
    """One layer's attention averaged over heads: (bytes, bytes)."""
    ids = torch.as_tensor([list(text.encode("utf-8"))[: transformer.max_len]])
    patterns = transformer(ids, keep_pattern=True)[2]
    return patterns[layer][0].mean(0).numpy()


def saliency(model: nn.Module, ids: list[int], position: int = -1) -> np.ndarray:
    """How much the prediction at `position` depends on each token: the gradient of its log probability (of the
    token actually predicted) with respect to each input embedding, as a norm. (n,); zero after `position`."""
    ids = torch.as_tensor([list(ids)[-500:]])
    embedded = model.embed(ids).detach().requires_grad_(True)  # (1, n, d)
    logits = model(ids, embedded=embedded)[0][0, position]  # (vocab,)
    logits.log_softmax(-1)[logits.argmax()].backward()
    return embedded.grad[0].norm(dim=-1).numpy()  # (n,)


# ---------------------------------------------------------------- memory and speed

# Published configurations (layers, key/value heads, head size) of well-known decoders, for KV-cache arithmetic.
KNOWN_DECODERS = {
    "SmolLM2-135M": (30, 3, 64),
    "Llama-2-7B": (32, 32, 128),
    "Llama-3-8B": (32, 8, 128),
    "Mistral-7B": (32, 8, 128),
    "Llama-3-70B": (80, 8, 128),
}


def kv_cache_bytes(layers: int, kv_heads: int, head_dim: int, length: int, dtype_bytes: int = 2) -> int:
    """Keys and values for every layer, KV head and position: 2 × layers × kv_heads × head_dim × length × bytes."""
    return 2 * layers * kv_heads * head_dim * length * dtype_bytes


def _fastest(runs, rounds: int = 5, budget_seconds: float = 1.5) -> list[float]:
    """Seconds for each callable: the fastest of up to `rounds` (noise only ever adds time). Runs go round-robin after
    a warm-up, so a burst of load from elsewhere spoils one round rather than every try at one length; it stops
    after two rounds once `budget_seconds` are spent, so long inputs do not take the page's whole time budget."""
    for run in runs:
        run()  # warm
    times = [[] for _ in runs]
    started = time.perf_counter()
    for round_ in range(rounds):
        if round_ >= 2 and time.perf_counter() - started > budget_seconds:
            break
        for run, seen in zip(runs, times):
            begun = time.perf_counter()
            run()
            seen.append(time.perf_counter() - begun)
    return [min(seen) for seen in times]


@torch.inference_mode()
def forward_times(model: nn.Module, lengths, batch: int = 1) -> list[float]:
    inputs = [torch.randint(0, VOCAB, (batch, n)) for n in lengths]  # (batch, n) each
    return _fastest([lambda ids=ids: logits_of(model, ids) for ids in inputs])


def training_throughput(model: nn.Module, length: int = 256, batch: int = 8, steps: int = 3) -> float:
    """Bytes per second through forward + backward (no optimizer step: the weights stay as they are)."""
    ids = torch.randint(0, VOCAB, (batch, length + 1))

    def step():
        model.zero_grad()
        logits = logits_of(model, ids[:, :-1])
        F.cross_entropy(logits.reshape(-1, VOCAB), ids[:, 1:].reshape(-1)).backward()

    seconds = _fastest([step], rounds=steps)[0]
    model.zero_grad()
    return batch * length / seconds


@torch.inference_mode()
def generation_latency(rnn: ByteGRU, transformer: ByteTransformer, length: int, every: int = 16) -> dict[str, list]:
    """Time to produce one more byte at each position: the RNN carries its state; the Transformer reads its growing
    key/value cache. Returns, for every block of `every` positions, its last position and the fastest step in it."""
    rnn_times, transformer_times = [], []
    state, cache = None, None
    token = torch.tensor([[32]])
    for _ in range(length):
        started = time.perf_counter()
        _, state, _ = rnn(token, state)
        middle = time.perf_counter()
        _, cache, _ = transformer(token, cache)
        transformer_times.append(time.perf_counter() - middle)
        rnn_times.append(middle - started)
    blocks = range(0, length - every + 1, every)
    return {"position": [start + every for start in blocks],
            "rnn": [min(rnn_times[start:start + every]) for start in blocks],
            "transformer": [min(transformer_times[start:start + every]) for start in blocks]}


LENGTHS = (32, 64, 128, 256, 512)  # the Transformer's whole forward (its positions stop at 512)
ATTENTION_LENGTHS = (512, 1024, 2048, 4096, 8192)  # attention alone, at our model's head shape; the GRU again


def measure(rnn: ByteGRU, transformer: ByteTransformer) -> dict:
    """Every speed figure the page draws, measured now on this machine."""
    torch.manual_seed(0)
    heads = transformer.blocks[0].heads
    head_dim = transformer.embed.embedding_dim // heads

    queries = [torch.randn(1, heads, n, head_dim) for n in ATTENTION_LENGTHS]  # (1, heads, n, head_dim) each
    with torch.inference_mode():
        attention = _fastest([lambda q=q: F.scaled_dot_product_attention(q, q, q, is_causal=True) for q in queries])
    return {
        "rnn_forward": forward_times(rnn, LENGTHS), "transformer_forward": forward_times(transformer, LENGTHS),
        "rnn_long": forward_times(rnn, ATTENTION_LENGTHS), "attention": attention,
        "rnn_train": training_throughput(copy.deepcopy(rnn)),
        "transformer_train": training_throughput(copy.deepcopy(transformer)),
        "latency": generation_latency(rnn, transformer, 512),
    }


def loglog_slope(xs, ys, tail: int | None = None) -> float:
    """Slope of log y against log x (1 = linear, 2 = quadratic), over the last `tail` points if given."""
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    if tail:
        xs, ys = xs[-tail:], ys[-tail:]
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def train_pair(config: PairConfig, report=print) -> tuple[ByteGRU, ByteTransformer, dict]:
    """Train both models from the same seed, one after the other; the logs hold what training.json records."""
    rnn, transformer = build_pair(config)
    logs = {}
    for name, model in (("gru", rnn), ("transformer", transformer)):
        started = time.perf_counter()
        log = train(model, config, progress=lambda s, r, name=name: report(name, r) if s % 50 == 0 else None)
        logs[name] = {"seconds": time.perf_counter() - started, "parameters": parameters(model), "final": log[-1],
                      "curve": log[::10], "held_out_loss": held_out_loss(model), "recall": recall_accuracy(model)}
        report(name, logs[name]["final"], logs[name]["held_out_loss"], logs[name]["recall"])
    logs["unigram_loss"] = unigram_loss()
    return rnn, transformer, logs


if __name__ == "__main__":  # train the shipped pair: python3 -m explorer.recurrent
    config = PairConfig()
    save_pair(*train_pair(config), config)
