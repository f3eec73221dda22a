"""Where a scene's objects go: their classes, sizes, positions, flips and tilts.

A layout is a pure function of the seed and needs no pixels, so captions (and the
labels a judge learns from) cost microseconds; rendering happens only on demand.
"""

from __future__ import annotations

from dataclasses import dataclass

from fissure.world.backgrounds import SIZE
from fissure.world.classes import class_names
from fissure.world.draws import Draws

SIZE_BANDS = {"small": (16, 22), "medium": (25, 34), "big": (38, 48)}
"""Sprite sizes in pixels (the longer side) by the word a caption may use for them."""
MAX_OBJECTS = 3
_OBJECT_COUNTS = (1, 2, 3)
_OBJECT_COUNT_WEIGHTS = (0.4, 0.4, 0.2)
# More objects leave less room, so big ones get rarer.
_BAND_WEIGHTS = {1: (0.25, 0.4, 0.35), 2: (0.35, 0.45, 0.2), 3: (0.45, 0.45, 0.1)}
_REPEAT_CLASS = 0.3  # chance that another object repeats a class, so captions can count
_MAX_OVERLAP = 0.25  # of the smaller box's area
_PLACEMENT_TRIES = 12
_MAX_ANGLE = 15.0


@dataclass(frozen=True)
class SceneObject:
    """One sprite in a scene: its class, size band and square box ``(x0, y0, x1, y1)`` in pixels."""

    name: str
    band: str
    box: tuple[int, int, int, int]
    flipped: bool
    angle: float
    """Degrees counter-clockwise."""

    @property
    def size(self) -> int:
        return self.box[2] - self.box[0]

    @property
    def center(self) -> tuple[float, float]:
        return (self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """The shared area of two boxes as a fraction of the smaller one."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return width * height / smaller


def _place(size: int, placed: list[SceneObject], draws: Draws) -> tuple[int, int, int, int]:
    """A box of ``size`` that overlaps the placed ones least (a little overlap is allowed)."""
    best, best_overlap = (0, 0, size, size), float("inf")
    for _ in range(_PLACEMENT_TRIES):
        x, y = draws.integer(0, SIZE - size), draws.integer(0, SIZE - size)
        box = (x, y, x + size, y + size)
        overlap = max((_overlap(box, other.box) for other in placed), default=0.0)
        if overlap < best_overlap:
            best, best_overlap = box, overlap
        if overlap <= _MAX_OVERLAP:
            break
    return best


def sample_layout(draws: Draws, n_objects: int | None = None) -> tuple[SceneObject, ...]:
    """1–3 objects of random classes (sometimes repeated), sizes and places.

    Objects come largest first, the order they are painted in, so a small one is
    never hidden behind a big one.
    """
    count = n_objects or draws.weighted(_OBJECT_COUNTS, _OBJECT_COUNT_WEIGHTS)
    names = class_names()
    chosen: list[tuple[int, str, str]] = []
    for _ in range(count):
        if chosen and draws.chance(_REPEAT_CLASS):
            name = draws.choice(chosen)[1]
        else:
            name = draws.choice(names)
        band = draws.weighted(tuple(SIZE_BANDS), _BAND_WEIGHTS[count])
        chosen.append((draws.integer(*SIZE_BANDS[band]), name, band))
    placed: list[SceneObject] = []
    for size, name, band in sorted(chosen, key=lambda item: -item[0]):
        box = _place(size, placed, draws)
        placed.append(
            SceneObject(name, band, box, draws.chance(0.5), draws.uniform(-_MAX_ANGLE, _MAX_ANGLE))
        )
    return tuple(placed)
