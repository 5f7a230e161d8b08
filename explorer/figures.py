"""Plotly figure builders: plain arrays and lists in, go.Figure out. No model, no streamlit."""

from __future__ import annotations

import math
from collections import Counter
from html import escape

import numpy as np
import plotly.graph_objects as go
from explorer.labels import visible

FONT = "Noto Sans KR, Noto Sans CJK KR, Apple SD Gothic Neo, Malgun Gothic, sans-serif"  # Hangul first


def _layout(fig: go.Figure, title: str, height: int = 420) -> go.Figure:
    fig.update_layout(title=title, height=height, font=dict(family=FONT, size=14), margin=dict(l=60, r=20, t=60, b=50),
                      template="plotly_white")
    return fig


def timeline(years: list[int], names: list[str], captions: list[str], title: str) -> go.Figure:
    """Events on a year axis, labels on four levels (high, low, less high, less low) so neighbours never overlap,
    even two events of one year."""
    heights = [(1.6, -1.6, 0.8, -0.8)[i % 4] for i in range(len(years))]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=years, y=[0] * len(years), mode="lines", line=dict(color="#888"), hoverinfo="skip"))
    fig.add_trace(go.Scatter(
        x=years, y=heights, mode="markers+text", text=names, customdata=captions,
        textposition=["top center" if h > 0 else "bottom center" for h in heights],
        marker=dict(size=14, color="#3b6fd8"), hovertemplate="%{x}: %{text}<br>%{customdata}<extra></extra>",
    ))
    for year, height in zip(years, heights):
        fig.add_shape(type="line", x0=year, x1=year, y0=0, y1=height, line=dict(color="#bbb", dash="dot"))
    fig.update_yaxes(visible=False, range=[-2.5, 2.5])
    fig.update_xaxes(dtick=1, range=[min(years) - 1, max(years) + 1.2])  # room for the outer labels
    fig.update_layout(showlegend=False)
    return _layout(fig, title, height=380)


def parameter_chart(names: list[str], years: list[int], parameters: list[int], highlight: list[bool],
                    title: str, y_label: str, x_label: str) -> go.Figure:
    """Parameter counts on a log axis; `highlight` marks our own models."""
    colors = ["#e4572e" if h else "#3b6fd8" for h in highlight]
    labels = [f"{n}<br>{_human(p)}" for n, p in zip(names, parameters)]
    # the first model of a year is labelled on the right, the others on the left, so GPT-1 and BERT-base (117M and
    # 110M, 2018) do not print over each other
    sides = ["middle left" if year in years[:i] else "middle right" for i, year in enumerate(years)]
    fig = go.Figure(go.Scatter(
        x=years, y=parameters, mode="markers+text", text=labels, textposition=sides,
        marker=dict(size=[18 if h else 12 for h in highlight], color=colors),
        hovertemplate="%{text}<extra></extra>",
    ))
    fig.update_yaxes(type="log", title=y_label)
    left_room = 1.4 if "middle left" in sides else 0.5  # a label left of its point needs room inside the frame
    fig.update_xaxes(title=x_label, dtick=1, range=[min(years) - left_room, max(years) + 1.5])
    return _layout(fig, title)


def layer_head_heatmap(values: np.ndarray, title: str, layer_label: str, head_label: str, colorbar: str) -> go.Figure:
    """values: (layers, heads) -> one cell per head, layer 0 at the bottom."""
    layers, heads = values.shape
    fig = go.Figure(go.Heatmap(
        z=values, x=list(range(heads)), y=list(range(layers)), colorscale="Viridis", colorbar=dict(title=colorbar),
        hovertemplate=f"{layer_label} %{{y}} · {head_label} %{{x}}<br>%{{z:.3f}}<extra></extra>",
    ))
    fig.update_xaxes(title=head_label, dtick=1)
    fig.update_yaxes(title=layer_label, dtick=1 if layers <= 12 else 2)
    return _layout(fig, title, height=max(360, 22 * layers + 120))


