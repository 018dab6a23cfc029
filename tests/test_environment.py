"""The locked environment (requirements/lock.txt): it parses, and it pins every dependency the package names."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "lock.txt"
# Linux x86-64 with each supported Python: the environments the lock is made for.
ENVIRONMENTS = [
    {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64", "python_version": v,
     "python_full_version": f"{v}.0", "implementation_name": "cpython", "platform_python_implementation": "CPython"}
    for v in ("3.11", "3.12", "3.13")
]  # fmt: skip


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_pins() -> list[Requirement]:
    pins = []
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            pins.append(Requirement(line))
    return pins


def test_every_lock_line_is_an_exact_pin():
    pins = lock_pins()
    assert len(pins) > 50  # the transitive closure, not just the direct dependencies
    for pin in pins:
        (spec,) = pin.specifier
        assert spec.operator == "==" and "*" not in spec.version, str(pin)


def test_the_lock_pins_every_dependency_of_the_package_for_each_supported_python():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    direct = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]
    assert project["requires-python"] == ">=3.11"
    for env in ENVIRONMENTS:
        pinned = {}
        for pin in lock_pins():
            if pin.marker is None or pin.marker.evaluate(env):
                assert canonical(pin.name) not in pinned, (
                    f"{pin.name} pinned twice for Python {env['python_version']}"
                )
                pinned[canonical(pin.name)] = next(iter(pin.specifier)).version
        for requirement in direct:
            if requirement.marker is not None and not requirement.marker.evaluate(env):
                continue
            version = pinned.get(canonical(requirement.name))
            assert version is not None, (
                f"{requirement.name} is not in the lock for Python {env['python_version']}"
            )
            assert requirement.specifier.contains(version, prereleases=True), (requirement, version)


def test_the_lock_says_how_to_refresh_it_and_ci_installs_from_it():
    header = LOCK.read_text().splitlines()[:3]
    assert any("uv pip compile pyproject.toml" in line for line in header)
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    setup = "python -m pip install -r requirements/lock.txt -e ."
    assert setup in ci and setup in readme
    assert ci.rstrip().endswith("python -m pytest") and "```bash\npython -m pytest\n```" in readme
