"""The devices a replica runs on, and the environment that shows its engine only those."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Devices:
    """Accelerators of one kind on one node, as its vendor's visible-devices variable counts
    them. `accelerator` is an id of engines/data/matrix.toml: nvidia, amd, ascend, cambricon,
    hygon, gaudi or cpu."""

    accelerator: str
    indices: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if len(set(self.indices)) != len(self.indices) or any(i < 0 for i in self.indices):
            raise ValueError(f"device indices must be distinct and >= 0; got {self.indices}")

    @property
    def count(self) -> int:
        return len(self.indices)

    def visible(self, variables: tuple[str, ...]) -> dict[str, str]:
        """Each of the vendor's visible-devices variables set to these indices."""
        value = ",".join(str(i) for i in self.indices)
        return {name: value for name in variables}


CPU = Devices("cpu")
