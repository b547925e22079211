"""The GitHub workflows and the pre-commit configuration: valid YAML, and the workflows run only
the README's two commands (the build also in its strict form). They cannot run here; these tests
check what can be checked without GitHub."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from conftest import REPO

WORKFLOWS = REPO / ".github" / "workflows"
STRICT_FLAGS = "-W -n --keep-going"


def readme_commands() -> dict[str, str]:
    """The README's build and test commands, read from its fenced shell blocks."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```(?:bash|sh|console)?\n(.*?)^```", readme, flags=re.M | re.S)
    commands = [line.strip() for block in blocks for line in block.splitlines() if line.strip()]
    found = {}
    for cmd in commands:
        if cmd.endswith("jupyter-book build book/"):
            found["build"] = cmd
        elif cmd.endswith("pytest"):
            found["test"] = cmd
    assert set(found) == {"build", "test"}, f"the README's build and test commands not found in {commands}"
    return found


def load_workflow(name: str) -> dict:
    path = WORKFLOWS / name
    assert path.exists(), f"{path} is missing"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and "jobs" in data, f"{name} is not a workflow"
    # PyYAML reads the key `on` as the boolean True.
    data["on"] = data.pop(True, data.get("on"))
    return data


def steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def run_commands(workflow: dict) -> list[str]:
    return [" ".join(step["run"].split()) for step in steps(workflow) if "run" in step]


def uses(workflow: dict) -> list[str]:
    return [step["uses"].split("@")[0] for step in steps(workflow) if "uses" in step]


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.y*ml")), ids=lambda p: p.name)
def test_every_workflow_runs_only_the_readmes_commands(path):
    wf = load_workflow(path.name)
    allowed = set(readme_commands().values()) | {f"{readme_commands()['build']} {STRICT_FLAGS}"}
    for cmd in run_commands(wf):
        assert cmd in allowed, (
            f"{path.name} runs {cmd!r}, which is not one of the README's commands {allowed}"
        )
    for job, spec in wf["jobs"].items():
        assert spec.get("runs-on"), f"{path.name}: job {job} has no runs-on"


def test_pull_requests_run_the_tests_and_the_strict_build():
    wf = load_workflow("pull-request.yml")
    assert "pull_request" in wf["on"]
    commands = run_commands(wf)
    readme = readme_commands()
    assert readme["test"] in commands, commands
    assert f"{readme['build']} {STRICT_FLAGS}" in commands, commands


def test_publishing_builds_and_deploys_to_pages_with_a_cache():
    wf = load_workflow("publish.yml")
    assert wf["on"]["push"]["branches"] == ["main"]
    assert run_commands(wf) == [readme_commands()["build"]]
    assert {"actions/upload-pages-artifact", "actions/deploy-pages", "actions/cache"} <= set(uses(wf))
    upload = next(s for s in steps(wf) if s.get("uses", "").startswith("actions/upload-pages-artifact"))
    assert upload["with"]["path"] == "_build/html"
    perms = wf["permissions"]
    assert perms.get("pages") == "write" and perms.get("id-token") == "write"

    cache = next(s for s in steps(wf) if s.get("uses", "").startswith("actions/cache"))
    assert "_build/.jupyter_cache" in cache["with"]["path"].split(), cache["with"]["path"]
    key = cache["with"]["key"]
    assert "hashFiles('toy_lib/**'" in key and "hashFiles('book/**')" in key, key
    # A cache restored across a change to toy_lib would keep stale figures (jupyter-cache only
    # notices changes to a chapter's own code), so every restore key must include toy_lib's hash.
    for restore in cache["with"].get("restore-keys", "").splitlines():
        assert "hashFiles('toy_lib/**'" in restore, f"restore key {restore!r} ignores toy_lib"


def test_pre_commit_runs_ruff_the_colab_generator_and_trailing_whitespace():
    path = REPO / ".pre-commit-config.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    hooks = [hook for repo in config["repos"] for hook in repo["hooks"]]
    entries = {hook["id"]: hook.get("entry", "") for hook in hooks}
    assert "ruff check" in entries.get("ruff-check", ""), entries
    assert "ruff format --check" in entries.get("ruff-format", ""), entries
    assert "jupytext" not in path.read_text(encoding="utf-8"), "the chapters are no longer paired by jupytext"
    sync_hook = next(h for h in hooks if h["id"] == "colab-notebooks")
    assert sync_hook["entry"] == "python scripts/sync_notebooks.py --hook", sync_hook
    assert "trailing-whitespace" in entries, entries
    sync = sync_hook
    assert re.search(sync["files"], "book/toy_models.md") and re.search(
        sync["files"], "book/toy_models.ipynb"
    )
    assert all(re.search(sync["files"], f) for f in ("book/references.bib", "_config.yml", "_toc.yml"))
    assert not re.search(sync["files"], "book/_templates/chapter_template.md")
    ws = next(h for h in hooks if h["id"] == "trailing-whitespace")
    assert re.search(ws["entry"], "text  \n".rstrip("\n")) and not re.search(ws["entry"], "text")


def test_ci_tools_match_the_pins():
    """The hooks call the ruff that requirements.txt pins (jupytext: the template test reads MyST)."""
    pins = dict(
        line.split("==", 1) for line in (REPO / "requirements.txt").read_text().splitlines() if "==" in line
    )
    assert "ruff" in pins and "jupytext" in pins and "pyyaml" in {k.lower() for k in pins}


def test_workflow_files_are_named_as_documented():
    names = {p.name for p in WORKFLOWS.glob("*.y*ml")}
    assert names == {"pull-request.yml", "publish.yml"}, names
    assert Path(REPO / "CONTRIBUTING.md").read_text(encoding="utf-8").count("publish.yml") >= 1
