"""Message templates with ``{variable}`` placeholders (canned replies, SOP steps)."""

from __future__ import annotations

import re
from typing import Any

# Plain names only (Latin or Chinese): no attribute or index access, unlike str.format.
_VARIABLE = re.compile(r"\{([A-Za-z_\u4e00-\u9fff][\w\u4e00-\u9fff]*)\}")


def render_template(text: str, variables: dict[str, Any], *, unknown: str = "keep") -> str:
    """Replace ``{name}`` with the variable's value. Unknown variables are left visible
    (``unknown="keep"``) or removed (``"empty"``); never raises, whatever the text."""

    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name in variables and variables[name] is not None:
            return str(variables[name])
        return match.group(0) if unknown == "keep" else ""

    return _VARIABLE.sub(replace, text or "")
