"""The distillation strategies (train.py --KDstr N): the numbers users type, the names the code
tests. Each one's terms live in its own module (output, bounded, imitation, feature)."""
from enum import IntEnum


class Strategy(IntEnum):
    OUTPUT = 1        # Hinton-style on the heads' outputs (output.py)
    BOUNDED = 2       # teacher-bounded box regression (bounded.py)
    IMITATION = 3     # the teacher's predictions at the ground truth's cells (imitation.py)
    FEATURES = 4      # OUTPUT plus the head inputs through adapters (feature.py)
    FINE_FEATURES = 5  # FEATURES near objects only (feature.py)
    OUTPUT_BOXES = 6  # OUTPUT with the boxes too, scaled by objectness (output.py)


FEATURE_STRATEGIES = (Strategy.FEATURES, Strategy.FINE_FEATURES)  # these train adapters
LABEL_FREE = (Strategy.OUTPUT, Strategy.OUTPUT_BOXES)  # no ground truth needed
