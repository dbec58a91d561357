"""What every task gives: seeded examples with tokens, a loss mask, answers, depths and a recomputable `meta`."""

from __future__ import annotations

import random
import re
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar


class Vocab:
    """Maps token ids to readable strings and back. Ids are positions in `tokens`."""

    def __init__(self, tokens: list[str]):
        if len(set(tokens)) != len(tokens):
            raise ValueError("vocabulary has duplicate tokens")
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, token: str) -> int:
        return self.index[token]

    def encode(self, words: list[str]) -> list[int]:
        unknown = list(dict.fromkeys(w for w in words if w not in self.index))  # each once, in order
        if unknown:
            # each shown at most 24 characters long, so a pasted blob cannot bury the list of valid tokens
            shown = ", ".join(repr(w) if len(w) <= 24 else repr(w[:24]) + "…" for w in unknown[:5])
            first = next(i for i, w in enumerate(words) if w not in self.index)
            count = sum(w not in self.index for w in words)
            raise ValueError(
                f"{count} unknown token(s) ({shown}{', …' if len(unknown) > 5 else ''}; the first is token {first}, "
                f"counting from 0); valid tokens: {' '.join(self.tokens)}"
            )
        return [self.index[w] for w in words]

    def decode(self, ids: list[int]) -> list[str]:
        return [self.tokens[i] for i in ids]


@dataclass
class Example:
    """One sequence. Position i is scored when loss_mask[i]: the model's output there must predict targets[i].

    tokens, targets, loss_mask: length T (targets[i] = -1 where not scored).
    depth: one entry per scored position, in order (Rule 110: steps t; Depo: hops k; gsm: operations).
    meta: the structured problem in plain Python, enough to recompute every answer.
    """

    tokens: list[int]
    targets: list[int]
    loss_mask: list[bool]
    depth: list[int]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def answers(self) -> list[int]:
        return [t for t, m in zip(self.targets, self.loss_mask) if m]


def split_of(key: str, test_fraction: int = 8) -> str:
    """Deterministic train/test split by problem content: 1 in `test_fraction` problems is held out."""
    return "test" if zlib.crc32(key.encode()) % test_fraction == 0 else "train"


_ANNOTATION = re.compile(r"^(\S+?)\[=(\S*)\]$")


