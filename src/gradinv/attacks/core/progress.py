"""What an attack tells its caller while it runs: one callback type, one record schema.

``callback(iteration, record)`` is called once per iteration (a reverse diffusion step, a
CMA-ES generation, an R-GAP layer); ``record`` is a plain dict holding at least
:data:`RECORD_KEYS` -- ``iteration`` (int, the same as the first argument) and ``loss``
(float, the attack's objective at that iteration) -- plus attack-specific numbers
(``distance``, ``phase``, ``t``, ...). Every ``snapshot_every`` iterations and at the last
one it also holds ``images``: the current best batch ``(B, C, H, W)`` in ``[0, 1]`` on CPU.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

#: ``callback(iteration, record)``, called once per iteration.
Callback = Callable[[int, dict], None]

#: Keys every progress record holds.
RECORD_KEYS: tuple[str, ...] = ("iteration", "loss")


def snapshot_due(iteration: int, every: int, final: bool = False) -> bool:
    """Whether the record of ``iteration`` carries images (every ``every``, and the last)."""
    return final or (every > 0 and iteration % every == 0)


def emit(
    callback: Callback | None,
    record: dict,
    images: Tensor | None = None,
    every: int = 0,
    final: bool = False,
) -> None:
    """Send a copy of ``record`` (which has :data:`RECORD_KEYS`) to ``callback``, with
    ``images`` (clamped to ``[0, 1]``, copied to the CPU) when a snapshot is due: pass a
    view, and nothing leaves the device unless it is sent."""
    if callback is None:
        return
    out = dict(record)
    if images is not None and snapshot_due(int(record["iteration"]), every, final):
        out["images"] = images.detach().clamp(0, 1).cpu()
    callback(int(record["iteration"]), out)


__all__ = ["RECORD_KEYS", "Callback", "emit", "snapshot_due"]
