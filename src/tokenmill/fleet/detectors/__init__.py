"""One module per accelerator vendor, each a pure parser of its tool's output plus the command
line that produces it (see tokenmill.fleet.discovery for the interface they share)."""
