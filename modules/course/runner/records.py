"""What a lesson run leaves behind: the figures of every step it ran.

- `COURSE_REPORT=<file>` (the tests set it): `{step function name: figures}` as JSON.
- Otherwise `.course-data/runs/<lesson>.json`, the learner's last run of that lesson, which
  `make slides` shows on each deck's "your run" slide:
  {"lesson": ..., "ran_at": ..., "complete": bool, "steps": [{"number", "title", "figures"}]}
"""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from course.settings import DATA


class Record:
    def __init__(self, lesson: str):
        report = os.environ.get("COURSE_REPORT")
        self.report = Path(report) if report else None
        self.path = DATA / "runs" / f"{lesson}.json"
        self.run = {"lesson": lesson, "ran_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "complete": False, "steps": []}
        self.by_name: dict[str, Any] = {}

    def step(self, number: int, name: str, title: str, figures: dict[str, Any]) -> None:
        self.by_name[name] = figures
        self.run["steps"].append({"number": number, "title": title, "figures": figures})
        self._write()

    def complete(self) -> None:
        self.run["complete"] = True
        self._write()

    def _write(self) -> None:
        if self.report:
            self.report.write_text(json.dumps(self.by_name, indent=2, default=str))
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.run, indent=2, default=str))
