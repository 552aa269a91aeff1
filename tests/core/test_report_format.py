"""The report reader's bounds: nesting is refused after parsing (and by the decoder's own recursion limit), fast
enough for a fleet's reports."""

from __future__ import annotations

import json

import pytest

from pytest_cudadeps.core.report_format import MAX_NESTING, ReportError, parse_report


@pytest.mark.parametrize("levels", [MAX_NESTING + 1, 100_000])
def test_a_report_nesting_deeper_than_the_limit_is_refused(levels: int) -> None:
    text = '{"version": 1, "environment": ' + "[" * (levels - 1) + "]" * (levels - 1) + "}"
    with pytest.raises(ReportError, match=f"^r.json nests deeper than {MAX_NESTING} levels"):
        parse_report(text, "r.json")


def test_brackets_inside_strings_do_not_count() -> None:
    text = json.dumps({"version": 1, "environment": "[" * 1000 + "{"})
    with pytest.raises(ReportError, match="environment is a string, not an object"):  # the next check, not nesting
        parse_report(text, "r.json")
    exactly = '{"version": 1, "environment": ' + "[" * (MAX_NESTING - 1) + "]" * (MAX_NESTING - 1) + "}"
    with pytest.raises(ReportError, match="environment is a list, not an object"):
        parse_report(exactly, "r.json")
