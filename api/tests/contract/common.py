"""What the supabase-py contracts share: the environment, the run's unique names, the
places the service_role inserts, and the step report (`ok <step>` / `FAIL <step>: …`)."""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

# Two places the service_role inserts: the first user prefers museums, the second parks,
# so recommend_places must answer each with their own place (the rpc runs as the caller).
HERE = (48.8606, 2.3376)  # the Louvre
CATEGORIES = ("museum", "park")
RADIUS_KM = 5.0
DELIVERY_TIMEOUT_S = 10.0  # a realtime change must reach its subscriber within this
SILENCE_S = 2.0  # and nothing may reach the other user in this long after it did
PASSWORD = "Contract-pass-1234"
TEXT = "Planwise contract: a file only its owner reads.\n"


class ContractError(Exception):
    """A step's expectation did not hold."""


def expect(condition: object, message: str) -> None:
    if not condition:
        raise ContractError(message)


def rows(data: Any) -> list[dict[str, Any]]:
    """A PostgREST response's rows (a list of objects)."""
    expect(isinstance(data, list), f"expected a list of rows, got {data!r}")
    return [dict(row) for row in data]


@dataclass(frozen=True)
class Environment:
    url: str
    anon_key: str
    service_role_key: str
    email_domain: str

    @classmethod
    def from_os(cls) -> Environment:
        missing = [
            name
            for name in ("SUPABASE_URL", "SUPABASE_ANON_KEY", "SUPABASE_SERVICE_ROLE_KEY")
            if not os.environ.get(name)
        ]
        if missing:
            print(f"FAIL environment: {', '.join(missing)} not set", flush=True)
            sys.exit(2)
        return cls(
            url=os.environ["SUPABASE_URL"].rstrip("/"),
            anon_key=os.environ["SUPABASE_ANON_KEY"],
            service_role_key=os.environ["SUPABASE_SERVICE_ROLE_KEY"],
            email_domain=os.environ.get("CONTRACT_EMAIL_DOMAIN", "example.com"),
        )


@dataclass(frozen=True)
class Run:
    """This run's unique names, so runs never meet (also on a shared Supabase project)."""

    client: str
    email_domain: str
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:10])

    def email(self, who: str) -> str:
        return f"contract-{self.client}-{self.tag}-{who}@{self.email_domain}"

    def username(self, who: str) -> str:
        return f"c_{self.client}_{self.tag}_{who}"

    @property
    def place_ids(self) -> tuple[str, str]:
        return (f"contract-{self.tag}-museum", f"contract-{self.tag}-park")

    @property
    def bucket(self) -> str:
        return f"contract-{self.tag}"

    def places(self) -> list[dict[str, Any]]:
        lat, lng = HERE
        return [
            {
                "id": place_id,
                "name": f"Contract {category} {self.tag}",
                "lat": lat + 0.001 * index,
                "lng": lng + 0.001 * index,
                "category": category,
                "types": f"{category},point_of_interest",
                "rating": 4.5,
                "user_ratings_total": 100,
            }
            for index, (place_id, category) in enumerate(
                zip(self.place_ids, CATEGORIES, strict=True)
            )
        ]


def one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or repr(error)
    return f"{type(error).__name__}: {text}"[:400]


class Report:
    """Runs steps in order; a step whose prerequisite failed fails without running."""

    def __init__(self, client: str) -> None:
        self.client = client
        self.passed: list[str] = []
        self.failed: list[str] = []
        self.started = time.monotonic()

    def _blocked(self, name: str, needs: Iterable[str]) -> bool:
        missing = [need for need in needs if need not in self.passed]
        if missing:
            self._fail(name, f"not run: needs {', '.join(missing)}")
        return bool(missing)

    def _ok(self, name: str) -> None:
        self.passed.append(name)
        print(f"ok {name}", flush=True)

    def _fail(self, name: str, reason: str) -> None:
        self.failed.append(name)
        print(f"FAIL {name}: {reason}", flush=True)

    def run(self, name: str, step: Callable[[], object], needs: Iterable[str] = ()) -> None:
        if self._blocked(name, needs):
            return
        try:
            step()
        except Exception as error:  # every failure is reported, the run goes on
            self._fail(name, one_line(error))
        else:
            self._ok(name)

    async def arun(
        self, name: str, step: Callable[[], Awaitable[object]], needs: Iterable[str] = ()
    ) -> None:
        if self._blocked(name, needs):
            return
        try:
            await step()
        except Exception as error:  # every failure is reported, the run goes on
            self._fail(name, one_line(error))
        else:
            self._ok(name)

    def note(self, text: str) -> None:
        print(f"-- {text}", flush=True)

    def finish(self) -> int:
        self.note(f"{self.client}: {time.monotonic() - self.started:.1f} s")
        print(f"{len(self.passed)} passed, {len(self.failed)} failed", flush=True)
        return 1 if self.failed else 0
