"""One small generic registry: name -> factory. Used for datasets, models and methods."""
from __future__ import annotations

import fnmatch
import inspect
import re
from typing import Callable, Generic, Iterator, TypeVar

from .errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects (classes or factory functions).

    >>> models = Registry("model")
    >>> @models.register("mlp")
    ... def mlp(**kw): ...
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            valid = ", ".join(sorted(self._items))
            raise UnknownNameError(f"unknown {self.kind} {name!r}; valid: {valid}") from None

    def summary(self, name: str) -> str:
        """One line about `name`: its object's `summary` attribute, else the first sentence of its
        docstring ('' when it has neither)."""
        obj = self.get(name)
        if getattr(obj, "summary", ""):
            return obj.summary
        text = " ".join((inspect.getdoc(obj) or "").split("\n\n")[0].split())
        return re.split(r"(?<=\.) (?=[A-Z`])", text, maxsplit=1)[0]  # not at "et al. 2023"

    def names(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._items if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
