"""What the scheduler knows of one request: who asks, how much work, how long it may wait."""

from dataclasses import dataclass, field
from enum import IntEnum


class Band(IntEnum):
    """Strict priority bands: a lower value is always served first."""

    INTERACTIVE = 0
    BATCH = 1


@dataclass(eq=False)  # identity semantics: two jobs are never "equal"
class Job:
    id: str
    tenant: str
    model: str
    input_tokens: int  # an estimate at admission; the engine's count is charged when known
    max_output_tokens: int
    arrived: float
    deadline: float  # the latest moment it may still be dispatched
    band: Band = Band.INTERACTIVE
    prefix_blocks: tuple[int, ...] = ()  # chained hashes of the prompt's blocks
    output_charged: int = field(default=0)  # tokens already charged to the tenant's counter
    avoid: frozenset[str] = frozenset()  # replicas that just failed it: elsewhere if possible
