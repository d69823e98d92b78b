"""IDs become exactly one quoted path segment, or are refused before anything is sent."""

from __future__ import annotations

import pytest

from metafold_jupyter.errors import InvalidIdError, MetafoldError
from metafold_jupyter.paths import api_path, segment


def test_segment_quotes_plain_ids():
    assert segment(3) == "3"
    assert segment(" 42 ") == "42"
    assert segment("a b") == "a%20b"
    assert api_path("/projects/{pid}/assets/{aid}", pid="3", aid=17) == "/projects/3/assets/17"


@pytest.mark.parametrize("bad", ["", "  ", ".", "..", "3#", "1/../../user/license", "a?b", "a\\b", "x\x00y",
                                 "50%2F", "1" * 129, None])
def test_segment_refuses_what_is_not_one_segment(bad):
    with pytest.raises(InvalidIdError) as info:
        api_path("/projects/{pid}", pid=bad)
    assert isinstance(info.value, MetafoldError) and isinstance(info.value, ValueError)
    assert "project ID" in str(info.value)
    assert "\n" not in str(info.value)
