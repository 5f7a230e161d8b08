"""Korean and English strings. Every visible string goes through `t`."""

from __future__ import annotations

LANGUAGES = {"ko": "한국어", "en": "English"}
DEFAULT_LANGUAGE = "ko"

STRINGS: dict[str, dict[str, str]] = {
    # shell
    "app_title": {"ko": "LLM 내부 탐색기", "en": "LLM Internals Explorer"},
    "nav_home": {"ko": "홈", "en": "Home"},
    "nav_inside": {"ko": "모델 들여다보기", "en": "Inside the model"},
    "sidebar_model": {"ko": "모델", "en": "Model"},
    "sidebar_bundled": {"ko": "내장 모델", "en": "Bundled model"},
    "sidebar_hub_id": {"ko": "허브 모델 ID (온라인일 때)", "en": "Hub model id (when online)"},
    "sidebar_hub_help": {"ko": "예: gpt2, bert-base-uncased, klue/bert-base", "en": "e.g. gpt2, bert-base-uncased, klue/bert-base"},
    "sidebar_load": {"ko": "불러오기", "en": "Load"},
    "sidebar_language": {"ko": "언어", "en": "Language"},
    "sidebar_presenter": {"ko": "발표 모드 (큰 글씨)", "en": "Presenter mode (large type)"},
    "sidebar_figure_format": {"ko": "그림 저장 형식", "en": "Figure download format"},
    "sidebar_running_on": {"ko": "실행 장치: {device} · {dtype} · 가중치 출처: {source}", "en": "Running on {device} · {dtype} · weights from {source}"},
    "source_package": {"ko": "내장 패키지", "en": "bundled package"},
    "source_cache": {"ko": "로컬 변환 캐시", "en": "local converted cache"},
    "source_hub": {"ko": "허브", "en": "hub"},
    "source_local": {"ko": "로컬 폴더", "en": "local folder"},
    "loading_model": {"ko": "모델 {model} 불러오는 중…", "en": "Loading model {model}…"},
    "model_loaded": {"ko": "{model} 불러옴 ({seconds:.1f}초)", "en": "Loaded {model} ({seconds:.1f} s)"},
    "running_model": {"ko": "모델 실행 중…", "en": "Running the model…"},
    "download_csv": {"ko": "데이터 CSV", "en": "Data as CSV"},
    "download_json": {"ko": "데이터 JSON", "en": "Data as JSON"},
    "link_hint": {"ko": "이 페이지의 주소에 현재 설정이 담겨 있어, 수업 전에 링크를 준비할 수 있습니다.",
                  "en": "This page's address holds its current settings: prepare links before class."},
    # errors (kinds from explorer.models.ModelError and explorer.activations.CaptureError)
    "error_unknown_id": {"ko": "이 모델 ID를 찾을 수 없습니다: {detail}. 철자를 확인하세요. 지금 모델은 그대로 유지됩니다.",
                         "en": "No model with this id: {detail}. Check the spelling. The current model stays loaded."},
    "error_offline": {"ko": "네트워크에 연결할 수 없어 허브 모델을 받을 수 없습니다 ({detail}). 내장 모델은 계속 쓸 수 있습니다.",
                      "en": "No network, so the hub model cannot be fetched ({detail}). The bundled models still work."},
    "error_gated": {"ko": "접근 승인이 필요한(gated) 모델입니다: {detail}. 이 앱은 로그인 토큰 없이 동작합니다.",
                    "en": "This model is gated: {detail}. The explorer runs without an access token."},
    "error_remote_code": {"ko": "이 모델은 자체 코드를 실행해야 합니다. 안전을 위해 원격 코드는 절대 실행하지 않습니다.",
                          "en": "This model needs its own code to run. For safety, remote code is never run."},
    "error_too_large": {"ko": "모델이 너무 큽니다: {detail}. 다운로드 전에 거절했습니다.",
                        "en": "The model is too large: {detail}. Refused before any download."},
    "error_no_safetensors": {"ko": "safetensors 가중치가 없는 모델입니다: {detail}. 안전한 형식만 불러옵니다.",
                             "en": "No safetensors weights: {detail}. Only the safe format is loaded."},
    "error_unsupported": {"ko": "지원하지 않는 모델 구조입니다: {detail}.", "en": "Unsupported model architecture: {detail}."},
    "error_out_of_memory": {"ko": "메모리가 부족합니다 ({detail}). 더 짧은 글이나 작은 모델을 써 보세요.",
                            "en": "Out of memory ({detail}). Try a shorter text or a smaller model."},
    "error_empty_text": {"ko": "분석할 글을 입력하세요.", "en": "Type some text to analyse."},
    "error_bad_name": {"ko": "알 수 없는 텐서 이름입니다: {detail}", "en": "Unknown tensor name: {detail}"},
    "error_not_available": {"ko": "이 모델에는 없는 값입니다: {detail}", "en": "Not available for this model: {detail}"},
    "truncated": {"ko": "글이 모델의 최대 길이를 넘어 뒤쪽 토큰 {dropped}개를 잘라냈습니다. 입력한 글은 그대로 남아 있습니다.",
                  "en": "The text is longer than the model's maximum length: the last {dropped} tokens were cut. Your text is kept as typed."},
    # home
    "home_intro": {"ko": "언어 모델 안에서 무슨 일이 일어나는지 실제 모델로 직접 봅니다. 왼쪽에서 모델과 언어를 고르세요.",
                   "en": "See what happens inside a language model, on real models. Pick a model and a language on the left."},
    "home_pages": {"ko": "페이지 안내", "en": "The pages"},
    "home_page_inside": {"ko": "**모델 들여다보기**: 모델의 구조(층, 헤드, 크기)와, 입력한 문장에서 각 층·헤드가 어디를 보는지 요약한 지도.",
                         "en": "**Inside the model**: the model's shape (layers, heads, sizes) and a map of where each layer's heads look in your sentence."},
    "home_history": {"ko": "언어 모델의 역사", "en": "A short history of language models"},
    "home_history_note": {"ko": "세로축은 로그 눈금입니다: 한 칸 올라갈 때마다 10배입니다. 우리 두 내장 모델은 크기 비교를 위해 함께 표시했습니다.",
                          "en": "The vertical axis is logarithmic: each step up is ten times more. Our two bundled models are shown for scale."},
    "ours": {"ko": "내장 모델", "en": "ours"},
    "params": {"ko": "매개변수 수", "en": "Parameters"},
    "year": {"ko": "연도", "en": "Year"},
    "timeline_title": {"ko": "연표", "en": "Timeline"},
    "params_title": {"ko": "모델 크기 (매개변수 수, 로그 눈금)", "en": "Model size (parameters, log scale)"},
    # inside page
    "inside_intro": {"ko": "모델의 뼈대와, 한 문장을 넣었을 때 모든 층의 모든 헤드가 어디에 주의를 기울이는지를 한눈에 봅니다.",
                     "en": "The model's skeleton, and where every head of every layer looks when it reads one sentence."},
    "inside_text": {"ko": "문장", "en": "Text"},
    "inside_stat": {"ko": "헤드 통계", "en": "Head statistic"},
    "inside_shape": {"ko": "모델 구조", "en": "Model shape"},
    "inside_explain": {"ko": "각 칸은 한 층의 한 헤드입니다. 엔트로피가 낮으면 한 곳에 집중하고, 높으면 넓게 퍼져 봅니다. '첫 토큰' 값이 큰 헤드는 주의가 갈 곳이 없을 때 첫 토큰에 쉬는 '어텐션 싱크'입니다.",
                       "en": "Each cell is one head of one layer. Low entropy means it focuses on one place; high means it spreads out. Heads with a large 'first token' value park their attention on the first token when there is nothing else to look at: an attention sink."},
    "inside_tokens": {"ko": "토큰 {n}개", "en": "{n} tokens"},
    "heatmap_title": {"ko": "층 × 헤드: {stat}", "en": "Layer × head: {stat}"},
    "layer": {"ko": "층", "en": "Layer"},
    "head": {"ko": "헤드", "en": "Head"},
    "stat_entropy": {"ko": "엔트로피 (nat)", "en": "Entropy (nats)"},
    "stat_previous": {"ko": "바로 앞 토큰으로", "en": "To the previous token"},
    "stat_first": {"ko": "첫 토큰으로", "en": "To the first token"},
    "stat_self": {"ko": "자기 자신으로", "en": "To itself"},
    "stat_last": {"ko": "마지막 토큰으로 ([SEP])", "en": "To the last token ([SEP])"},
    "field_name": {"ko": "항목", "en": "Property"},
    "field_value": {"ko": "값", "en": "Value"},
    "field_family": {"ko": "종류", "en": "Family"},
    "family_encoder": {"ko": "인코더 (양방향)", "en": "Encoder (bidirectional)"},
    "family_decoder": {"ko": "디코더 (인과적)", "en": "Decoder (causal)"},
    "field_architecture": {"ko": "구조", "en": "Architecture"},
    "field_layers": {"ko": "층 수", "en": "Layers"},
    "field_query_heads": {"ko": "쿼리 헤드", "en": "Query heads"},
    "field_kv_heads": {"ko": "키/값 헤드", "en": "Key/value heads"},
    "field_hidden_size": {"ko": "은닉 차원", "en": "Hidden size"},
    "field_vocab_size": {"ko": "어휘 크기", "en": "Vocabulary size"},
    "field_max_length": {"ko": "최대 길이 (토큰)", "en": "Maximum length (tokens)"},
    "field_parameters": {"ko": "매개변수 수", "en": "Parameters"},
    "field_source": {"ko": "가중치 출처", "en": "Weights from"},
    "field_device": {"ko": "장치 · 자료형", "en": "Device · dtype"},
    "sample_text": {"ko": "고양이가 창가에 앉아 햇볕을 쬐고 있다. The cat sat by the window in the sun.",
                    "en": "The cat sat by the window in the sun. 고양이가 창가에 앉아 햇볕을 쬐고 있다."},
}


def t(key: str, lang: str = DEFAULT_LANGUAGE, **values) -> str:
    """The string for `key` in `lang`, with `values` filled in."""
    entry = STRINGS[key]
    text = entry.get(lang) or entry[DEFAULT_LANGUAGE]
    return text.format(**values) if values else text


def missing_translations() -> list[str]:
    return [key for key, entry in STRINGS.items() if set(entry) != set(LANGUAGES) or not all(entry.values())]
