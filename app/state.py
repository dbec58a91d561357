"""The view lives in the URL: checkpoint, depth, example seed, window, pass, layer, head (and a second checkpoint
to compare). Every parameter is checked against what exists; an unknown value gets a message and a default,
never a path and never a traceback. Pure Python, so it is tested without a browser."""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace

MAX_SEED = 10**9
EXAMPLE_KEYS = ("depth", "seed")  # the URL parameters of a view: the example, then how one checkpoint shows it
SHOWN_KEYS = ("window", "pass", "layer", "head")
ECHOED = 40  # characters of a URL value a message repeats: a 20,000-character value is not written back in full
LISTED = 8  # checkpoint names a message lists; the sidebar lists them all


def echo(raw: str) -> str:
    """A URL value as a message repeats it: quoted, and cut to its first ECHOED characters."""
    return repr(raw) if len(raw) <= ECHOED else f"{raw[:ECHOED]!r}… ({len(raw):,} characters)"


@dataclass
class View:
    ckpt: str
    depth: int
    seed: int = 0
    window: int = 0
    pass_: int = 1
    layer: int = 0
    head: int = 0
    cmp: str | None = None
    messages: list[str] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)  # the URL parameter each message is about

    def params(self) -> dict[str, str]:
        """The query parameters that reopen this view."""
        d = {k.rstrip("_"): v for k, v in asdict(self).items() if k not in ("messages", "problems") and v is not None}
        return {k: str(v) for k, v in d.items()}

    def only(self, keys) -> View:
        """This view with the messages about the URL parameters `keys` alone: those a page has controls for."""
        problems = {k: m for k, m in self.problems.items() if k in keys}
        return replace(self, messages=list(problems.values()), problems=problems)


@dataclass(frozen=True)
class Shape:
    """What a checkpoint allows: its depths, windows (context windows are the ones slept on), N, fw layers, heads."""

    depths: tuple[int, ...]
    context_windows: int
    passes: int
    fw_layers: tuple[int, ...]
    heads: int


def choose_checkpoint(
    params: Mapping[str, str],
    names: list[str],
    key: str = "ckpt",
    default: str | None = None,
    place: str = "checkpoints/",
    unusable: Callable[[str], str | None] | None = None,
    missing: str | None = None,
) -> tuple[str | None, list[str]]:
    """The checkpoint the URL's `key` names among `names`, else `default` (if there) or the first, with a message
    for a name that is not there: why it cannot be used where `unusable` (a name → the reason, or None) says it
    exists, else the names that do. (None, why) where there are none: `missing` (the folder is not one), or that
    `place`, the folder the names come from, holds none."""
    if not names:
        return None, [missing or f"No checkpoints found in {place}: train one with `sleepcore train` (see the README)."]
    fallback = default if default in names else names[0]
    value = params.get(key)
    if value is None:
        return fallback, []
    if value in names:
        return value, []
    if unusable is not None and (why := unusable(value)):
        return fallback, [
            f"Checkpoint {echo(value)} in the URL exists but cannot be used: {why}; showing {fallback!r}."
        ]
    return fallback, [f"Unknown checkpoint {echo(value)} in the URL; showing {fallback!r}. {known(value, names)}"]


def known(value: str, names: list[str]) -> str:
    """The names a message offers instead of `value`: the close ones first, then up to LISTED in all."""
    close = difflib.get_close_matches(value[:200], names, n=3, cutoff=0.6)
    if len(names) <= LISTED:
        listed = ", ".join(names)
    else:
        shown = close + [n for n in names if n not in close][: LISTED - len(close)]
        listed = f"{', '.join(shown)} and {len(names) - len(shown)} more (the sidebar lists all {len(names)})"
    return (f"Did you mean {' or '.join(close)}? " if close else "") + f"Known: {listed}."


