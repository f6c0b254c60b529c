"""Small public-domain texts shipped with the package, for the character-level language model of chapter 10.

Each text is a UTF-8 file in this folder; README.md here says where each one comes from and why it is in
the public domain. They are read through :mod:`importlib.resources`, so they load from an installed
package (a wheel, a zip) as well as from a source checkout.

>>> text = load_text("devils-dictionary-a-c")
>>> text.splitlines()[0].strip()
'The Internet Wiretap 1st Online Edition of'
"""
from __future__ import annotations

from importlib import resources

#: name -> file name of every shipped text.
TEXTS = {"devils-dictionary-a-c": "devils-dictionary-a-c.txt"}


def load_text(name: str = "devils-dictionary-a-c") -> str:
    """The shipped text called ``name`` (see :data:`TEXTS`), as one string.

    Raises:
        TypeError: ``name`` is not a string.
        ValueError: no text has that name (the message lists the names).
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be the name of a shipped text (str), got {type(name).__name__}")
    if name not in TEXTS:
        raise ValueError(f"unknown text {name!r}; the shipped texts: {', '.join(TEXTS)}")
    return resources.files(__name__).joinpath(TEXTS[name]).read_text(encoding="utf-8")
