"""What every compat module shares: the tested versions and the error naming a broken internal."""

import importlib.metadata
import inspect

#: the versions this package's internals were read from (setup.cfg pins them).
TESTED = {
    "keras": "3.15",
    "keras-hub": "0.32",
    "tensorflow": "2.20",
    "tf-models-official": "2.20",
}


class CompatError(RuntimeError):
    """An installed library lacks an internal tftransfer relies on, or it behaves otherwise."""


def versions():
    """Installed versions of the libraries in `TESTED` (None if absent)."""
    out = {}
    for name in TESTED:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def incompatible(library, internal, problem):
    """A `CompatError`: `library`'s `internal` `problem`, and what to do about it."""
    return CompatError(
        f"{library} {versions().get(library)}: {internal} {problem}; tftransfer relies on it "
        f"and was tested with {library} {TESTED[library]}.x: install the version setup.cfg pins"
    )


def require(obj, name, library, owner=None):
    """`obj.name`, or a `CompatError` naming `owner.name` (the object's type by default)."""
    if not hasattr(obj, name):
        if owner is None:
            owner = obj.__name__ if isinstance(obj, type) else type(obj).__name__
        raise incompatible(library, f"`{owner}.{name}`", "is missing")
    return getattr(obj, name)


def require_keywords(function, keywords, library, owner):
    """Fails unless `function` takes each of `keywords` by name (`owner` names it)."""
    parameters = inspect.signature(function).parameters
    missing = [k for k in keywords if k not in parameters]
    if missing:
        taken = ", ".join(parameters)
        raise incompatible(
            library, f"`{owner}`", f"takes no `{'`, `'.join(missing)}` (it takes {taken})"
        )
