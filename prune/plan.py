"""What a prune method decides (PrunePlan) and how it says it cannot (PruneError): the vocabulary
the selection (masks.py, deps.py, cost.py) and the surgery (surgery.py) share."""
from __future__ import annotations

from dataclasses import dataclass, field

from utils.errors import ToolkitError


class PruneError(ToolkitError, ValueError):
    """A plan that cannot be carried out; the message names the layer or flag."""


@dataclass
class PrunePlan:
    masks: dict = field(default_factory=dict)    # conv layer -> bool tensor of kept channels
    dropped: list = field(default_factory=list)  # shortcut layers whose residual block goes
    consumed: tuple = ()  # conv cfg keys the plan carries out; the written cfg drops them

    def dropped_layers(self) -> set:
        return {s - k for s in self.dropped for k in (0, 1, 2)}
