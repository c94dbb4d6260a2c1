"""The Edge Functions contract with supabase-py (`client.functions.invoke`): the shipped
`trip-digest` function, as a signed-in user, on the local stack or a Supabase project.

    SUPABASE_URL=… SUPABASE_ANON_KEY=… SUPABASE_SERVICE_ROLE_KEY=… \\
        ../.venv/bin/python -m tests.contract.functions_contract    # from api/

The service_role inserts a museum and a park about 1.7 km apart; a fresh user who prefers
both asks for a two-stop digest (a stop by each, radius 2 km, so both places are near both
stops) and must get the museum at the first stop only and the park at the second only;
the anon key alone is refused by the function. Prints `ok <step>` or `FAIL <step>:
<reason>`, then `N passed, M failed`; exits 1 on any failure.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from supabase import Client, ClientOptions, create_client
from supabase_functions.errors import FunctionsHttpError

from tests.contract.common import PASSWORD, Environment, Report, Run, expect, rows

FUNCTION = "trip-digest"


def new_client(env: Environment, key: str) -> Client:
    options = ClientOptions(auto_refresh_token=False, persist_session=False)
    return create_client(env.url, key, options=options)


def stops(places: list[dict[str, Any]]) -> list[dict[str, float]]:
    """One stop a few metres from each place: each place is best at its own stop."""
    return [{"lat": place["lat"] + 0.0001, "lng": place["lng"]} for place in places]


def functions_places(run: Run) -> list[dict[str, Any]]:
    places = run.places()
    places[1] |= {"lat": places[0]["lat"] + 0.015}  # the park ~1.7 km north of the museum
    return places


def contract(env: Environment) -> int:
    report = Report("supabase-py functions")
    run = Run("pyfn", env.email_domain)
    service = new_client(env, env.service_role_key)
    anon = new_client(env, env.anon_key)
    user = new_client(env, env.anon_key)
    places = functions_places(run)
    auth_id = ""
    timings: list[float] = []

    def insert_places() -> None:
        inserted = rows(service.table("place").insert(places).execute().data)
        expect(len(inserted) == 2, f"got {inserted}")

    def sign_up() -> None:
        nonlocal auth_id
        answer = user.auth.sign_up({"email": run.email("a"), "password": PASSWORD})
        expect(answer.session is not None and answer.user is not None, "no session")
        assert answer.user is not None
        auth_id = answer.user.id
        for category in ("museum", "park"):
            user.table("preference").insert({"category": category, "rating": 0.9}).execute()

    def digest() -> None:
        for _ in range(3):  # the first call may start the function; the others are warm
            started = time.monotonic()
            answer = user.functions.invoke(
                FUNCTION, {"body": {"stops": stops(places), "radius_km": 2}, "responseType": "json"}
            )
            timings.append(time.monotonic() - started)
        expect(isinstance(answer, dict) and len(answer.get("stops", [])) == 2, f"got {answer}")
        ids = [[place["id"] for place in stop["places"]] for stop in answer["stops"]]
        mine = [[i for i in stop if i in run.place_ids] for stop in ids]
        expect(mine == [[run.place_ids[0]], [run.place_ids[1]]], f"per stop: {ids}")
        first = answer["stops"][0]["places"][0]
        expect(first["category"] == "museum" and first["score"] > 0, f"got {first}")

    def anon_refused() -> None:
        try:
            anon.functions.invoke(FUNCTION, {"body": {"stops": stops(places)}})
        except FunctionsHttpError as error:
            expect(error.status == 401, f"status {error.status}: {error}")
        else:
            raise AssertionError("the anon key got a digest")

    def bad_body() -> None:
        try:
            user.functions.invoke(FUNCTION, {"body": {"stops": [{"lat": 91, "lng": 0}]}})
        except FunctionsHttpError as error:
            expect(error.status == 400, f"status {error.status}: {error}")
        else:
            raise AssertionError("a latitude of 91 was accepted")

    def clean_up() -> None:
        service.auth.admin.delete_user(auth_id)
        service.table("place").delete().in_("id", run.place_ids).execute()

    report.run("service_role: insert places", insert_places)
    report.run("auth: sign up, preferences", sign_up)
    needs = ["service_role: insert places", "auth: sign up, preferences"]
    report.run(f"functions: invoke {FUNCTION}", digest, needs)
    report.run(f"functions: {FUNCTION} refuses the anon key", anon_refused)
    report.run(f"functions: {FUNCTION} refuses a bad body", bad_body, needs)
    report.run("service_role: clean up", clean_up, needs)
    if timings:
        report.note(
            "invoke: first " + f"{timings[0] * 1000:.0f} ms, then "
            + ", ".join(f"{t * 1000:.1f}" for t in timings[1:]) + " ms"
        )  # fmt: skip
    return report.finish()


def main() -> None:
    sys.exit(contract(Environment.from_os()))


if __name__ == "__main__":
    main()
