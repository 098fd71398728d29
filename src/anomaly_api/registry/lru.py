"""A least-recently-used map at C speed: an ``OrderedDict`` that drops its oldest entries
beyond ``maxsize``.

``cachetools.LRUCache`` keeps its order in Python code: a lookup cost ~1 µs, a tenth of a
single predict and a quarter of a bulk point's budget. Here a read that counts as use is
one ``dict`` lookup and one ``move_to_end``, both in C.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

K = TypeVar("K")
V = TypeVar("V")
_get = OrderedDict.get


class LRU(OrderedDict[K, V]):
    """At most ``maxsize`` entries; :meth:`get` and assignment count as use.

    >>> cache = LRU[str, int](2)
    >>> cache["a"], cache["b"] = 1, 2
    >>> cache.get("a")
    1
    >>> cache["c"] = 3  # "b" was used least recently
    >>> list(cache)
    ['a', 'c']
    """

    def __init__(
        self,
        maxsize: int,
        max_bytes: int | None = None,
        weigh: Callable[[V], int] | None = None,
    ) -> None:
        super().__init__()
        self.maxsize = maxsize
        self.max_bytes = max_bytes
        """With ``weigh``: the most bytes the entries may weigh together (the newest entry
        stays even when it alone weighs more)."""
        self._weigh = weigh
        self._weights: dict[K, int] = {}
        self.bytes = 0
        """What the entries weigh together (0 without ``weigh``)."""

    def __setitem__(self, key: K, value: V) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        if self._weigh is not None:
            weight = self._weigh(value)
            self.bytes += weight - self._weights.get(key, 0)
            self._weights[key] = weight
            if self.max_bytes is not None:
                while self.bytes > self.max_bytes and len(self) > 1:
                    self.popitem(last=False)
        while len(self) > self.maxsize:
            self.popitem(last=False)

    # OrderedDict's C methods do not call an overridden __delitem__: each keeps count.
    def popitem(self, last: bool = True) -> tuple[K, V]:
        key, value = super().popitem(last)
        self.bytes -= self._weights.pop(key, 0)
        return key, value

    def pop(self, key: K, *default: Any) -> Any:
        self.bytes -= self._weights.pop(key, 0)
        return super().pop(key, *default)

    def __delitem__(self, key: K) -> None:
        super().__delitem__(key)
        self.bytes -= self._weights.pop(key, 0)

    def clear(self) -> None:
        super().clear()
        self._weights.clear()
        self.bytes = 0

    def get(self, key: K, default: V | None = None) -> V | None:  # type: ignore[override]
        # OrderedDict.get named directly: super() costs as much as the lookup itself.
        value = _get(self, key, default)
        if value is not default:
            self.move_to_end(key)
        return value