def _human(count: int) -> str:
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= size:
            return f"{count / size:.3g}{unit}"
    return str(count)


def next_token_bars(labels: list[str], probs: np.ndarray, kept: np.ndarray, title: str, prob_label: str) -> go.Figure:
    """Most likely next tokens as horizontal bars, most likely on top; tokens cut by top-k/top-p in grey."""
    colors = ["#3b6fd8" if k else "#c8c8c8" for k in kept]
    fig = go.Figure(go.Bar(
        x=probs, y=[f"{i + 1}. {label}" for i, label in enumerate(labels)], orientation="h", marker_color=colors,
        text=[f"{p:.1%}" for p in probs], textposition="outside", hovertemplate="%{y}: %{x:.2%}<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title=prob_label, tickformat=".0%", range=[0, min(1.0, float(np.max(probs)) * 1.25 + 1e-6)])
    return _layout(fig, title, height=max(360, 26 * len(labels) + 120))


def logit_lens_heatmap(top_probs: np.ndarray, top_tokens: list[list[str]], position_labels: list[str], title: str,
                       layer_label: str, prob_label: str) -> go.Figure:
    """(layers, positions): each cell names the token that layer would predict next, coloured by its probability."""
    layers = top_probs.shape[0]
    fig = go.Figure(go.Heatmap(
        z=top_probs, x=list(range(len(position_labels))), y=list(range(layers)), text=top_tokens,
        texttemplate="%{text}", textfont=dict(size=10), colorscale="Blues", zmin=0, zmax=1,
        colorbar=dict(title=prob_label), customdata=[position_labels] * layers,
        hovertemplate=f"{layer_label} %{{y}} · %{{customdata}} → %{{text}} (%{{z:.1%}})<extra></extra>",
    ))
    fig.update_xaxes(tickvals=list(range(len(position_labels))), ticktext=position_labels, tickangle=-45)
    fig.update_yaxes(title=layer_label, dtick=2 if layers > 12 else 1)
    return _layout(fig, title, height=max(420, 20 * layers + 160))


def surprisal_html(pieces: list[tuple[str, float]], unit: str) -> str:
    """(text, bits) pieces as spans shaded by surprisal: darker = more surprising."""
    spans = []
    for piece, value in pieces:
        alpha = min(1.0, float(value) / 16)  # 16 bits and up: fully dark
        text_color = "#fff" if alpha > 0.55 else "#111"
        spans.append(f'<span title="{value:.1f} {unit}" style="background:rgba(214,39,40,{alpha:.2f});'
                     f'color:{text_color};padding:2px 0;border-radius:3px">{_escape(piece)}</span>')
    return '<div style="line-height:2.1;font-size:1.1em;white-space:pre-wrap">' + "".join(spans) + "</div>"


def token_chips_html(tokens: list[str], probs: list[float]) -> str:
    """Appended tokens as chips, each tagged with the probability it had when chosen."""
    chips = [f'<span style="display:inline-block;margin:2px;padding:2px 6px;border-radius:6px;background:#e8eefc">'
             f'{_escape(visible(t))}<sub style="color:#555"> {p:.0%}</sub></span>' for t, p in zip(tokens, probs)]
    return "<div>" + "".join(chips) + "</div>"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\n", "↵<br>")


def attention_heatmap(weights: np.ndarray, query_labels: list[str], key_labels: list[str], title: str,
                      query_label: str, key_label: str, zmax: float | None = None,
                      highlight_row: int | None = None, window: int | None = None) -> go.Figure:
    """weights: (queries, keys), rows = the token that looks, columns = the token looked at; `highlight_row` framed;
    a sliding `window` drawn as the dashed diagonal below which a query sees nothing (keys `window` or more behind)."""
    fig = go.Figure(go.Heatmap(
        z=np.round(weights, 4), x=list(range(len(key_labels))), y=list(range(len(query_labels))),
        colorscale="Blues", zmin=0, zmax=zmax, customdata=[[f"{q} → {k}" for k in key_labels] for q in query_labels],
        hovertemplate="%{customdata}: %{z:.3f}<extra></extra>",
    ))
    fig.update_xaxes(title=key_label, tickvals=list(range(len(key_labels))), ticktext=key_labels, tickangle=-60)
    fig.update_yaxes(title=query_label, tickvals=list(range(len(query_labels))), ticktext=query_labels, autorange="reversed")
    if highlight_row is not None and 0 <= highlight_row < len(query_labels):
        fig.add_shape(type="rect", x0=-0.5, x1=len(key_labels) - 0.5, y0=highlight_row - 0.5, y1=highlight_row + 0.5,
                      line=dict(color="#e4572e", width=3))
    if window is not None and window < len(query_labels):  # query q sees keys k with q - k < window
        fig.add_shape(type="line", x0=-0.5, y0=window - 0.5, x1=len(query_labels) - window - 0.5,
                      y1=len(query_labels) - 0.5, line=dict(color="#e4572e", width=2, dash="dash"))
    return _layout(fig, title, height=max(420, 14 * len(query_labels) + 200))


def heads_grid(patterns: np.ndarray, titles: list[str], title: str, columns: int = 3,
               highlight_row: int | None = None) -> go.Figure:
    """patterns: (heads, n, n) -> one small heatmap per head on one shared colour scale.

    The heads are tiled into a single image (one trace, gaps left empty): far cheaper to build and to ship than one
    subplot per head."""
    heads, n, _ = patterns.shape
    rows = -(-heads // columns)
    gap = max(2, n // 10)
    tiled = np.full((rows * (n + gap), columns * (n + gap)), np.nan)  # (rows * (n + gap), columns * (n + gap))
    for head in range(heads):
        top, left = (head // columns) * (n + gap), (head % columns) * (n + gap)
        tiled[top:top + n, left:left + n] = patterns[head]
    fig = go.Figure(go.Heatmap(z=np.round(tiled, 3), colorscale="Blues", zmin=0, hoverongaps=False,
                               hovertemplate="%{z:.3f}<extra></extra>"))
    for head, name in enumerate(titles):
        top, left = (head // columns) * (n + gap), (head % columns) * (n + gap)
        fig.add_annotation(x=left + n / 2, y=top - gap / 2, text=name, showarrow=False, yanchor="bottom",
                           font=dict(size=12))
        if highlight_row is not None and 0 <= highlight_row < n:  # the same token framed in every head
            fig.add_shape(type="rect", x0=left - 0.5, x1=left + n - 0.5, y0=top + highlight_row - 0.5,
                          y1=top + highlight_row + 0.5, line=dict(color="#e4572e", width=2))
    fig.update_yaxes(autorange="reversed", visible=False, scaleanchor="x")
    fig.update_xaxes(visible=False)
    return _layout(fig, title, height=240 * rows + 100)


_HEAD_COLORS = ["rgba(59,111,216,0.55)", "rgba(228,87,46,0.55)", "rgba(46,160,67,0.55)", "rgba(148,103,189,0.55)",
                "rgba(140,86,75,0.55)", "rgba(23,190,207,0.55)"]


def head_view(weights: np.ndarray, labels: list[str], title: str, min_weight: float = 0.05,
              head_names: list[str] | None = None) -> go.Figure:
    """The BertViz picture, drawn natively: tokens in two columns, a line from each token (left) to the tokens it
    attends to (right), thicker for more weight. weights: (n, n) for one head, or (heads, n, n) for several heads,
    each in its own colour."""
    weights = weights[None] if weights.ndim == 2 else weights  # (heads, n, n)
    n = len(labels)
    fig = go.Figure()
    for index, head_weights in enumerate(weights):
        color = _HEAD_COLORS[index % len(_HEAD_COLORS)]
        name = head_names[index] if head_names else None
        for low, high, width in ((min_weight, 0.2, 1), (0.2, 0.5, 3), (0.5, 1.01, 6)):  # one trace per thickness
            xs, ys = [], []
            for query, key in zip(*np.nonzero((head_weights >= low) & (head_weights < high))):
                xs += [0, 1, None]
                ys += [query, key, None]
            if xs:
                fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(width=width, color=color), name=name,
                                         legendgroup=name, showlegend=bool(name) and low == min_weight,
                                         hoverinfo="skip"))
    for side, anchor in ((0, "right"), (1, "left")):
        fig.add_trace(go.Scatter(x=[side] * n, y=list(range(n)), mode="markers+text", text=labels, showlegend=False,
                                 textposition=f"middle {anchor}", marker=dict(size=5, color="#333"), hoverinfo="text"))
    fig.update_xaxes(visible=False, range=[-0.6, 1.6])
    fig.update_yaxes(visible=False, autorange="reversed")
    return _layout(fig, title, height=max(400, 18 * n + 120))


# ---------------------------------------------------------------- tokenization

CHIP_COLOURS = ("#dbeafe", "#fde68a", "#bbf7d0", "#fbcfe8", "#ddd6fe", "#fed7aa")


def token_row_html(text: str, tokens: list, limit: int = 800, href=None) -> str:
    """Tokens as coloured chips, id on hover. Tokens sharing characters (byte pieces of one Hangul syllable,
    WordPiece's jamo, Kiwi's contracted morphemes) are grouped under the characters they make up together.

    tokens: explorer.tokenize.Token objects in order; href(token) -> link or None.
    """
    groups: list[list] = []  # [start, end, [tokens]]
    for token in tokens[:limit]:
        if groups and token.end > token.start and token.start < groups[-1][1]:
            groups[-1][1] = max(groups[-1][1], token.end)
            groups[-1][2].append(token)
        else:
            groups.append([token.start, token.end, [token]])
    parts, colour = [], 0
    for start, end, members in groups:
        chips = []
        for token in members:
            chips.append(_chip(token, CHIP_COLOURS[colour % len(CHIP_COLOURS)], href))
            colour += 0 if token.added else 1
        split = len(members) > 1
        head = escape(visible(text[start:end])) if split else "&nbsp;"
        parts.append(f'<span style="display:inline-flex;flex-direction:column;align-items:center;margin:1px 2px;'
                     f'vertical-align:top{";border-top:2px solid #64748b" if split else ""}">'
                     f'<span style="font-size:0.8em;color:#334155;min-height:1.2em">{head}</span>'
                     f'<span style="white-space:nowrap">{"".join(chips)}</span></span>')
    more = f' <span style="color:#64748b">… +{len(tokens) - limit}</span>' if len(tokens) > limit else ""
    return f'<div style="line-height:1.5;font-size:1.05em">{"".join(parts)}{more}</div>'


def _chip(token, colour: str, href) -> str:
    hover = [f"id {token.id}" if token.id is not None else "", token.tag,
             "bytes " + token.raw.hex(" ").upper() if token.raw else ""]
    style = f"display:inline-block;margin:1px;padding:1px 5px;border-radius:5px;background:{colour};color:#111"
    if token.special:
        style += ";background:#e5e7eb;border:1px dashed #6b7280;color:#374151"
    if token.unknown:
        style += ";background:#fecaca;border:2px solid #dc2626"
    label = escape(visible(token.piece))
    if token.tag:
        label += f'<sub style="color:#475569">/{escape(token.tag)}</sub>'
    chip = f'<span title="{escape(" · ".join(h for h in hover if h))}" style="{style}">{label}</span>'
    link = href(token) if href else None
    return f'<a href="{escape(link)}" target="_self" style="text-decoration:none">{chip}</a>' if link else chip


def pieces_html(pieces: list[str]) -> str:
    """Plain string pieces (one pipeline step's output) as chips."""
    chips = [f'<span style="display:inline-block;margin:1px;padding:1px 5px;border-radius:5px;'
             f'background:{CHIP_COLOURS[i % len(CHIP_COLOURS)]};color:#111">{escape(visible(piece))}</span>'
             for i, piece in enumerate(pieces)]
    return f'<div style="line-height:1.6;font-size:1.05em">{"".join(chips)}</div>'


def token_cost_chart(tokenizers: list[str], korean: list[int], english: list[int], title: str,
                     korean_label: str, english_label: str, count_label: str) -> go.Figure:
    """Token counts for the same content in Korean and English, with the Korean / English ratio on top."""
    fig = go.Figure([
        go.Bar(name=korean_label, x=tokenizers, y=korean, marker_color="#d62728", text=korean, textposition="outside"),
        go.Bar(name=english_label, x=tokenizers, y=english, marker_color="#1f77b4", text=english, textposition="outside"),
    ])
    top = max([*korean, *english, 1])
    for name, ko, en in zip(tokenizers, korean, english):
        fig.add_annotation(x=name, y=top * 1.16, text=f"×{ko / max(1, en):.2f}", showarrow=False, font_size=15)
    fig.update_layout(barmode="group", legend=dict(orientation="h", x=1, xanchor="right", y=1.12))
    fig.update_yaxes(title=count_label, range=[0, top * 1.28])
    return _layout(fig, title, height=460)


def merges_curve(steps: list[int], counts: list[int], current: int, title: str, step_label: str,
                 count_label: str) -> go.Figure:
    """Tokens the user's sentence takes as the BPE vocabulary learns merge after merge."""
    fig = go.Figure(go.Scatter(x=steps, y=counts, mode="lines", line_color="#2563eb"))
    fig.add_vline(x=current, line_dash="dash", line_color="#dc2626")
    fig.update_xaxes(title=step_label)
    fig.update_yaxes(title=count_label, rangemode="tozero")
    return _layout(fig, title, height=300)


# ---------------------------------------------------------------- embeddings

KIND_COLOURS = {"hangul": "#d62728", "latin_word": "#1f77b4", "continuation": "#17becf", "digits": "#2ca02c",
                "punctuation": "#7f7f7f", "special": "#9467bd", "byte_piece": "#ff7f0e", "other": "#bcbd22"}


def matrix_heatmap(values: np.ndarray, row_labels: list[str], title: str, x_label: str, y_label: str,
                   column_labels: list[str] | None = None, colorscale: str = "RdBu", symmetric: bool = True) -> go.Figure:
    """A matrix with named rows: token vectors (tokens × dimensions), similarity matrices, position tables."""
    limit = float(np.abs(values).max()) or 1.0
    fig = go.Figure(go.Heatmap(z=values, colorscale=colorscale, zmid=0 if symmetric else None,
                               zmin=-limit if symmetric else None, zmax=limit if symmetric else None,
                               x=column_labels, y=list(range(len(row_labels))), hovertemplate="%{x} · %{y}: %{z:.3f}<extra></extra>"))
    fig.update_yaxes(title=y_label, autorange="reversed", tickvals=list(range(len(row_labels))) if len(row_labels) <= 40 else None,
                     ticktext=row_labels if len(row_labels) <= 40 else None)
    fig.update_xaxes(title=x_label)
    return _layout(fig, title, height=min(700, max(320, 18 * len(row_labels) + 160)))


def vocabulary_map(coordinates: np.ndarray, kinds: np.ndarray, labels: list[str], kind_names: dict[str, str],
                   highlight: list[int], title: str, shown: np.ndarray | None = None) -> go.Figure:
    """The tokens `shown` (default: every one) as WebGL points coloured by kind; `highlight` ids drawn large with
    their labels on top."""
    three_d = coordinates.shape[1] == 3
    scatter = go.Scatter3d if three_d else go.Scattergl
    ids = np.arange(len(labels)) if shown is None else np.asarray(shown)
    kinds = kinds[ids]
    traces = []
    for kind, name in kind_names.items():
        chosen = ids[kinds == kind]  # token ids of this kind among those shown
        if not len(chosen):
            continue
        axes = {axis: coordinates[chosen, i] for i, axis in enumerate("xyz"[:coordinates.shape[1]])}
        traces.append(scatter(**axes, mode="markers", name=f"{name} ({len(chosen):,})", customdata=chosen,
                              hovertext=[labels[i] for i in chosen], hoverinfo="text",
                              marker=dict(size=2 if three_d else 3, color=KIND_COLOURS[kind], opacity=0.55)))
    if highlight:
        chosen = np.asarray(highlight)
        axes = {axis: coordinates[chosen, i] for i, axis in enumerate("xyz"[:coordinates.shape[1]])}
        traces.append(scatter(**axes, mode="markers+text", name="★", customdata=chosen,
                              text=[visible(labels[i]) for i in chosen], hovertext=[labels[i] for i in chosen],
                              hoverinfo="text", textposition="top center",
                              marker=dict(size=7 if three_d else 11, color="#111", symbol="diamond",
                                          line=dict(color="#fff", width=1))))
    fig = go.Figure(traces)
    fig.update_layout(legend=dict(itemsizing="constant"), dragmode="pan" if three_d else "lasso")
    return _layout(fig, title, height=640)


def rotary_circles(pairs: np.ndarray, positions: list[int], pair_names: list[str], title: str) -> go.Figure:
    """One query's 2-D pairs after rotation at successive positions: each pair stays on its circle.

    pairs: (pairs, positions, 2)
    """
    fig = go.Figure()
    for points, name in zip(pairs, pair_names):
        fig.add_trace(go.Scatter(x=points[:, 0], y=points[:, 1], mode="lines+markers+text", name=name,
                                 text=[str(p) for p in positions], textposition="top right"))
    fig.update_yaxes(scaleanchor="x", zeroline=True)
    fig.update_xaxes(zeroline=True)
    return _layout(fig, title, height=480)


def context_paths(points: np.ndarray, senses: list[str], sentences: list[str], title: str, layer_label: str) -> go.Figure:
    """Each use of a word as a path through the layers (2-D), coloured by sense. points: (uses, layers + 1, 2)."""
    palette = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd"]
    colour = {sense: palette[i % len(palette)] for i, sense in enumerate(dict.fromkeys(senses))}
    fig = go.Figure()
    shown = set()
    for path, sense, sentence in zip(points, senses, sentences):
        fig.add_trace(go.Scatter(x=path[:, 0], y=path[:, 1], mode="lines+markers", name=sense, legendgroup=sense,
                                 showlegend=sense not in shown, line=dict(color=colour[sense], width=1.5),
                                 marker=dict(size=[12] + [6] * (len(path) - 2) + [14], color=colour[sense]),
                                 hovertext=[f"{layer_label} {i}: {sentence}" for i in range(len(path))], hoverinfo="text"))
        shown.add(sense)
    return _layout(fig, title, height=520)


def sense_lines(within: np.ndarray, across: np.ndarray, title: str, within_name: str, across_name: str,
                layer_label: str, similarity_label: str) -> go.Figure:
    layers = list(range(len(within)))
    fig = go.Figure([go.Scatter(x=layers, y=within, name=within_name, mode="lines+markers", line_color="#2ca02c"),
                     go.Scatter(x=layers, y=across, name=across_name, mode="lines+markers", line_color="#d62728")])
    fig.update_xaxes(title=layer_label, dtick=1 if len(layers) <= 12 else 2)
    fig.update_yaxes(title=similarity_label)
    return _layout(fig, title, height=380)


def sentence_map(points: np.ndarray, sentences: list[str], scores: np.ndarray | None, title: str) -> go.Figure:
    """Sentences on a 2-D map; with a query, coloured by their similarity to it."""
    short = [s if len(s) <= 28 else s[:27] + "…" for s in sentences]
    marker = dict(size=11, color=scores, colorscale="Viridis", showscale=True) if scores is not None else dict(size=11)
    fig = go.Figure(go.Scatter(x=points[:, 0], y=points[:, 1], mode="markers+text", text=short, hovertext=sentences,
                               hoverinfo="text", textposition="top center", marker=marker))
    return _layout(fig, title, height=520)


# ---------------------------------------------------------------- RNN vs Transformer

def lines(series: dict[str, tuple[list, list]], title: str, x_label: str, y_label: str, log_x: bool = False,
          log_y: bool = False, dashed: tuple[str, ...] = (), colours: dict[str, str] | None = None,
          percent: bool = False, height: int = 420) -> go.Figure:
    """Named (x, y) series on one chart; log axes for sizes and times (ticked at the data's own x values)."""
    colours = colours or {}
    fig = go.Figure([go.Scatter(x=list(x), y=list(y), name=name, mode="lines+markers",
                                line=dict(dash="dash" if name in dashed else "solid", color=colours.get(name)))
                     for name, (x, y) in series.items()])
    fig.update_xaxes(title=x_label, type="log" if log_x else "linear")
    if log_x:
        ticks = sorted({value for x, _ in series.values() for value in x})
        fig.update_xaxes(tickvals=ticks, ticktext=[f"{value:,}" for value in ticks])
    fig.update_yaxes(title=y_label, type="log" if log_y else "linear", tickformat=".0%" if percent else None)
    fig.update_layout(legend=dict(orientation="h", y=-0.25))
    return _layout(fig, title, height=height)


# ---------------------------------------------------------------- adapting

CLASS_COLOURS = ("#1f77b4", "#e4572e", "#2ca02c", "#9467bd", "#8c564b", "#17becf")


def class_map(points: np.ndarray, labels: np.ndarray, names: dict[int, str], texts: list[str], labelled: np.ndarray,
              title: str, labelled_name: str) -> go.Figure:
    """Sentences on a 2-D map coloured by class; the labelled ones (used for training) drawn larger, outlined."""
    fig = go.Figure()
    for index, name in names.items():
        for is_labelled in (False, True):
            chosen = (labels == index) & (labelled == is_labelled)  # (n,) bool
            if not chosen.any():
                continue
            fig.add_trace(go.Scatter(
                x=points[chosen, 0], y=points[chosen, 1], mode="markers",
                name=f"{name} · {labelled_name}" if is_labelled else name, legendgroup=name,
                hovertext=[texts[i] for i in np.flatnonzero(chosen)], hoverinfo="text",
                marker=dict(color=CLASS_COLOURS[index % len(CLASS_COLOURS)], size=13 if is_labelled else 8,
                            line=dict(width=2 if is_labelled else 0, color="#111"))))
    fig.update_xaxes(showticklabels=False).update_yaxes(showticklabels=False)
    fig.update_layout(legend=dict(orientation="h", y=-0.1))
    return _layout(fig, title, height=460)


def before_after_bars(labels: list[str], before: list[float], after: list[float] | None, title: str,
                      before_name: str, after_name: str, value_label: str, log_y: bool = False,
                      tokens: bool = True, percent: bool = False) -> go.Figure:
    """One value per label, before and (when given) after: grouped bars. Token labels show their spaces (␣). A log
    axis is ticked at powers of ten only."""
    shown = [visible(label) for label in labels] if tokens else labels
    bars = [go.Bar(x=shown, y=before, name=before_name, marker_color="#94a3b8")]
    if after is not None:
        bars.append(go.Bar(x=shown, y=after, name=after_name, marker_color="#e4572e"))
    fig = go.Figure(bars).update_layout(barmode="group", legend=dict(orientation="h", y=1.12))
    fig.update_yaxes(title=value_label, type="log" if log_y else None, dtick=1 if log_y else None,
                     tickformat=".2~%" if percent else None)
    return _layout(fig, title, height=380)


def plain_text_html(prompt: str, answer: str) -> str:
    """A prompt (bold) and the model's answer, line breaks kept, nothing interpreted as HTML."""
    return (f'<div style="white-space:pre-wrap;line-height:1.5;border:1px solid #e2e8f0;border-radius:6px;padding:8px">'
            f'<b>{escape(prompt)}</b>{escape(answer)}</div>')


def weighted_text_html(pieces: list[tuple[str, float]], colour: str = "228,87,46") -> str:
    """Text pieces on a background as strong as each piece's weight (relative to the largest); nothing rendered as
    HTML, weight on hover."""
    top = max((weight for _, weight in pieces), default=0.0) or 1.0
    spans = [f'<span title="{weight:.4f}" style="background:rgba({colour},{0.85 * max(0.0, weight) / top:.3f});'
             f'border-radius:3px">{escape(text)}</span>' for text, weight in pieces]
    return f'<div style="line-height:1.8;white-space:pre-wrap">{"".join(spans)}</div>'


# ---------------------------------------------------------------- quantization

def weight_histogram(values: np.ndarray, levels: np.ndarray, title: str, value_label: str, count_label: str,
                     grid_name: str) -> go.Figure:
    """A histogram of weights with every level of the quantization grid drawn over it as a thin vertical line."""
    counts, edges = np.histogram(values, bins=200)
    fig = go.Figure(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, width=np.diff(edges), marker_color="#94a3b8",
                           name=value_label))
    top = float(counts.max()) * 1.05
    xs = np.repeat(levels.astype(float), 3)  # x, x, gap for each level: one trace however many levels
    xs[2::3] = np.nan
    ys = np.tile([0.0, top, np.nan], len(levels))
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color="rgba(228,87,46,0.55)", width=1),
                             name=grid_name, hoverinfo="skip"))
    fig.update_xaxes(title=value_label).update_yaxes(title=count_label)
    fig.update_layout(legend=dict(orientation="h", y=1.12), bargap=0)
    return _layout(fig, title, height=360)


