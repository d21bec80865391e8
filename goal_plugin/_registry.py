"""A name -> factory registry, shared by strategies, backbones and datasets.

Factories take their options as keyword arguments with defaults; ``create``
refuses unknown keywords with the closest valid spelling, and the factory's own
validation names any bad value. An optional entry-point group lets third-party
packages register factories; those are loaded on the first lookup, and one that
fails to load is reported (a warning, and the original error if used by name)
without breaking the others.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import re
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from goal_plugin import _validation as check

F = TypeVar("F", bound=Callable[..., Any])
_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")


class Registry:
    def __init__(
        self,
        kind: str,
        entry_point_group: str | None = None,
        option_word: str = "option",
        built_ins: str | None = None,
        common_options: tuple[str, ...] = (),
    ) -> None:
        """``built_ins``: a module registering the built-in factories, imported on
        the first lookup (so that defining the registry imports nothing heavy).
        ``common_options``: options that the caller of :meth:`create` takes for
        every factory (and removes before calling it), listed among the valid
        spellings when an option is unknown."""
        self.kind = kind
        self.option_word = option_word
        self.entry_point_group = entry_point_group
        self.built_ins = built_ins
        self.common_options = common_options
        self._factories: dict[str, Callable[..., Any]] = {}
        self._broken: dict[str, str] = {}
        self._entry_points_loaded = False

    def register(self, name: str, *, override: bool = False) -> Callable[[F], F]:
        """Decorator; a taken name raises ``ValueError`` unless ``override=True``."""
        if not isinstance(name, str) or not _NAME_PATTERN.match(name):
            raise ValueError(
                f"{self.kind} name must be lower-case letters, digits and underscores, got {name!r}"
            )

        def decorator(factory: F) -> F:
            if not callable(factory):
                raise TypeError(f"register({name!r}) must decorate a callable")
            if name in self._factories and not override:
                raise ValueError(
                    f"{self.kind} {name!r} is already registered; pass override=True to replace it"
                )
            self._factories[name] = factory
            return factory

        return decorator

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._factories)

    def get(self, name: str) -> Callable[..., Any]:
        self._load_entry_points()
        if not isinstance(name, str) or name not in self._factories:
            if isinstance(name, str) and name in self._broken:
                raise ValueError(
                    f"{self.kind} plugin {name!r} failed to load: {self._broken[name]}"
                )
            raise ValueError(check.unknown_name_message(self.kind, name, self._factories))
        return self._factories[name]

    def options(self, name: str) -> dict[str, Any]:
        """Options of ``name``'s factory (keyword-only, or with a default) and their defaults."""
        return {
            param.name: param.default
            for param in inspect.signature(self.get(name)).parameters.values()
            if param.kind == param.KEYWORD_ONLY
            or (param.kind == param.POSITIONAL_OR_KEYWORD and param.default is not param.empty)
        }

    def create(self, name: str, *args: Any, **options: Any) -> Any:
        factory = self.get(name)
        accepted = self.options(name)
        known = [*accepted, *self.common_options]
        for key in options:
            if key not in accepted:
                if not known:
                    raise ValueError(
                        f"{self.kind} {name!r} takes no {self.option_word}s, got {key!r}"
                    )
                raise ValueError(
                    check.unknown_name_message(
                        f"{self.option_word} for {self.kind} {name!r}:", key, known
                    )
                )
        return factory(*args, **options)

    def reload_entry_points(self) -> None:
        """Look the entry-point group up again (after installing a plugin at run time)."""
        self._entry_points_loaded = False
        self._broken.clear()
        self._load_entry_points()

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        if self.built_ins is not None:
            registered = dict(self._factories)
            try:
                importlib.import_module(self.built_ins)
            except BaseException:
                # the next lookup imports the module again (and raises again) rather than
                # going on without the built-ins; it registers them again, so drop the half
                self._factories = registered
                raise
        self._entry_points_loaded = True
        if self.entry_point_group is None:
            return
        for entry_point in importlib.metadata.entry_points(group=self.entry_point_group):
            if entry_point.name in self._factories:
                warnings.warn(
                    f"{self.kind} plugin {entry_point.value!r} uses the taken name "
                    f"{entry_point.name!r} and was ignored",
                    stacklevel=4,
                )
                continue
            try:
                self.register(entry_point.name)(entry_point.load())
            except Exception as error:  # a broken plugin must not break the built-ins
                self._broken[entry_point.name] = f"{type(error).__name__}: {error}"
                warnings.warn(
                    f"{self.kind} plugin {entry_point.name!r} ({entry_point.value}) failed to "
                    f"load: {self._broken[entry_point.name]}",
                    stacklevel=4,
                )
