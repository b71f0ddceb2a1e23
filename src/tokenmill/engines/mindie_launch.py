"""Starts MindIE Service for one replica, on its node: the installed config.json with the
replica's fields set (engines/mindie.py decides them) is written to a file of its own, named by
MIES_CONFIG_JSON_PATH, and the daemon replaces this process.

    python -m tokenmill.engines.mindie_launch   (its environment carries everything)
"""

import json
import os
import tempfile
from pathlib import Path

from tokenmill.engines.matrix import matrix
from tokenmill.engines.mindie_config import OVERRIDES_ENV, merged


def write_config(install: Path) -> str:
    """The replica's config file (mode 0600, its owner's only); returns its path."""
    facts = matrix().engine("mindie")
    shipped = json.loads((install / facts.paths["default_config"]).read_text("utf-8"))
    config = merged(shipped, json.loads(os.environ[OVERRIDES_ENV]))
    fd, path = tempfile.mkstemp(prefix="tokenmill-mindie-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
    return path


def main() -> None:
    facts = matrix().engine("mindie")
    install = Path(os.environ[facts.env["install_path"]])
    os.environ[facts.env["config_path"]] = write_config(install)
    daemon = install / facts.paths["daemon"]
    os.chdir(daemon.parent)  # its config names certificates and tools relative to bin/
    os.execv(daemon, [str(daemon)])  # noqa: S606 - the daemon replaces this launcher


if __name__ == "__main__":
    main()