def parse_view(params: Mapping[str, str], ckpt: str, shape: Shape, cmp: str | None = None) -> View:
    """The view for checkpoint `ckpt`, with every other parameter clamped to what `shape` allows."""
    problems: dict[str, str] = {}

    def integer(key: str, valid: list[int], default: int, what: str) -> int:
        raw = params.get(key)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            value = None
        if value in valid:
            return value
        shown = f"{valid[0]}–{valid[-1]}" if len(valid) > 8 else ", ".join(map(str, valid))
        problems[key] = f"{what} {echo(raw)} does not exist for this checkpoint (valid: {shown}); showing {default}."
        return default

    depth = integer("depth", list(shape.depths), shape.depths[len(shape.depths) // 2], "Depth")
    raw_seed = params.get("seed", "0")
    # isdecimal, not isdigit: int() rejects digits such as "²"; the length bound keeps int() from raising on huge input.
    seed = int(raw_seed) if raw_seed.isdecimal() and len(raw_seed) < 20 and int(raw_seed) < MAX_SEED else None
    if seed is None:
        problems["seed"] = f"Seed {echo(raw_seed)} is not a whole number in 0–{MAX_SEED - 1}; showing seed 0."
        seed = 0
    window = integer("window", list(range(shape.context_windows)), shape.context_windows - 1, "Window")
    pass_ = integer("pass", list(range(1, shape.passes + 1)), shape.passes, "Pass")
    layer = integer("layer", list(shape.fw_layers), shape.fw_layers[0], "Layer") if shape.fw_layers else 0
    head = integer("head", list(range(shape.heads)), 0, "Head")
    return View(ckpt, depth, seed, window, pass_, layer, head, cmp, list(problems.values()), problems)


def not_comparable(left: str, ours: dict, name: str, theirs: dict) -> str:
    """Why checkpoint `name`, trained on task `theirs` ({name, params}), is not compared with `left`, trained on
    `ours`: another task, or the same one with other settings, named."""
    if theirs["name"] != ours["name"]:
        return f"{name!r} is trained on {theirs['name']}, {left!r} on {ours['name']}"
    a, b = ours["params"], theirs["params"]
    differ = [
        f"{k} {json.dumps(b.get(k))} there, {json.dumps(a.get(k))} here"
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k)
    ]
    return f"{name!r} is trained on {ours['name']} with other settings ({'; '.join(differ)}) than {left!r}"


SWEEP_EXAMPLES = (25, 50, 100, 250, 500)  # held-out sequences per depth the sweep page offers


@dataclass
class SweepView:
    """The sleep-at-test-time page's URL state: the test-time N evaluated (`P`, comma-separated) and the held-out
    sequences per depth (`examples`)."""

    passes: list[int]
    examples: int
    messages: list[str] = field(default_factory=list)

    def params(self) -> dict[str, str]:
        return {"P": ",".join(map(str, self.passes)), "examples": str(self.examples)}


def sweep_choices(trained: int) -> list[int]:
    """The test-time N offered for a model trained with N = trained: 1 .. max(8, 2 × trained)."""
    return list(range(1, max(8, 2 * trained) + 1))


def parse_sweep(params: Mapping[str, str], trained: int, default_examples: int = 50) -> SweepView:
    """The sweep for a model trained with N = trained; a bad value gets a message and the default (1 .. 2N;
    default_examples, which a checkpoint's shipped sweep sets to its own count)."""
    choices, messages = sweep_choices(trained), []
    passes = choices[: 2 * trained]
    raw = params.get("P")
    if raw is not None:
        items = [s.strip() for s in raw.split(",") if s.strip()]
        values = {int(s) for s in items if s.isdecimal() and len(s) < 4}
        if items and len(values) == len(set(items)) and values <= set(choices):
            passes = sorted(values)
        else:
            messages.append(
                f"Passes {echo(raw)} are not test-time N this page offers (comma-separated, each in "
                f"{choices[0]}–{choices[-1]}); showing {','.join(map(str, passes))}."
            )
    examples = default_examples if default_examples in SWEEP_EXAMPLES else 50
    raw = params.get("examples")
    if raw is not None:
        if raw.isdecimal() and len(raw) < 6 and int(raw) in SWEEP_EXAMPLES:
            examples = int(raw)
        else:
            valid = ", ".join(map(str, SWEEP_EXAMPLES))
            messages.append(f"Examples {echo(raw)} is not one of {valid}; showing {examples}.")
    return SweepView(passes, examples, messages)
