"""What a study concludes, as a notebook asserts it: ``Conclusions``, a dict of the numbers, with the sentences
that state them (``report``), so that a notebook prints the sentences and asserts on the numbers."""

from __future__ import annotations


class Conclusions(dict):
    """The numbers of one set of conclusions (a dict), and ``report``: the sentences that state them."""

    def __init__(self, values: dict, lines: list[str]):
        super().__init__(values)
        self.report = "\n".join(lines)

    def __repr__(self) -> str:
        return self.report
