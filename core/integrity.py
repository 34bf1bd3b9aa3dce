"""One finding of an integrity check: what was checked, on which object, what was expected and what was found.

Every app's checks (the books in reconciliation, the job records in core.jobs) report in this shape, so
`check_integrity` and the scheduled job print and alert on them alike.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    check: str
    object: str
    expected: str
    found: str

    def as_dict(self) -> dict[str, str]:
        return {"check": self.check, "object": self.object, "expected": self.expected, "found": self.found}
