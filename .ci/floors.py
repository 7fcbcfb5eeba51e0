"""Write the oldest release of each runtime dependency that setup.cfg admits, as pins.

    python .ci/floors.py FILE

setup.cfg's install_requires are ranges (``flask>=3.1,<4``); a user who installs refapi beside
other packages may get any release in them, the floor included. tox's ``lowest`` env installs
these pins over the usual ones and runs the suite, so a floor that is too low fails CI instead
of a user's deployment. A dependency without a floor (``>=`` or ``==``) is refused: there would
be nothing to test.
"""

from __future__ import annotations

import configparser
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

SETUP_CFG = Path(__file__).resolve().parent.parent / "setup.cfg"


def floors(setup_cfg: Path = SETUP_CFG) -> list[str]:
    parser = configparser.ConfigParser()
    parser.read(setup_cfg, encoding="utf-8")
    lines = parser["options"]["install_requires"].splitlines()
    pins = []
    for line in filter(None, (line.strip() for line in lines)):
        requirement = Requirement(line)
        lowest = [spec.version for spec in requirement.specifier if spec.operator in (">=", "==")]
        if not lowest:
            raise SystemExit(f"{setup_cfg.name}: {line!r} has no floor (>= or ==) to test")
        extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
        marker = f"; {requirement.marker}" if requirement.marker else ""
        pins.append(f"{requirement.name}{extras}=={max(lowest, key=Version)}{marker}")
    return pins


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    Path(sys.argv[1]).write_text("\n".join(floors()) + "\n", encoding="utf-8")
