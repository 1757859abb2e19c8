"""Writing the demo's `.env` in place, and how counts read in command output."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from dotenv import dotenv_values

from syncd import envfile
from syncd.cli import describe_sync
from syncd.wording import counted


def test_update_keeps_other_lines_and_sets_each_variable_once(tmp_path: Path) -> None:
    """Variables already there keep their place and take the new value, a repeated one
    becomes one line, other lines stay, new ones come under the header; owner-only file."""
    path = tmp_path / ".env"
    path.write_text("# mine\nA=1\nexport B=old\nKEEP=me\nB=older\n")
    envfile.update(path, {"B": "new", "C": "three words"}, header="added")
    assert path.read_text() == "# mine\nA=1\nB=new\nKEEP=me\n\n# added\nC='three words'\n"
    assert dotenv_values(path) == {"A": "1", "B": "new", "KEEP": "me", "C": "three words"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_update_twice_changes_nothing_more(tmp_path: Path) -> None:
    """Running the demo again rewrites the same lines: no duplicate, no second header."""
    path = tmp_path / ".env"
    values = {"URL": "sqlite+aiosqlite:////x/y.db", "KEY": "abc-_=="}
    envfile.update(path, values, header="demo")
    once = path.read_text()
    envfile.update(path, values, header="demo")
    assert path.read_text() == once
    assert dotenv_values(path) == values


def test_a_value_with_a_single_quote_is_refused(tmp_path: Path) -> None:
    """It could not be written so that both python-dotenv and a shell read it back."""
    with pytest.raises(ValueError, match="single quote"):
        envfile.update(tmp_path / ".env", {"A": "it's"}, header="x")
    assert not (tmp_path / ".env").exists()


@pytest.mark.parametrize(
    ("number", "expected"),
    [(0, "0 findings"), (1, "1 finding"), (2, "2 findings"), (-1, "-1 findings")],
)
def test_counted_uses_the_singular_for_exactly_one(number: int, expected: str) -> None:
    """ "1 finding", never "1 findings"."""
    assert counted(number, "finding") == expected


def test_counted_takes_an_irregular_plural() -> None:
    """Nouns whose plural is not noun + s."""
    assert counted(2, "entry", "entries") == "2 entries"
    assert counted(1, "entry", "entries") == "1 entry"


@pytest.mark.parametrize(
    ("result", "sentence"),
    [
        (
            {"created": {"job_id": "j1", "job_number": "J000004"}},
            "created job J000004 in Xero and wrote it back to the CRM",
        ),
        ({"created": {"skipped": "the job exists"}}, "nothing to do: the job exists"),
        ({"skipped": "the request is pending: no job needed"}, "nothing to do: the request"),
        ({"in_sync": True, "job_id": "j1", "state": "Planned"}, "already in sync: job j1"),
        ({"job_id": "j1", "state": "CLOSED"}, "set job j1 to CLOSED in Xero"),
    ],
)
def test_a_manual_syncs_result_reads_as_a_sentence(
    result: dict[str, object], sentence: str
) -> None:
    """`syncd sync-job` says what happened, not a Python dict."""
    assert describe_sync(result).startswith(sentence)