class Task(ABC):
    """A seeded task generator with a fixed layout: every example has `seq_len` tokens in windows of `window`.

    The first `context_windows` windows carry no scored positions (the model sleeps on them); the rest are
    query windows. Subclasses set DEFAULTS and the layout attributes in __init__, and implement
    `_generate` (one problem with answers computed by the generator), `_words` (the layout of a problem),
    `_read` (the problem back from words, with clear errors), `key`, `recompute` and `chance`.

    Readable text (`render`, `parse`): tokens separated by spaces, ` | ` between windows, and every scored
    position written as `token[=answer]`, e.g. `?[=1]` or `<ans>[=n7]`. Parse accepts the same text with the
    bars and the answers optional; given answers must match the recomputed ones.
    """

    name: ClassVar[str]
    DEFAULTS: ClassVar[dict[str, Any]]
    # Does the token after each scored position show that position's answer, as an input later queries can read
    # (gsm's `vX <ans> a`, Depo's `<qk> name <ans> answer`)? Then a typed example must show the problem's answers
    # there, and fill_answers puts them in.
    shows_answers: ClassVar[bool] = False
    # The counts of an evaluation the task is judged on, first choice first: the first one an evaluation holds is
    # its headline (results.headline_metric: the app's first count, the cards' and figures' sweeps). By default the
    # depth an answer really needs where the task reports it (gsm: the question alone; Depo where k wraps: k mod n),
    # else per answer.
    judged_on: ClassVar[tuple[str, ...]] = ("effective", "answers")

    vocab: Vocab
    window: int
    seq_len: int
    context_windows: int

    def __init__(self, **params: Any):
        unknown = sorted(set(params) - set(self.DEFAULTS))
        if unknown:
            raise ValueError(
                f"unknown parameter(s) {', '.join(unknown)} for task {self.name!r}; "
                f"valid parameters: {', '.join(self.DEFAULTS)}"
            )
        merged = {**self.DEFAULTS, **params}
        self.params: dict[str, Any] = {k: list(v) if isinstance(v, tuple) else v for k, v in merged.items()}
        self.min_depth = check_int(self.params, "min_depth", 1)
        self.max_depth = check_int(self.params, "max_depth", self.min_depth, "min_depth")
        depths = self.params["depths"]
        if not isinstance(depths, list) or not depths:
            raise ValueError(f"depths must be a non-empty list of ints, got {depths!r}")
        for d in depths:
            if isinstance(d, bool) or not isinstance(d, int) or not self.min_depth <= d <= self.max_depth:
                raise ValueError(
                    f"depths must lie in [min_depth, max_depth] = [{self.min_depth}, {self.max_depth}]; got {d!r}"
                )
        if len(set(depths)) != len(depths):
            raise ValueError(f"depths has duplicates: {depths}")
        self.depths: tuple[int, ...] = tuple(depths)

    # --- generation -------------------------------------------------------------------------------------

    def sample(
        self, n: int, seed: int, split: str = "train", max_depth: int | None = None, depth: int | None = None
    ) -> list[Example]:
        """n examples, a pure function of the arguments. Problems whose key falls in the other split are redrawn.

        Depth per answer: `depth` if given (evaluation by depth); with `max_depth` (a training curriculum)
        max_depth itself half the time, else uniform in [min_depth, max_depth]; with neither, uniform over
        `depths` for "test", over [min_depth, max_depth] for "train".
        """
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if max_depth is not None and depth is not None:
            raise ValueError("give max_depth (a curriculum) or depth (one fixed depth), not both")
        for arg, value in (("max_depth", max_depth), ("depth", depth)):
            if value is not None and not self.min_depth <= value <= self.max_depth:
                raise ValueError(f"{arg} must lie in [{self.min_depth}, {self.max_depth}], got {value}")
        rng = random.Random(seed)

        def pick_depth() -> int:
            if depth is not None:
                return depth
            if max_depth is not None:
                return max_depth if rng.random() < 0.5 else rng.randint(self.min_depth, max_depth)
            if split == "test":
                return rng.choice(self.depths)
            return rng.randint(self.min_depth, self.max_depth)

        examples = []
        while len(examples) < n:
            meta, answers = self._generate(rng, pick_depth)
            if split_of(self.key(meta)) == split:
                examples.append(self._layout(meta, answers))
        return examples

    @abstractmethod
    def _generate(self, rng: random.Random, pick_depth: Callable[[], int]) -> tuple[dict, list[int]]:
        """One problem's meta and its answers (token ids in scored order), computed along the generator's path."""

    @abstractmethod
    def _words(self, meta: dict) -> tuple[list[str], list[int], list[int]]:
        """The layout of a problem: seq_len token strings, the scored positions, and the depth of each."""

    @abstractmethod
    def _read(self, words: list[str]) -> dict:
        """The meta of a problem typed as seq_len known token strings; ValueError saying what is wrong where. Where
        the task shows answers (shows_answers), a shown answer is not checked here but by parse against the layout,
        so that fill_answers can put the problem's in: the meta holds the problem's answers, not those typed."""

    @abstractmethod
    def key(self, meta: dict) -> str:
        """The problem's content without its query depths: decides its split."""

    @abstractmethod
    def recompute(self, meta: dict) -> list[int]:
        """The answers (token ids, in scored order) from `meta` alone, by a plain implementation."""

    @abstractmethod
    def chance(self, depth: int) -> float:
        """Accuracy of guessing one scored answer."""

    # The depth an answer really needs, where a task's nominal depth can overstate it (Depo: k hops on a cycle of
    # n nodes are k mod n hops; gsm: an answer shown earlier can give a later one away). None: the nominal depth is
    # the real one. effective_depth_about says, in a sentence, how the answers are grouped.
    effective_depth_name: str | None = None
    effective_depth_about: str = ""

    # Where a later answer can lean on earlier ones shown in the query window (Depo: a shown successor shortens the
    # next chain), the first answer of each sequence is the clean measure. first_answer_about says why, and asks
    # `sleepcore eval` and RESULTS.md for that table; None: not reported.
    first_answer_about: str | None = None

    def effective_depth(self, example: Example) -> list[int | None]:
        """Per scored answer, the depth it really needs (the nominal depth unless a task says otherwise); None leaves
        the answer out of that count."""
        return list(example.depth)

    def _layout(self, meta: dict, answers: list[int]) -> Example:
        words, scored, depth = self._words(meta)
        if len(words) != self.seq_len:
            raise ValueError(f"the problem needs {len(words)} tokens but this {self.name} task has {self.seq_len}")
        if len(answers) != len(scored):
            raise ValueError(f"{len(answers)} answers for {len(scored)} scored positions")
        targets = [-1] * self.seq_len
        for i, a in zip(scored, answers):
            targets[i] = a
        mask = [t >= 0 for t in targets]
        return Example(self.vocab.encode(words), targets, mask, depth, meta)

    # --- text ---------------------------------------------------------------------------------------------

    def at(self, i: int) -> str:
        """Where position i is, for error messages, counted from 0 as the explorer counts windows."""
        return f"token {i} (window {i // self.window}, its token {i % self.window} of 0–{self.window - 1})"

    def render(self, example: Example) -> str:
        words = self.vocab.decode(example.tokens)
        for i, m in enumerate(example.loss_mask):
            if m:
                words[i] += f"[={self.vocab.tokens[example.targets[i]]}]"
        L = self.window
        return " | ".join(" ".join(words[s : s + L]) for s in range(0, len(words), L))

    def parse(self, text: str) -> Example:
        """An example from readable text (see the class docstring); answers are recomputed from the structure.
        An answer mark `[=a]` that disagrees with the recomputed answer raises WrongAnswersError, and so does an
        answer shown after a query (shows_answers) that is not the problem's: a problem edited after its answers were
        written. fill_answers gives its text with the problem's answers."""
        return self._parse(text, fill=False)[0]

    def fill_answers(self, text: str) -> tuple[str, list[str]]:
        """A typed example whose problem reads, with the problem's answers put in: (its text as render writes it,
        with the problem's answer in every `[=a]` mark and, where the task shows answers (shows_answers), after
        every query; the shown answers changed, one line each). Anything else wrong raises ValueError, as parse
        does."""
        example, words, changed = self._parse(text, fill=True)
        tokens = self.vocab.decode(example.tokens)
        return self.render(example), [f"{self.at(i)}: {words[i]!r} → {tokens[i]!r}" for i in changed]

    def _parse(self, text: str, fill: bool) -> tuple[Example, list[str], list[int]]:
        """parse's work: the example, the words typed (no marks or bars) and, with `fill`, the positions whose shown
        answer was changed to the problem's (without it, a wrong one raises WrongAnswersError)."""
        items = text.replace("|", " | ").split()
        if not [w for w in items if w != "|"]:
            raise ValueError(f"empty example: expected {self._shape()}")
        words, given, bars = [], {}, []
        for w in items:
            if w == "|":
                bars.append(len(words))
                continue
            m = _ANNOTATION.match(w)
            if m:
                w, given[len(words)] = m.group(1), m.group(2)
            words.append(w)
        self.vocab.encode(words)
        bad = sorted({a for a in given.values() if a not in self.vocab.index})
        if bad:
            raise ValueError(
                f"unknown answer token(s) {', '.join(map(repr, bad))} in [=...]; "
                f"valid tokens: {' '.join(self.vocab.tokens)}"
            )
        if len(words) != self.seq_len:
            raise ValueError(f"wrong length: expected {self._shape()}; got {len(words)} tokens")
        expected_bars = list(range(self.window, self.seq_len, self.window))
        if bars and bars != expected_bars:
            raise ValueError(
                f"window bars '|' at token offsets {bars}; expected them every {self.window} tokens, "
                f"at {expected_bars} (or no bars at all)"
            )
        meta = self._read(words)
        example = self._layout(meta, self.recompute(meta))
        shown = {i + 1 for i, m in enumerate(example.loss_mask) if m} if self.shows_answers else set()
        changed, wrong_shown = [], []
        tokens = self.vocab.decode(example.tokens)
        for i, (want, got) in enumerate(zip(tokens, words)):
            if want == got:
                continue
            if i not in shown:
                raise ValueError(f"{self.at(i)}: expected {want!r}, got {got!r} (the {self.name} layout)")
            (changed if fill else wrong_shown).append(i)
        for i, a in given.items():
            if not example.loss_mask[i]:
                raise ValueError(f"{self.at(i)}: answer [={a}] given on a position that is not scored")
        if wrong_shown:
            said = [f"{self.at(i)}: {words[i]!r}, but the problem's answer is {tokens[i]!r}" for i in wrong_shown]
            raise WrongAnswersError(
                f"{len(wrong_shown)} answer(s) shown after a query are not the problem's: "
                + "; ".join(said[:3])
                + (" …" if len(said) > 3 else "")
            )
        wrong = [i for i, a in given.items() if self.vocab[a] != example.targets[i]] if not fill else []
        if wrong:
            marks = [
                f"{self.at(i)}: [={given[i]}], but the answer is {self.vocab.tokens[example.targets[i]]!r}"
                for i in wrong
            ]
            raise WrongAnswersError(
                f"{len(wrong)} answer mark(s) disagree with the problem: "
                + "; ".join(marks[:3])
                + (" …" if len(wrong) > 3 else "")
            )
        return example, words, changed

    def _shape(self) -> str:
        return f"{self.seq_len} tokens ({self.seq_len // self.window} windows of {self.window})"


class WrongAnswersError(ValueError):
    """A typed example whose problem reads but whose answers, in `[=a]` marks or shown after a query
    (Task.shows_answers), disagree with the answers the problem gives (Task.parse; Task.fill_answers mends it)."""


def check_int(params: dict[str, Any], name: str, lo: int, lo_name: str = "") -> int:
    """params[name] as an int >= lo (`lo_name` says where lo comes from), or a ValueError saying what is wrong."""
    value = params[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if value < lo:
        raise ValueError(f"{name} must be >= {lo_name + ' = ' if lo_name else ''}{lo}, got {value}")
    return value
