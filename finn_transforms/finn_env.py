"""Make FINN+ 1.6.1 importable and usable in-process without Vivado.

FINN+ is built to be started through its ``finn`` CLI (``run_finn.py``) on a machine with Vivado.
Its analytic estimate-only flow needs neither, but a few global-state assumptions get in the way
(docs/design.md, "Upstream workarounds"). Every workaround lives here, each next to the upstream behaviour it works
around, and each is undone on exit from its context manager:

- :func:`finn_session`: ``FINN_SETTINGS`` pointing at a settings file, an existing absolute
  ``FINN_BUILD_DIR``, ``finn.util.settings.initialize_dummy_settings()``, a dummy ``XILINX_VIVADO``.
- :func:`import_builder`: ``finn.xsi.SimEngine`` stubbed while ``finn.builder`` is imported.
- :func:`builder_io`: ``sys.stdout``/``sys.stderr``, root logging handlers, warning capture and the
  FINN rich console restored after ``build_dataflow_cfg`` returns (or raises).

Python execution of generic HW ops (:mod:`finn_transforms.hw_exec`) needs none of this.

FINN+ itself is an optional dependency: :func:`require_finn` raises :class:`FinnNotAvailableError`
(an ``ImportError``) with install instructions when it, or an undeclared dependency, is missing.
Global state is process-wide, so builds in threads of one process are serialised by
:data:`FINN_LOCK`; run parallel builds in separate processes.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import os
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace

__all__ = [
    "DUMMY_VIVADO_PATH",
    "FINN_INSTALL_HINT",
    "FINN_LOCK",
    "FinnNotAvailableError",
    "builder_io",
    "finn_available",
    "finn_session",
    "import_builder",
    "require_finn",
]

#: The FINN+ release this project is written against (docs/design.md, "Upstream workarounds").
FINN_PLUS_VERSION = "1.6.1"

FINN_INSTALL_HINT = (
    f"FINN+ is installed separately and without its dependency pins (it pins brevitas==0.13.0, "
    f"which forces torch<=2.12): `pip install --no-deps finn-plus=={FINN_PLUS_VERSION}`, plus its "
    f"runtime dependencies, listed as this project's `finn` extra in pyproject.toml "
    f"(`pip install -e '.[finn]'`; it includes psutil, which the FINN builder imports but does "
    f"not declare). `make setup` does both."
)

#: Where ``XILINX_VIVADO`` points when it is unset. It only has to parse as a Vivado version.
DUMMY_VIVADO_PATH = "/nonexistent/Vivado/2024.2"

#: Serialises everything that touches FINN's process-global state (env vars, settings, stdout).
FINN_LOCK = threading.RLock()

# Env vars FINN reads, or writes in FINNSettings.update_environment(); restored by finn_session().
_FINN_ENV_KEYS = (
    "FINN_SETTINGS",
    "FINN_BUILD_DIR",
    "FINN_DEPS",
    "FINN_DEPS_DEFINITIONS",
    "NUM_DEFAULT_WORKERS",
    "XILINX_VIVADO",
)


class FinnNotAvailableError(ImportError):
    """FINN+ (or one of the packages it imports) is not installed."""


def require_finn() -> ModuleType:
    """Import and return the ``finn`` package, or raise :class:`FinnNotAvailableError`.

    Also checks ``psutil``: FINN+ 1.6.1's builder imports it without declaring it.
    """
    try:
        finn = importlib.import_module("finn")
    except ImportError as exc:
        raise FinnNotAvailableError(
            f"FINN+ is not importable ({type(exc).__name__}: {exc}). {FINN_INSTALL_HINT}"
        ) from exc
    try:
        importlib.import_module("psutil")
    except ImportError as exc:
        raise FinnNotAvailableError(
            f"psutil is missing: FINN+ {FINN_PLUS_VERSION}'s builder imports it but does not "
            f"declare it ({exc}). {FINN_INSTALL_HINT}"
        ) from exc
    return finn


def finn_available() -> bool:
    """True if :func:`require_finn` succeeds."""
    try:
        require_finn()
    except FinnNotAvailableError:
        return False
    return True


def _vivado_is_real() -> bool:
    root = os.environ.get("XILINX_VIVADO")
    return bool(root) and Path(root).is_dir()


@contextlib.contextmanager
def finn_session(build_dir: str | os.PathLike | None = None) -> Iterator[Path]:
    """Set up FINN+'s global settings for in-process use; undo everything on exit.

    ``build_dir`` becomes ``FINN_BUILD_DIR`` (FINN's scratch space for generated code). ``None``
    keeps an already exported ``FINN_BUILD_DIR``, else uses a temporary directory that is deleted
    on exit. Yields the absolute build dir. On exit the env vars FINN reads or writes
    (``FINN_SETTINGS``, ``FINN_BUILD_DIR``, ``FINN_DEPS``, ``FINN_DEPS_DEFINITIONS``,
    ``NUM_DEFAULT_WORKERS``, ``XILINX_VIVADO``) and FINN's global settings object are restored.
    Holds :data:`FINN_LOCK` for its duration. Inside it FINN's builder imports without Vivado, so a
    user's own ``build_dataflow_cfg`` build runs there; the I/O changes that build makes to
    ``sys.stdout``/``sys.stderr`` and logging are undone on exit (:func:`builder_io`).
    """
    require_finn()
    import finn.util.settings as finn_settings
    import yaml  # a FINN+ dependency

    with FINN_LOCK, contextlib.ExitStack() as stack:
        saved_env = {key: os.environ.get(key) for key in _FINN_ENV_KEYS}
        saved_settings = finn_settings._SETTINGS

        def restore() -> None:
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            finn_settings._SETTINGS = saved_settings

        stack.callback(restore)

        if build_dir is None and os.environ.get("FINN_BUILD_DIR"):
            build_dir = os.environ["FINN_BUILD_DIR"]
        if build_dir is None:
            build_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="finn_build_"))
        build_path = Path(build_dir).expanduser().resolve()
        # Upstream: FINNSettings resolves a relative FINN_BUILD_DIR (default "FINN_TMP") against
        # the flow config's directory, which initialize_dummy_settings() sets to "dummy.yaml" in
        # the current working directory; code generation then expects the directory to exist.
        build_path.mkdir(parents=True, exist_ok=True)
        os.environ["FINN_BUILD_DIR"] = str(build_path)

        # Upstream: without FINN_SETTINGS, FINNSettings.resolve_settings_file() creates ~/.finn/
        # (a side effect in the user's home directory) and reads settings from there.
        settings_file = os.environ.get("FINN_SETTINGS")
        if not settings_file or not Path(settings_file).is_file():
            settings_path = build_path / "finn_settings.yaml"
            settings_path.write_text(
                yaml.safe_dump(
                    {"finn_build_dir": str(build_path), "automatic_dependency_updates": False}
                )
            )
            os.environ["FINN_SETTINGS"] = str(settings_path)

        # Upstream: finn.builder.build_dataflow.exit_buildflow() calls get_vivado_root(), which
        # raises unless XILINX_VIVADO is set (the final metadata_builder.json records its basename),
        # and finn.xsi parses a Vivado version out of it. Only the estimate flow runs here, so a
        # path that parses as "Vivado 2024.2" is enough. A real installation is left alone.
        if not os.environ.get("XILINX_VIVADO"):
            os.environ["XILINX_VIVADO"] = DUMMY_VIVADO_PATH

        # Upstream: FINN+ keeps its settings in a global that only run_finn.py (the CLI) fills;
        # get_settings() raises FINNUserError otherwise, already while finn.builder is imported.
        # This also exports FINN_DEPS, FINN_DEPS_DEFINITIONS and NUM_DEFAULT_WORKERS (restored).
        finn_settings.initialize_dummy_settings()
        # A user's own `import finn.builder.build_dataflow` inside the session works (see _builder_importable),
        # and what build_dataflow_cfg does to sys.stdout/stderr and logging is undone on exit (builder_io).
        stack.enter_context(_builder_importable())
        stack.enter_context(builder_io(quiet=False))
        yield build_path


@contextlib.contextmanager
def _builder_importable() -> Iterator[None]:
    """Let ``finn.builder`` be imported without Vivado for the duration of the block.

    Upstream: build_dataflow_steps does `from finn.xsi import SimEngine` at import time, only for a
    type hint. finn.xsi resolves that name lazily by checking for (and trying to compile) its
    Vivado-XSI simulation extension, which fails without Vivado. A stand-in class satisfies the
    import; it is removed again afterwards so finn.xsi keeps its lazy behaviour for real users.
    """
    import finn.xsi

    stubbed = not _vivado_is_real() and "SimEngine" not in vars(finn.xsi)
    if stubbed:
        finn.xsi.SimEngine = object
    try:
        yield
    finally:
        if stubbed and vars(finn.xsi).get("SimEngine") is object:
            del finn.xsi.SimEngine


def import_builder() -> SimpleNamespace:
    """Import the FINN+ builder modules.

    Returns ``SimpleNamespace(build_dataflow=..., config=..., steps=...)``, the modules
    ``finn.builder.build_dataflow``, ``.build_dataflow_config`` and ``.build_dataflow_steps``.

    Call inside :func:`finn_session` (the builder needs settings while it is imported).
    """
    require_finn()
    import finn.util.settings as finn_settings

    if finn_settings._SETTINGS is None:
        raise RuntimeError("import the FINN builder inside finn_session(): it needs FINN settings")
    with _builder_importable():
        import finn.builder.build_dataflow as build_dataflow
        import finn.builder.build_dataflow_config as config
        import finn.builder.build_dataflow_steps as steps
    return SimpleNamespace(build_dataflow=build_dataflow, config=config, steps=steps)


@contextlib.contextmanager
def builder_io(quiet: bool = True) -> Iterator[io.StringIO | None]:
    """Contain the global I/O changes ``build_dataflow_cfg`` makes, and optionally silence it.

    Upstream, ``finn.builder.build_dataflow.setup_logging()``:
    - replaces ``sys.stdout``/``sys.stderr`` with ``PrintLogger`` objects and never puts them back
      after a successful build;
    - calls ``logging.basicConfig(force=True)``, which removes *and closes* every root handler
      (e.g. pytest's capture handlers) and installs a file handler for ``build_dataflow.log``;
    - calls ``logging.captureWarnings(True)`` and replaces FINN's global rich console.

    All of these are restored on exit (FINN's handlers are closed so the log file is flushed). With
    ``quiet=True`` the console copy of FINN's output goes to the yielded ``StringIO`` instead of
    the terminal; ``build_dataflow.log`` in the output dir still receives everything.
    """
    import finn.util.logging as finn_logging

    root = logging.getLogger()
    saved_stdout, saved_stderr = sys.stdout, sys.stderr
    saved_handlers, saved_level = list(root.handlers), root.level
    saved_showwarning = warnings.showwarning
    saved_console = finn_logging.get_console()
    sink = io.StringIO() if quiet else None
    # Detach the caller's handlers so basicConfig(force=True) cannot close them.
    for handler in saved_handlers:
        root.removeHandler(handler)
    try:
        if sink is not None:
            sys.stdout = sys.stderr = sink
        yield sink
    finally:
        sys.stdout, sys.stderr = saved_stdout, saved_stderr
        for handler in list(root.handlers):
            root.removeHandler(handler)
            with contextlib.suppress(Exception):
                handler.close()
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)
        if warnings.showwarning is not saved_showwarning:
            logging.captureWarnings(False)
            warnings.showwarning = saved_showwarning
        finn_logging.set_console(saved_console)
