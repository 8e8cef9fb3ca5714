"""Finding provider plugins and dispatching observation hooks."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any

import pluggy

from . import hookspecs
from ._exceptions import ConfigurationError
from ._provider import Provider

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "revo_sdk"

#: Comma-separated plugin names; when set, only these entry points load.
PLUGINS_ENV = "REVO_SDK_PLUGINS"


def make_plugin_manager(
    plugins: Iterable[object] = (), *, load_entry_points: bool = True
) -> pluggy.PluginManager:
    """A plugin manager with the hook specs, entry points and ``plugins``.

    Installed plugins are found through the ``revo_sdk`` entry-point group;
    set ``REVO_SDK_PLUGINS=github,slack`` to load only those.
    """
    pm = pluggy.PluginManager("revo_sdk")
    pm.add_hookspecs(hookspecs)
    if load_entry_points:
        wanted = os.environ.get(PLUGINS_ENV)
        if wanted is None:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        else:
            for name in filter(None, (n.strip() for n in wanted.split(","))):
                pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=name)
    for plugin in plugins:
        pm.register(plugin)
    return pm


def collect_providers(pm: pluggy.PluginManager) -> dict[str, Provider]:
    """Every provider the registered plugins contribute, by name."""
    found: dict[str, Provider] = {}

    def register(provider: Provider) -> None:
        if not isinstance(provider, Provider) or not provider.name:
            raise ConfigurationError(
                f"register_providers() got {provider!r}; "
                "pass an instance of a revo_sdk.Provider subclass with a name"
            )
        found[provider.name] = provider

    # get_hookimpls() lists plugins in registration order, so a plugin
    # registered later (one passed to Client(plugins=...)) overrides an
    # installed provider of the same name.
    for impl in pm.hook.register_providers.get_hookimpls():
        impl.function(register=register)
    return found


def describe_plugins(pm: pluggy.PluginManager) -> list[dict[str, Any]]:
    """Name, hooks and distribution of each plugin, for ``revo-sdk plugins``."""
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    rows = []
    for name, plugin in pm.list_name_plugin():
        if plugin is hookspecs:
            continue
        dist = dists.get(id(plugin))
        rows.append(
            {
                "name": name,
                "hooks": sorted(h.name for h in pm.get_hookcallers(plugin) or ()),
                "distribution": f"{dist.project_name} {dist.version}" if dist else None,
            }
        )
    return sorted(rows, key=lambda r: r["name"])


def notify(pm: pluggy.PluginManager, hook: str, **kwargs: Any) -> None:
    """Call an observation hook; a failing plugin is logged, never raised."""
    caller = getattr(pm.hook, hook)
    if not caller.get_hookimpls():
        return
    try:
        caller(**kwargs)
    except Exception:
        log.exception("plugin hook %s failed", hook)
