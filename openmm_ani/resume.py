"""The check every resumable job makes: do the stored settings equal the current ones?

An MD checkpoint, a free-energy output directory, a training work directory and a label file
each store the settings (and input fingerprints) that determine what they hold. A rerun
continues them only when these are unchanged; otherwise it stops with one line listing what
differs, e.g. ``seed: stored 2024, now 7``. :func:`settings_differences` builds that list from the
two mappings and :func:`raise_if_different` raises the line.

This module is part of the bottom layer (no other openmm_ani import), so every layer, training
included, may use it.
"""

import json
from typing import Any, Callable, Collection, List, Mapping, Optional, Sequence

#: How a missing setting is shown.
NOT_SET = "(not set)"
#: The default form of one difference.
STORED_NOW = "{key}: stored {old}, now {new}"
#: Values longer than this are abbreviated with "...".
WIDTH = 60
#: Two structures (lists, dicts) whose JSON together is longer than this are reported as "<key> differs".
STRUCTURE_WIDTH = 80

_MISSING = object()


def _short(value: Any, quote_strings: bool) -> str:
    if value is _MISSING:
        return NOT_SET
    text = value if isinstance(value, str) and not quote_strings else json.dumps(value, sort_keys=True)
    return text if len(text) <= WIDTH else text[: WIDTH - 3] + "..."


def settings_differences(
    stored: Mapping[str, Any],
    current: Mapping[str, Any],
    *,
    prefix: str = "",
    template: str = STORED_NOW,
    ignore: Collection[str] = (),
    common_keys_only: bool = False,
    quote_strings: bool = False,
    custom: Optional[Mapping[str, Callable[[Any, Any], str]]] = None,
) -> List[str]:
    """One readable line per setting whose stored and current values differ, sorted by key.

    Parameters
    ----------
    stored, current
        The settings of the stored work and of this run (JSON-compatible values).
    prefix
        Put before every key (``"sampling."``, ``"complex "``).
    template
        Form of one difference, with the fields ``key``, ``old`` and ``new``
        (default ``"{key}: stored {old}, now {new}"``; e.g. ``"{key} {old} -> {new}"``).
    ignore
        Keys not compared (settings that may change between runs).
    common_keys_only
        Compare only keys present on both sides (a record of an earlier version lacks newer
        keys); otherwise a key missing on one side is a difference, shown as ``(not set)``.
    quote_strings
        Show strings as JSON (``"ani1x"``) instead of bare (``ani1x``).
    custom
        Key -> function of (stored value, current value) giving the text after the prefix,
        for values that are not worth printing (hashes, file tables).

    Returns
    -------
    list of str
        Empty when nothing differs. Values longer than :data:`WIDTH` characters are
        abbreviated; two long structures give ``"<key> differs"``.
    """
    found = []
    keys = set(stored) & set(current) if common_keys_only else set(stored) | set(current)
    for key in sorted(keys - set(ignore)):
        old, new = stored.get(key, _MISSING), current.get(key, _MISSING)
        if old == new:
            continue
        if custom is not None and key in custom:
            text = custom[key](None if old is _MISSING else old, None if new is _MISSING else new)
        elif isinstance(old, (dict, list)) and isinstance(new, (dict, list)) and len(json.dumps([old, new])) > STRUCTURE_WIDTH:
            text = f"{key} differs"
        else:
            text = template.format(key=key, old=_short(old, quote_strings), new=_short(new, quote_strings))
        found.append(prefix + text)
    return found


def raise_if_different(differences: Sequence[str], holder: str, remedy: str) -> None:
    """Raise the one-line error ``"<holder> (<difference>; ...); <remedy>"`` if there are differences.

    Parameters
    ----------
    differences
        From :func:`settings_differences` (possibly several calls joined).
    holder
        What holds the stored work, e.g. ``"md.chk belongs to a run with other settings or inputs"``.
    remedy
        How to continue or start afresh, e.g. ``"start afresh with --overwrite"``.

    Raises
    ------
    ValueError
        When ``differences`` is not empty.
    """
    if differences:
        raise ValueError(f"{holder} ({'; '.join(differences)}); {remedy}")


def read_record(path: str, remedy: str) -> Any:
    """The settings record stored as JSON at ``path``.

    Raises
    ------
    ValueError
        One line naming the file when it is not valid JSON, followed by ``remedy``.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); {remedy}") from None