# ---------------------------------------------------------------- interpretability lab

def layer_contributions(attention: np.ndarray, mlp: np.ndarray, embedding: float, title: str, layer_label: str,
                        value_label: str, attention_name: str, mlp_name: str, embedding_name: str) -> go.Figure:
    """Each layer's attention and MLP push on one logit, stacked per layer, with the embedding's as its own bar."""
    layers = [str(i) for i in range(len(attention))]
    fig = go.Figure([go.Bar(x=[embedding_name], y=[embedding], name=embedding_name, marker_color="#94a3b8"),
                     go.Bar(x=layers, y=attention, name=attention_name, marker_color="#4c78a8"),
                     go.Bar(x=layers, y=mlp, name=mlp_name, marker_color="#e4572e")])
    fig.update_layout(barmode="relative", legend=dict(orientation="h", y=1.12))
    fig.update_xaxes(title=layer_label, type="category").update_yaxes(title=value_label)
    return _layout(fig, title, height=400)


def room_answers(kind: str, answers: list[str], options: list[str], model_answer: str | None, title: str,
                 count_label: str, model_label: str) -> go.Figure:
    """What the room answered: a bar per choice, a histogram of numbers, or the most common free answers; the
    model's live answer marked once it is revealed (its bar in red, or a line on the histogram)."""
    fig = go.Figure()
    if kind == "number":
        numbers = [float(a.replace(",", "")) for a in answers if _number(a)]
        fig.add_trace(go.Histogram(x=numbers, marker_color="#94a3b8", name=count_label))
        if model_answer is not None and _number(model_answer):
            fig.add_vline(x=float(model_answer.replace(",", "")), line=dict(color="#e4572e", width=4),
                          annotation_text=model_label, annotation_position="top")
    else:
        counted = Counter(a.strip() if kind == "choice" else a.strip().lower() for a in answers if a.strip())
        labels = list(options) if kind == "choice" else [a for a, _ in counted.most_common(8)]
        wanted = (model_answer or "").strip() if kind == "choice" else (model_answer or "").strip().lower()
        fig.add_trace(go.Bar(x=[visible(label) for label in labels], y=[counted.get(label, 0) for label in labels],
                             marker_color=["#e4572e" if label == wanted else "#94a3b8" for label in labels],
                             name=count_label))
    fig.update_yaxes(title=count_label, rangemode="tozero").update_layout(showlegend=False, bargap=0.15)
    return _layout(fig, title, height=360)


def _number(text: str) -> bool:
    try:
        return math.isfinite(float(text.replace(",", "")))
    except ValueError:
        return False
