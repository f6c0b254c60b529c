"""Plugin registries filled from entry points.

Four groups are read with :mod:`importlib.metadata`: ``bpttlab.cells``, ``bpttlab.activations``,
``bpttlab.losses`` and ``bpttlab.exercises``. The built-ins register through the same groups in
``pyproject.toml``, so a third-party plugin is first-class. Entry points are loaded lazily, on the first
lookup in a group; each plugin is validated when it is registered, and a plugin that fails to load or to
validate is recorded in :attr:`Registry.broken` under its name, with the reason, without breaking the
others.

Code can also register directly (tests, notebooks)::

    bl.registry.cells.register("leaky", LeakyCell())
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, Iterator


@dataclass
class Registry:
    """Names -> plugin objects for one entry-point group.

    Attributes:
        group: the entry-point group, e.g. ``"bpttlab.cells"``.
        kind: what a plugin is, for messages ("cell", "activation", ...).
        validate: called with (name, obj) on registration; raises to reject the plugin.
        broken: name -> reason, for plugins that failed to load or validate.
        origins: name -> where the plugin came from (distribution or "registered at run time").
        instantiate: plugins given as classes are instantiated with no arguments (cells).
        changes: how many times a name was added, replaced or removed, so that a caller that remembers
            what a name meant can tell, by one comparison, that it still means that.
    """

    group: str
    kind: str
    validate: Callable[[str, Any], None] | None = None
    instantiate: bool = False
    broken: dict[str, str] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)
    changes: int = 0
    _items: dict[str, Any] = field(default_factory=dict)
    _loaded: bool = False
    _loading: bool = False
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def _load_entry_points(self) -> None:
        # Another thread (the kernel's cache warm-up) may be loading the group: wait for it to finish
        # rather than see half of it. A lookup made while loading, by the loading thread, sees what has
        # been loaded so far.
        if self._loaded:
            return
        with self._lock:
            if self._loaded or self._loading:
                return
            self._loading = True
            try:
                self._load_group()
            finally:
                self._loaded = True

    def _load_group(self) -> None:
        for ep in metadata.entry_points(group=self.group):
            if ep.name in self._items:
                continue
            dist = getattr(ep, "dist", None)
            origin = f"{dist.name} {dist.version}" if dist is not None else ep.value
            try:
                obj = ep.load()
            except Exception as exc:  # a broken plugin must not break the others
                self.broken[ep.name] = f"could not be loaded from {ep.value}: {type(exc).__name__}: {exc}"
                continue
            # bpttlab's own plugins are checked by its tests; validating them here cost SymPy's import
            self._add(ep.name, obj, origin, validate=not ep.value.startswith("bpttlab."))

    def _add(self, name: str, obj: Any, origin: str, validate: bool = True) -> bool:
        try:
            if self.instantiate and isinstance(obj, type):
                obj = obj()
            if validate and self.validate is not None:
                self.validate(name, obj)
        except Exception as exc:
            self.broken[name] = f"failed validation: {exc}"
            return False
        self._items[name] = obj
        self.origins[name] = origin
        self.changes += 1
        self.broken.pop(name, None)
        return True

    def register(self, name: str, obj: Any, *, replace: bool = False) -> Any:
        """Register ``obj`` under ``name`` at run time and return it.

        Raises:
            ValueError: the name is taken (and ``replace`` is false) or the plugin fails validation.
        """
        self._load_entry_points()
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"{self.kind} name must be an identifier-like string, got {name!r}")
        if name in self._items and not replace:
            raise ValueError(f"a {self.kind} named {name!r} is already registered; pass replace=True")
        if not self._add(name, obj, "registered at run time"):
            raise ValueError(f"{self.kind} plugin {name!r} {self.broken.pop(name)}")
        return self._items[name]

    def unregister(self, name: str) -> None:
        """Remove a plugin registered at run time (or loaded); unknown names are an error."""
        self._load_entry_points()
        if name not in self._items:
            raise ValueError(self._unknown(name))
        del self._items[name]
        del self.origins[name]
        self.changes += 1

    def get(self, name: str, argument: str | None = None) -> Any:
        """The plugin called ``name``.

        Raises:
            TypeError: ``name`` is not a string.
            ValueError: no such plugin; the message lists the registered names (and broken ones).
        """
        self._load_entry_points()
        if not isinstance(name, str):
            arg = argument or self.kind
            raise TypeError(f"{arg} must be a {self.kind} name (str), got {type(name).__name__}")
        try:
            return self._items[name]
        except KeyError:
            raise ValueError(self._unknown(name, argument)) from None

    def _unknown(self, name: str, argument: str | None = None) -> str:
        arg = argument or self.kind
        plural = self.kind + ("es" if self.kind.endswith("s") else "s")
        msg = f"unknown {arg} {name!r}; registered {plural}: {', '.join(self.names()) or '(none)'}"
        if name in self.broken:
            msg += f". The plugin {name!r} is broken: {self.broken[name]}"
        return msg

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._items)

    def items(self) -> Iterator[tuple[str, Any]]:
        self._load_entry_points()
        return iter(sorted(self._items.items()))

    def __contains__(self, name: object) -> bool:
        self._load_entry_points()
        return name in self._items


def _validate_cell(name: str, obj: Any) -> None:
    from .cells.base import validate_cell

    validate_cell(name, obj)


def _validate_activation(name: str, obj: Any) -> None:
    from .activations import validate_activation

    validate_activation(name, obj)


def _validate_loss(name: str, obj: Any) -> None:
    from .losses import validate_loss

    validate_loss(name, obj)


def _validate_pack(name: str, obj: Any) -> None:
    from .grading.exercise import validate_pack

    validate_pack(name, obj)


cells = Registry("bpttlab.cells", "cell", _validate_cell, instantiate=True)
activations = Registry("bpttlab.activations", "activation", _validate_activation)
losses = Registry("bpttlab.losses", "loss", _validate_loss)
exercises = Registry("bpttlab.exercises", "exercise pack", _validate_pack)

ALL = {"cells": cells, "activations": activations, "losses": losses, "exercises": exercises}
