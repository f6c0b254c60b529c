"""Widgets that let a student watch BPTT happen: thin ipywidgets views over plain model objects.

* :class:`Stepper` (``%bptt step``): one pass, forward then backward, one event at a time, over
  :class:`StepperModel`.
* :class:`GradientFlow` (``%bptt flow``): the T x T map of ||dE_t/dh_k|| or ||dh_t/dh_k|| under live
  controls (spectral radius, activation, initialisation, clipping), over :class:`FlowModel`.

The models hold all the state and all the numbers, so they are tested without a browser; the views draw
them (SVG, no extra dependency) and put any error of a callback in their ``errors`` Output.
"""
from __future__ import annotations

from .events import Event, pass_events
from .flow_model import FlowModel, FlowSettings
from .gradient_flow import GradientFlow
from .stepper import Stepper
from .stepper_model import StepperModel

__all__ = ["Event", "FlowModel", "FlowSettings", "GradientFlow", "Stepper", "StepperModel", "pass_events"]
