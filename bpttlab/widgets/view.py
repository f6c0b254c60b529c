"""What the widgets share: callbacks whose errors land in an Output widget, and reprs that work
without a frontend.

In JupyterLab an exception raised in a widget callback goes to the browser's log, where a student never
sees it. :meth:`View.guard` wraps a callback so that its exception is written into the widget's own
``errors`` Output instead (a one-line message for a bad input, the traceback for anything else), and is
cleared when the next callback starts.

The text repr of a view is one deterministic line (nbval compares it); its ``text/html`` is a static
snapshot of what the widget shows, for places with no widget frontend (nbconvert, GitHub).
"""
from __future__ import annotations

import functools
import traceback
from typing import Callable

import ipywidgets as widgets


class View(widgets.VBox):
    """A VBox over a plain model object, with an ``errors`` Output and deterministic reprs.

    Subclasses build their children, pass them to ``__init__``, and define ``__repr__`` and
    ``static_html()`` (the HTML snapshot put in the ``text/html`` of the repr).
    """

    def __init__(self, children, **kwargs):
        self.errors = widgets.Output(layout=widgets.Layout(max_height="12em", overflow="auto"))
        self.last_error: BaseException | None = None
        self._depth = 0
        super().__init__(children=(*children, self.errors), **kwargs)

    def guard(self, callback: Callable) -> Callable:
        """``callback`` with its exceptions written to ``self.errors`` instead of raised.

        The error of an earlier callback is cleared when the next outermost callback starts (a
        callback that sets a control runs that control's callback inside its own).
        """

        @functools.wraps(callback)
        def guarded(*args, **kwargs):
            if self._depth == 0 and self.last_error is not None:
                self.errors.outputs = ()
                self.last_error = None
            self._depth += 1
            try:
                return callback(*args, **kwargs)
            except Exception as exc:  # the point: nothing a callback raises may vanish
                self.report(exc)
                return None
            finally:
                self._depth -= 1

        return guarded

    def report(self, exc: BaseException) -> None:
        """Show ``exc`` in the errors Output (replacing an earlier one)."""
        if isinstance(exc, (ValueError, TypeError)):
            text = f"{type(exc).__name__}: {exc}\n"
        else:
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        self.errors.outputs = ()
        self.errors.append_stderr(text)
        self.last_error = exc

    def _repr_mimebundle_(self, **kwargs):
        data = super()._repr_mimebundle_(**kwargs) or {}
        data["text/plain"] = repr(self)
        data["text/html"] = self.static_html()
        return data
