"""Which Edge Functions there are: Supabase's layout, `supabase/functions/NAME/index.ts`,
with per-function settings from `supabase/config.toml` (`[functions.NAME] verify_jwt`)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from planwise.config import REPO_ROOT, Settings
from planwise.errors import PlanwiseError

NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
"""The names the Supabase CLI accepts for a function (its `FuncSlugPattern`)."""

MAX_NAME_LENGTH = 100
ENTRYPOINT = "index.ts"
DENO_PACKAGE = REPO_ROOT / "clients" / "deno"


class FunctionsError(PlanwiseError):
    """A function that cannot be created or read (bad name, exists, unreadable config)."""


@dataclass(frozen=True)
class EdgeFunction:
    name: str
    directory: Path
    verify_jwt: bool
    version: tuple[int, ...] = ()
    """Modification times of index.ts and deno.json: a change restarts the process."""

    @property
    def entrypoint(self) -> Path:
        return self.directory / ENTRYPOINT

    @property
    def config(self) -> Path | None:
        """The function's own `deno.json` (its import map), as Supabase reads it."""
        path = self.directory / "deno.json"
        return path if path.is_file() else None

    @property
    def lockfile(self) -> Path | None:
        path = self.directory / "deno.lock"
        return path if path.is_file() else None


def functions_dir(settings: Settings) -> Path:
    """FUNCTIONS_DIR, else the repo's `supabase/functions`."""
    return (settings.functions_dir or REPO_ROOT / "supabase" / "functions").resolve()


def deno_bin(settings: Settings) -> Path:
    """DENO_BIN, else the binary `make install` puts in clients/deno (npm's `deno`)."""
    return settings.deno_bin or DENO_PACKAGE / "node_modules" / ".bin" / "deno"


def deno_dir(settings: Settings) -> Path:
    """DENO_DIR, Deno's cache (npm packages of the functions), filled by `make install`."""
    return (settings.deno_dir or DENO_PACKAGE / "cache").resolve()


def _version(directory: Path) -> tuple[int, ...]:
    times = []
    for name in (ENTRYPOINT, "deno.json", "deno.lock"):
        try:
            times.append((directory / name).stat().st_mtime_ns)
        except FileNotFoundError:
            times.append(0)
    return tuple(times)


def valid_name(name: str) -> bool:
    return len(name) <= MAX_NAME_LENGTH and NAME_PATTERN.fullmatch(name) is not None


def _config_toml(root: Path) -> dict[str, object]:
    """`supabase/config.toml` beside the functions folder, or nothing."""
    path = root.parent / "config.toml"
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise FunctionsError(f"{path}: {error}") from None


def _verify_jwt(config: dict[str, object], name: str) -> bool:
    """On unless `[functions.NAME] verify_jwt = false`, as on Supabase."""
    functions = config.get("functions")
    section = functions.get(name) if isinstance(functions, dict) else None
    value = section.get("verify_jwt", True) if isinstance(section, dict) else True
    return value is not False


def find_function(settings: Settings, name: str) -> EdgeFunction | None:
    """The function called `name`, or None when there is no such folder with an index.ts."""
    if not valid_name(name):
        return None
    root = functions_dir(settings)
    directory = root / name
    if not (directory / ENTRYPOINT).is_file():
        return None
    config = _config_toml(root)
    return EdgeFunction(name, directory, _verify_jwt(config, name), _version(directory))


def list_functions(settings: Settings) -> list[EdgeFunction]:
    root = functions_dir(settings)
    if not root.is_dir():
        return []
    config = _config_toml(root)
    return [
        EdgeFunction(path.name, path, _verify_jwt(config, path.name))
        for path in sorted(root.iterdir())
        if valid_name(path.name) and (path / ENTRYPOINT).is_file()
    ]


TEMPLATE = """\
// `{name}`: an Edge Function, served locally at /functions/v1/{name} by `planwise serve`
// and deployed to a Supabase project, unchanged, by `supabase functions deploy {name}`.

Deno.serve(async (req: Request) => {{
  const {{ name }} = await req.json().catch(() => ({{ name: "world" }}));
  return new Response(JSON.stringify({{ message: `Hello ${{name}}!` }}), {{
    headers: {{ "Content-Type": "application/json" }},
  }});
}});
"""

DENO_JSON = '{\n  "imports": {}\n}\n'


def new_function(settings: Settings, name: str) -> EdgeFunction:
    """Create `NAME/index.ts` (and an empty `deno.json` import map), as `supabase functions
    new` does; refuses a bad or taken name."""
    if not valid_name(name):
        raise FunctionsError(
            f"invalid function name {name!r}: a letter, then letters, digits, '_' or '-'"
        )
    directory = functions_dir(settings) / name
    if directory.exists():
        raise FunctionsError(f"function {name!r} already exists: {directory}")
    directory.mkdir(parents=True)
    (directory / ENTRYPOINT).write_text(TEMPLATE.format(name=name), encoding="utf-8")
    (directory / "deno.json").write_text(DENO_JSON, encoding="utf-8")
    found = find_function(settings, name)
    assert found is not None
    return found
