"""The README's configuration table is the user's reference: it must name every variable the
settings read, so a new setting cannot ship undocumented."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from kafka_autotrace.core import settings as settings_module
from kafka_autotrace.core.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_in_the_configuration_table() -> None:
    text = README.read_text(encoding="utf-8")
    table = text[text.index("## Configuration") :].split("\n## ", 1)[0]
    rows = {
        line.split("|")[1].strip().strip("`")
        for line in table.splitlines()
        if line.startswith("| `")
    }
    variables = {
        getattr(settings_module, f"ENV_{field.name.upper()}")
        for field in dataclasses.fields(Settings)
        if field.init
    }
    assert variables <= rows, f"missing from the README table: {sorted(variables - rows)}"
