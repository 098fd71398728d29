"""A least-recently-used map at C speed: an ``OrderedDict`` that drops its oldest entries
beyond ``maxsize``.

``cachetools.LRUCache`` keeps its order in Python code: a lookup cost ~1 µs, a tenth of a
single predict and a quarter of a bulk point's budget. Here a read that counts as use is
one ``dict`` lookup and one ``move_to_end``, both in C.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TypeVar

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

    def __init__(self, maxsize: int) -> None:
        super().__init__()
        self.maxsize = maxsize

    def __setitem__(self, key: K, value: V) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.maxsize:
            self.popitem(last=False)

    def get(self, key: K, default: V | None = None) -> V | None:  # type: ignore[override]
        # OrderedDict.get named directly: super() costs as much as the lookup itself.
        value = _get(self, key, default)
        if value is not default:
            self.move_to_end(key)
        return value
