"""How counts read in what the commands print: "1 finding", "2 findings".
Imports nothing from syncd.
"""

from __future__ import annotations


def counted(number: int, noun: str, plural: str | None = None) -> str:
    """`number` and `noun`, the noun in the plural unless the number is exactly one."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"
