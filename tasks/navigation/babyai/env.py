"""BabyAI levels of ``minigrid`` (Chevalier-Boisvert et al. 2019, BabyAI: A Platform to Study the Sample
Efficiency of Grounded Language Learning) behind one small wrapper.

:class:`BabyAIEnv` makes a registered level by id, seeds every episode explicitly, keeps minigrid's
``reset()`` chatter ("Sampling rejected: ...", printed on stdout while a mission is generated) out of the
user's terminal, and returns observations as plain numpy arrays:

* ``"symbolic"``: the egocentric 7x7 view, 3 integer channels per cell (object, colour, state), ``uint8``
  ``[7, 7, 3]``;
* ``"rgb"``: the same view rendered at 8 pixels per cell (``RGBImgPartialObsWrapper``), ``uint8``
  ``[56, 56, 3]``.
"""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from vltk.errors import ConfigError, unknown_choice_message

logger = logging.getLogger(__name__)

ObservationKind = Literal["symbolic", "rgb"]
OBSERVATIONS: tuple[str, ...] = ("symbolic", "rgb")
NUM_ACTIONS = 7  # left, right, forward, pickup, drop, toggle, done
ACTION_NAMES = ("left", "right", "forward", "pickup", "drop", "toggle", "done")
RGB_TILE = 8
VIEW = 7
# Upper bounds of the symbolic channels (minigrid's OBJECT_TO_IDX, COLOR_TO_IDX, STATE_TO_IDX), with room.
SYMBOLIC_VALUES = (16, 8, 4)


def observation_shape(kind: ObservationKind) -> tuple[int, int, int]:
    """``(7, 7, 3)`` for ``"symbolic"``, ``(56, 56, 3)`` for ``"rgb"``."""
    check_observation(kind)
    return (VIEW, VIEW, 3) if kind == "symbolic" else (VIEW * RGB_TILE, VIEW * RGB_TILE, 3)


def check_observation(kind: str) -> None:
    if kind not in OBSERVATIONS:
        raise ConfigError(unknown_choice_message("observation", kind, OBSERVATIONS))


def _import_minigrid() -> Any:
    try:
        import gymnasium
        import minigrid  # noqa: F401  (registers the MiniGrid and BabyAI ids with gymnasium)
    except ImportError as error:  # pragma: no cover - minigrid is a dependency
        raise ConfigError(f"the navigation task needs the `minigrid` package ({error})") from None
    return gymnasium


def level_ids() -> list[str]:
    """Every BabyAI level id registered by ``minigrid`` (``BabyAI-GoToRedBall-v0``, ...), sorted."""
    gymnasium = _import_minigrid()
    return sorted(name for name in gymnasium.registry if name.startswith("BabyAI-"))


def check_level(level: str) -> str:
    """``level`` when it is a registered BabyAI id; otherwise a :class:`ConfigError` listing close matches."""
    ids = level_ids()
    if level in ids:
        return level
    import difflib

    short = {name.removeprefix("BabyAI-").removesuffix("-v0").lower(): name for name in ids}
    query = level.removeprefix("BabyAI-").removesuffix("-v0").lower()
    close = [short[s] for s in difflib.get_close_matches(query, list(short), n=5, cutoff=0.6)]
    close += [name for name in difflib.get_close_matches(level, ids, n=5, cutoff=0.6) if name not in close]
    hint = f"; close matches: {', '.join(close[:5])}" if close else ""
    raise ConfigError(
        f"unknown BabyAI level '{level}'{hint} ({len(ids)} levels are registered; "
        '`python -c "from vltk.tasks.navigation.babyai.env import level_ids; print(level_ids())"` '
        "lists them)"
    )


@contextlib.contextmanager
def quiet_stdout():
    """Swallow what minigrid prints on stdout (mission sampling retries), logging it at DEBUG level."""
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        yield
    text = sink.getvalue().strip()
    if text:
        logger.debug("minigrid said: %s", text.replace("\n", " | "))


@dataclass
class Observation:
    """One egocentric observation.

    Attributes:
        image: ``uint8`` ``[7, 7, 3]`` (symbolic) or ``[56, 56, 3]`` (rgb).
        direction: the agent's heading, 0..3 (east, south, west, north).
        mission: the instruction, e.g. ``"go to the red ball"``.
    """

    image: np.ndarray
    direction: int
    mission: str


class BabyAIEnv:
    """One BabyAI level with explicit per-episode seeds and quiet resets.

    Args:
        level: a registered BabyAI level id (``BabyAI-GoToRedBall-v0``, ``BabyAI-GoToLocal-v0``, ...).
        observation: ``"symbolic"`` (7x7x3 grid codes) or ``"rgb"`` (56x56 egocentric pixels).
    """

    def __init__(self, level: str = "BabyAI-GoToRedBall-v0", *, observation: ObservationKind = "symbolic"):
        gymnasium = _import_minigrid()
        check_observation(observation)
        self.level = check_level(level)
        self.observation = observation
        env = gymnasium.make(self.level)
        if observation == "rgb":
            from minigrid.wrappers import RGBImgPartialObsWrapper

            env = RGBImgPartialObsWrapper(env, tile_size=RGB_TILE)
        self.env = env
        self.seed: int | None = None

    @property
    def unwrapped(self) -> Any:
        """The minigrid environment itself (what the BabyAI bot reads)."""
        return self.env.unwrapped

    @property
    def max_steps(self) -> int:
        return int(self.env.unwrapped.max_steps)

    def _observation(self, raw: dict[str, Any]) -> Observation:
        return Observation(
            np.asarray(raw["image"], dtype=np.uint8), int(raw["direction"]), str(raw["mission"])
        )

    def reset(self, seed: int) -> Observation:
        """Start the episode of ``seed`` (the same seed always gives the same episode)."""
        self.seed = int(seed)
        with quiet_stdout():
            raw, _ = self.env.reset(seed=self.seed)
        return self._observation(raw)

    def step(self, action: int) -> tuple[Observation, float, bool]:
        """Take ``action`` (0..6); returns ``(observation, reward, done)`` (terminated or out of time)."""
        raw, reward, terminated, truncated, _ = self.env.step(int(action))
        return self._observation(raw), float(reward), bool(terminated or truncated)

    def render_rgb(self, highlight: bool = True) -> np.ndarray:
        """The whole grid as an RGB image ``uint8`` ``[H, W, 3]`` (agent's view highlighted), for GIFs."""
        return np.asarray(self.env.unwrapped.get_full_render(highlight, 32), dtype=np.uint8)

    def close(self) -> None:
        self.env.close()
