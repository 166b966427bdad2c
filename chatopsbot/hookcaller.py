"""Calling the hooks plugins offer each other, with async implementations done right.

pluggy calls implementations synchronously: an ``async def`` implementation returns a coroutine,
which is never ``None``, so under ``firstresult`` it always "answers", even when it would have
returned ``None`` once awaited. :class:`HookCaller` awaits each answer before judging it, in
pluggy's own order (``tryfirst``/``trylast``, then the last registered first).

Reach it as ``ctx.hooks``; name the hook by its spec function, so the arguments are checked::

    from chatopsbot_oncall.hookspecs import chatops_oncall_lookup

    answer = await ctx.hooks.first(chatops_oncall_lookup, team="platform", moment=now)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, ParamSpec

import pluggy

__all__ = ["HookCaller"]

P = ParamSpec("P")


class HookCaller:
    """The plugins' hooks, called with awaited answers (``first``, ``collect``)."""

    def __init__(self, manager: pluggy.PluginManager) -> None:
        self._manager = manager

    async def first(self, spec: Callable[P, object], /, *args: P.args, **kwargs: P.kwargs) -> Any:
        """The first implementation's answer that is not ``None`` once awaited, else ``None``."""
        for answer in self._answers(spec, args, kwargs):
            if inspect.isawaitable(answer):
                answer = await answer
            if answer is not None:
                return answer
        return None

    async def collect(
        self, spec: Callable[P, object], /, *args: P.args, **kwargs: P.kwargs
    ) -> list[Any]:
        """Every implementation's answer that is not ``None`` once awaited, in call order."""
        answers = []
        for answer in self._answers(spec, args, kwargs):
            if inspect.isawaitable(answer):
                answer = await answer
            if answer is not None:
                answers.append(answer)
        return answers

    def implementations(
        self, spec: Callable[..., object]
    ) -> list[tuple[str, Callable[..., object]]]:
        """Each plugin's implementation of ``spec`` as ``(plugin name, call)``, in pluggy's
        order; ``call(**kwargs)`` passes an implementation only the arguments it takes (the
        runtime calls its own hooks this way, with each plugin's own context)."""
        hook = getattr(self._manager.hook, spec.__name__, None)
        if hook is None:
            raise LookupError(f"no hook {spec.__name__!r}: is its spec registered?")
        found: list[tuple[str, Callable[..., object]]] = []
        for impl in reversed(hook.get_hookimpls()):
            if impl.hookwrapper or impl.wrapper:
                continue

            def call(
                _function: Callable[..., object] = impl.function,
                _names: tuple[str, ...] = tuple(impl.argnames),
                **kwargs: Any,
            ) -> object:
                return _function(**{name: kwargs[name] for name in _names})

            found.append((impl.plugin_name, call))
        return found

    def _answers(
        self, spec: Callable[..., object], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if args:
            # pluggy passes arguments by name; so must its callers.
            raise TypeError(f"call {spec.__name__} with keyword arguments")
        hook = getattr(self._manager.hook, spec.__name__, None)
        if hook is None:
            raise LookupError(f"no hook {spec.__name__!r}: is its spec registered?")
        for impl in reversed(hook.get_hookimpls()):
            if impl.hookwrapper or impl.wrapper:
                continue
            yield impl.function(**{name: kwargs[name] for name in impl.argnames})

    def __getattr__(self, name: str) -> Any:
        # pluggy's relay, for hooks that answer synchronously (``ctx.hooks.chatops_x(...)``).
        return getattr(self._manager.hook, name)
