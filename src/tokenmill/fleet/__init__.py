"""The fleet: accelerators and nodes, what they are (catalog) and what they hold (inventory)."""
