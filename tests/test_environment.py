"""environment.yml (conda) and pyproject.toml (pip) describe the same tested set of packages.

PyYAML comes with nbgrader and packaging with pytest, both pinned dependencies, so these tests add none.
"""
import importlib.metadata
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
ENVIRONMENT = yaml.safe_load((ROOT / "environment.yml").read_text())


def pins(requirements):
    """{canonical name: version} for requirements that must each be an exact `name==version` pin."""
    found = {}
    for line in requirements:
        req = Requirement(line)
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", f"{line!r} is not an exact pin name==version"
        name = canonicalize_name(req.name)
        assert name not in found, f"{req.name} is listed twice"
        found[name] = specs[0].version
    return found


def conda_dependencies():
    deps = ENVIRONMENT["dependencies"]
    conda = [d for d in deps if isinstance(d, str)]
    pip_sections = [d["pip"] for d in deps if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, "environment.yml needs exactly one pip section"
    return conda, pip_sections[0]


def test_environment_is_the_course_environment_with_python_311_and_pip():
    assert ENVIRONMENT["name"] == "linattn-course"
    conda, _ = conda_dependencies()
    assert sorted(conda) == ["pip", "python=3.11"], f"conda packages besides python 3.11 and pip: {conda}"
    assert SpecifierSet(PYPROJECT["project"]["requires-python"]).contains("3.11.0")


def test_pip_section_is_exactly_the_pyproject_pins_plus_the_course_itself():
    _, pip = conda_dependencies()
    assert pip.count("-e .") == 1, "the pip section must install the course itself with `-e .`"
    packages = [line for line in pip if line != "-e ."]
    env_pins, project_pins = pins(packages), pins(PYPROJECT["project"]["dependencies"])
    missing = {n: v for n, v in project_pins.items() if n not in env_pins}
    extra = {n: v for n, v in env_pins.items() if n not in project_pins}
    differ = {n: (project_pins[n], env_pins[n]) for n in project_pins.keys() & env_pins.keys()
              if project_pins[n] != env_pins[n]}
    assert not missing, f"in pyproject.toml but not environment.yml: {missing}"
    assert not extra, f"in environment.yml but not pyproject.toml: {extra}"
    assert not differ, f"versions differ (pyproject.toml, environment.yml): {differ}"


def test_pins_parse_reject_loose_and_duplicate_requirements():
    assert pins(["Torch==2.13.0", "tqdm==4.70.1"]) == {"torch": "2.13.0", "tqdm": "4.70.1"}
    with pytest.raises(AssertionError, match="is not an exact pin"):
        pins(["numpy>=2"])
    with pytest.raises(AssertionError, match="listed twice"):
        pins(["numpy==2.4.6", "NumPy==2.4.6"])


@pytest.mark.parametrize("requirement", PYPROJECT["project"]["dependencies"])
def test_installed_version_is_the_pinned_one(requirement):
    """The environment running the tests is the tested set (a local build tag such as +cpu is allowed)."""
    req = Requirement(requirement)
    installed = importlib.metadata.version(req.name)
    assert req.specifier.contains(installed, prereleases=True), f"{req.name} {installed} installed, pinned {req}"
