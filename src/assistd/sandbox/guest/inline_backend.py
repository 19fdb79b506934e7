"""The matplotlib backend ``module://inline_backend`` (set through ``MPLBACKEND``).

Agg draws the figures; ``plt.show()`` hands them to the driver, which renders them as PNG
between the text printed before and after, instead of Agg's warning that it cannot show
anything. Figures still open when a cell ends are collected the same way.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

# Set by the driver at start-up; None when matplotlib is used outside the driver.
display: Callable[[], None] | None = None


def show(*args: Any, **kwargs: Any) -> None:
    """``plt.show()``: render and close the open figures now (arguments such as ``block``
    mean nothing without a window)."""
    if display is not None:
        display()


def __getattr__(name: str) -> Any:
    # matplotlib reads FigureCanvas right after importing the backend, and then copies the
    # module's attributes: storing it makes it one of them. Importing Agg here rather than
    # at the top keeps matplotlib out of the driver's start-up.
    if name == "FigureCanvas":
        canvas = importlib.import_module("matplotlib.backends.backend_agg").FigureCanvasAgg
        globals()["FigureCanvas"] = canvas
        return canvas
    raise AttributeError(name)
