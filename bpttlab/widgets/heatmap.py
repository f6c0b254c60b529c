r"""A T x T map of norms as SVG, on a log scale centred on 1.

Each cell (row t, column k) is coloured by :math:`\log_{10} M[t][k]`, clamped to
[-``DECADES``, ``DECADES``]: blue where the gradient has vanished, pale yellow near 1, red where it has
exploded (the RdYlBu scale). Undefined entries (NaN: k > t, or cut off by truncation) are left blank,
zeros get the darkest blue and non-finite values black. Every cell carries a ``<title>`` with its value for the hover text.
"""
from __future__ import annotations

import numpy as np

from .formatting import escape, number

DECADES = 8
_STOPS = np.array([[49, 54, 149], [116, 173, 209], [255, 255, 191], [244, 109, 67], [165, 0, 38]], float)


def colour(value: float) -> str:
    """The colour of one norm: the diverging RdYlBu scale in log10, clamped to +-DECADES; "none" for NaN."""
    if np.isnan(value):
        return "none"
    if not np.isfinite(value):
        return "#000000"
    u = -1.0 if value <= 0.0 else float(np.clip(np.log10(value) / DECADES, -1.0, 1.0))
    pos = (u + 1.0) / 2.0 * (len(_STOPS) - 1)
    i = min(int(pos), len(_STOPS) - 2)
    rgb = _STOPS[i] + (_STOPS[i + 1] - _STOPS[i]) * (pos - i)
    return "#" + "".join(f"{int(round(c)):02x}" for c in rgb)


def heatmap_svg(norms: np.ndarray, quantity: str, size: int = 420) -> str:
    """The map ``norms`` (T, T), row t-1 and column k-1, as an SVG string with axes and a colour bar.

    Args:
        norms: the map; NaN where undefined.
        quantity: what it shows, in plain text (for the title and the hover text), e.g. ``|dE_t/dh_k|``.
        size: the side of the map in pixels.
    """
    T = norms.shape[0]
    cell = size / T
    left, top, bar = 40, 28, 24
    width, height = left + size + 70, top + size + 36
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="bpttlab-heatmap" width="{width:g}" '
             f'height="{height:g}" viewBox="0 0 {width:g} {height:g}" font-family="sans-serif" font-size="11">',
             f'<text x="{left:g}" y="16" font-size="12">{escape(quantity)}: row t, column k</text>']
    for t in range(T):
        for k in range(T):
            v = norms[t, k]
            if np.isnan(v):
                continue
            parts.append(f'<rect x="{left + k * cell:.2f}" y="{top + t * cell:.2f}" width="{cell + 0.3:.2f}" '
                         f'height="{cell + 0.3:.2f}" fill="{colour(v)}"><title>t={t + 1}, k={k + 1}: '
                         f'{number(v, 3)}</title></rect>')
    parts.append(f'<rect x="{left}" y="{top}" width="{size:g}" height="{size:g}" fill="none" stroke="#999999"/>')
    step = max(1, int(np.ceil(T / 10)))
    for i in range(0, T, step):
        c = (i + 0.5) * cell
        parts.append(f'<text x="{left + c:.1f}" y="{top + size + 14:.1f}" text-anchor="middle">{i + 1}</text>')
        parts.append(f'<text x="{left - 5:.1f}" y="{top + c + 4:.1f}" text-anchor="end">{i + 1}</text>')
    parts.append(f'<text x="{left + size / 2:.1f}" y="{top + size + 30:.1f}" text-anchor="middle">k</text>')
    parts.append(f'<text x="10" y="{top + size / 2:.1f}">t</text>')
    x0 = left + size + 16
    n = 64
    for i in range(n):
        u = DECADES - 2 * DECADES * (i + 0.5) / n
        parts.append(f'<rect x="{x0}" y="{top + i * size / n:.2f}" width="{bar}" height="{size / n + 0.3:.2f}" '
                     f'fill="{colour(10.0 ** u)}"/>')
    for d in range(-DECADES, DECADES + 1, 4):
        y = top + size * (DECADES - d) / (2 * DECADES)
        parts.append(f'<text x="{x0 + bar + 3}" y="{y + 4:.1f}">1e{d}</text>')
    parts.append("</svg>")
    return "".join(parts)
