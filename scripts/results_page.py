"""docs/results.md is generated where it states a result, and checked against the result folders.

    python scripts/results_page.py --write docs/results.md   # fill every generated block and value from results/
    python scripts/results_page.py --check docs/results.md   # exit 1 listing every difference and every stray digit
    python scripts/results_page.py --keys                    # the kinds of blocks and values, with what each shows

The page marks what the files say. A table is a block,

    <!-- generated: sweep results/repetition/pee_smollm2-135m-instruct -->
    | n | seeds | … |
    <!-- /generated -->

and a number in prose a value, `<!--v:loss results/repetition/pee_smollm2-135m-instruct 0-->16.279<!--/v-->`;
scripts/results_facts.py computes both from the key (its kind and arguments). --write replaces what sits
between the markers; --check compares it and also *lints* the prose: a digit outside the markers is a number
no script checks, unless an entry of ALLOWED below says what it is (a grid value, a model name, a date, a
config value) — and a config value must be one the result folders' configs hold.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent
sys.path[:0] = [str(ROOT / "src"), str(SCRIPTS)]

BLOCK = re.compile(r"<!-- generated: (?P<key>[^>]*?) -->\n(?P<body>.*?)(?P<end><!-- /generated -->)", re.S)
VALUE = re.compile(r"<!--v:(?P<key>[A-Za-z][^`\n]*?)-->(?P<body>[^<\n]*)<!--/v-->")  # one line, no markup


@dataclass
class Difference:
    line: int
    key: str
    on_page: str
    from_files: str

    def __str__(self) -> str:
        """The first line that differs (a block is many lines; its first ones usually agree)."""
        page, files = self.on_page.split("\n"), self.from_files.split("\n")
        at = next((i for i, (a, b) in enumerate(zip(page, files)) if a != b), min(len(page), len(files)))
        shown = lambda lines: _short(lines[at]) if at < len(lines) else "(ends)"  # noqa: E731
        body = 1 if self.key.startswith("generated") else 0  # a block's body starts below its marker
        return (f"line {self.line + body + at}: {self.key}\n"
                f"    page:  {shown(page)}\n    files: {shown(files)}")


def _short(text: str, limit: int = 240) -> str:
    text = text.replace("\n", "⏎")
    return text if len(text) <= limit else text[:limit] + "…"


def _line(page: str, offset: int) -> int:
    return page.count("\n", 0, offset) + 1


def fill(page: str, facts) -> tuple[str, list[Difference]]:
    """The page with every block and value computed from the files, and each place where it differed. A key
    whose files are missing or unreadable keeps its text and is reported as a difference ("cannot compute")."""
    from softeval.errors import SoftevalError

    differences: list[Difference] = []

    def computed(compute, key: str, m: re.Match) -> str | None:
        try:
            return compute(key)
        except (OSError, KeyError, ValueError, StopIteration, SoftevalError) as e:
            why = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            differences.append(Difference(_line(page, m.start()), key, m["body"], f"cannot compute ({why})"))
            return None

    def block(m: re.Match) -> str:
        body = computed(facts.block, m["key"], m)
        body = m["body"] if body is None else body + "\n"
        if body != m["body"]:
            differences.append(Difference(_line(page, m.start()), f"generated: {m['key']}", m["body"], body))
        return f"<!-- generated: {m['key']} -->\n{body}{m['end']}"

    page = BLOCK.sub(block, page)

    def value(m: re.Match) -> str:
        text = computed(facts.value, m["key"], m)
        text = m["body"] if text is None else text
        if text != m["body"]:
            differences.append(Difference(_line(page, m.start()), f"v:{m['key']}", m["body"], text))
        return f"<!--v:{m['key']}-->{text}<!--/v-->"

    return VALUE.sub(value, page), sorted(differences, key=lambda d: d.line)


# --------------------------------------------------------------------------- the digit lint

# What a digit in prose may be, besides a generated value: (name, pattern, the config values it must be one of
# or None). Each is a thing that is not a result: a grid value the configs fix, a model's name, a date, an issue,
# a citation. A pattern's group "v" (one or more numbers) is checked against the configs where a set is named.
ALLOWED: list[tuple[str, str, str | None]] = [
    ("prompt length", r"\bn (?:=|≤|≥|<|>) (?P<v>\d+(?:(?:,| and| or) \d+)*)\b", "n"),
    ("prompt lengths", r"\bn ∈ \{(?P<v>[\d, …]+)\}", "n"),
    ("skip distance", r"\bk (?:=|≥) (?P<v>\d+(?:(?:,| and| or) \d+)*)\b", "k"),
    ("skip distances", r"\bk ∈ \{(?P<v>[\d, ]+)\}", "k"),
    ("skip formula", r"\bk \+ 1\b", None),
    ("seed id", r"\bseeds? (?P<v>\d+(?:(?:,| and| or) \d+)*)\b", "seed"),
    ("curve step", r"\bsteps? (?P<v>\d+(?:(?:,| and|–) \d+)*)\b", "curve"),
    ("tuning steps", r"\b(?P<v>\d+) (?:tuning )?steps\b", "steps"),
    ("batch size", r"\bbatch (?:size )?(?P<v>\d+)\b", "batch"),
    ("learning rate", r"\blr (?P<v>[\d.]+(?:(?:,| and) [\d.]+)*)\b", "lr"),
    ("seed count", r"\b(?P<v>\d+) (?:tuning )?seeds\b", "seeds"),
    ("items", r"\b(?P<v>\d+) (?:test |validation |held-out )?(?:items|questions)\b", "items"),
    ("statements", r"\b(?P<v>\d+) (?:training |held-out )?statements\b", "statements"),
    ("gap margin", r"\bmargin (?:of )?(?P<v>\d+(?:\.\d+)?)\b", "margin"),
    ("control margin", r"±(?P<v>0\.\d+)", "ar_margin"),
    ("windows", r"\b(?P<v>\d+) (?:training |held-out )?windows\b", "windows"),
    ("context tokens", r"\b(?P<v>\d+) tokens of context\b", "context"),
    ("scored tokens", r"\b(?P<v>\d+) (?:tokens )?scored\b", "target"),
    ("prompt vectors", r"\b(?P<v>\d+)[- ]vectors?\b", "vectors"),
    ("shots", r"\b(?P<v>\d+)[- ]shot\b", "shots"),
    ("generation cap", r"\b(?P<v>\d+)-token cap\b", "gen"),
    ("requested detour", r"\brequested (?P<v>\d+) extra\b", "extras"),
    ("epsilon", r"ε = (?P<v>\d+(?:\.\d+)?)(?! ?%)", "eps"),
    ("relative epsilon", r"ε = (?P<v>\d+) % of the gain", "eps_pct"),
    ("interval level", r"\b(?P<v>\d+) ?% (?:bootstrap |percentile )?(?:interval|CI)", "level"),
    ("verdict settings", r"α = (?P<v>[\d.]+)|≥ (?P<c>\d+) %", None),
    ("model name", (r"\b(?:SmolLM2|Gemma-3|Pythia)[-\w.]*|\b\d+(?:\.\d+)?[MmBb]\b|\bQ4_\w+|\b\d+-bit\b|"
                    r"\b(?:b?float(?:16|32)|fp32|bf16|GSM8K|gsm8k\w*|mmlu_first200)\b"), None),
    ("issue", r"#\d+\b", None),
    ("licence", r"\bCC BY(?:-SA)? \d\.\d\b", None),
    ("date", r"\b\d{4}-\d{2}-\d{2}(?:/\d{2}-\d{2})?\b", None),
    ("citation", r"\b(?:Nordby|al\.) \d{4}\b|arXiv \d{4}\.\d{5}", None),
]


def config_values(root: Path) -> dict[str, set[str]]:
    """The values the result folders' configs fix, by the name ALLOWED checks them under, as strings."""
    import json

    from softeval.bench.verdicts import CEILING, CONFIDENCE

    got: dict[str, set[str]] = {k: set() for k in ("n", "k", "seed", "curve", "steps", "batch", "lr", "seeds", "items",
                                                    "vectors", "shots", "gen", "eps", "eps_pct", "level", "extras",
                                                    "statements", "margin", "windows", "ar_margin", "context", "target")}
    def add(key: str, *found) -> None:
        got[key].update(f"{v:g}" if isinstance(v, float) else str(v) for v in found)

    for path in sorted((root / "results").rglob("config.json")):
        if "cells" in path.parts or "units" in path.parts:
            continue
        cfg = json.loads(path.read_text())
        optim = cfg.get("optim") or {}
        add("steps", optim.get("max_steps"))
        add("batch", optim.get("batch_size"))
        add("lr", optim.get("lr"))
        if "tokens" in cfg:  # a distance sweep
            add("n", *cfg["tokens"])
            seeds = cfg["seeds"] if isinstance(cfg["seeds"], int) else len(cfg["seeds"])
            add("seeds", seeds)
            add("seed", *range(seeds))
            if "epsilon" in cfg:  # a suite's config has the grid but no ε
                add("eps", cfg["epsilon"])
                add("eps_pct", round(100 * cfg["epsilon_relative"]))
            add("items", (cfg.get("task") or {}).get("num_eval"))
            if (cfg.get("task") or {}).get("name") == "autoregressive":
                add("windows", cfg["task"]["num_train"], cfg["task"]["num_eval"])
                add("context", cfg["task"]["context_tokens"])
                add("target", cfg["task"]["target_tokens"])
            if "num_train" in cfg:  # a suite: statements per behaviour and its gap rule's margin
                add("statements", cfg["num_train"], cfg["num_eval"])
                add("margin", cfg.get("margin"))
            options = (cfg.get("task") or {}).get("options") or {}
            if options.get("skip"):
                add("k", options["skip"])
            add("extras", *(options.get("probe_extras") or []))
        if "tuning_seeds" in cfg:  # a bench run
            add("seeds", cfg["tuning_seeds"])
            add("seed", *range(cfg["tuning_seeds"]))
            add("curve", *cfg["curve_steps"])
            add("steps", *cfg["curve_steps"])  # "after 10 tuning steps": a point of the curve
            add("items", cfg["limit"])
            add("vectors", cfg["num_virtual_tokens"])
            add("shots", cfg["shots"])
            add("gen", cfg["max_gen_toks"])
    for path in (root / "results").rglob("stability.json"):
        grid = json.loads(path.read_text())
        add("lr", *grid["lrs"])
        add("batch", *grid["batch_sizes"])
        add("n", *grid["tokens"])
    for path in (root / "results").rglob("behaviours.json"):  # a suite: its grid is the suite's config
        cfg = json.loads((path.parent / "config.json").read_text()) if (path.parent / "config.json").is_file() else {}
        add("n", *(cfg.get("tokens") or []))
    add("level", round(100 * CONFIDENCE), 90)  # the verdict rule's intervals; S(ε)'s bootstrap is 90 %
    got["ceiling"] = {str(round(100 * CEILING))}
    from results_facts import AR_MARGIN

    add("ar_margin", AR_MARGIN)
    return got


def prose(page: str) -> str:
    """The page with everything the lint does not read blanked out character for character (so offsets and
    line numbers stay): generated blocks and values, fenced code, HTML comments, link targets, code spans
    naming a command or path."""
    blank = lambda m: re.sub(r"[^\n]", " ", m.group(0))  # noqa: E731
    text = BLOCK.sub(blank, page)
    text = VALUE.sub(blank, text)
    text = re.sub(r"```.*?```", blank, text, flags=re.S)
    text = re.sub(r"<!--.*?-->", blank, text, flags=re.S)
    text = re.sub(r"\]\([^)]*\)", blank, text)                 # link and image targets
    text = re.sub(r"`[^`]*`", lambda m: blank(m) if _is_command(m.group(0)) else m.group(0), text)
    return text


def _is_command(span: str) -> bool:
    """A code span that names a command, flag, file or identifier rather than stating a number: it starts with
    a command or holds a path, a flag or an identifier's underscore or dot-extension. A bare number or a phrase
    in backticks (`0.108`, `Elo 2780`) is still prose to the lint."""
    inner = span.strip("`").strip()
    command = re.match(r"(softeval|python|bash|git|for|cd)\b", inner)
    return bool(command or re.search(r"/|--|\w_\w|\.[A-Za-z]\w*$", inner))


def lint(page: str, values: dict[str, set[str]]) -> list[str]:
    """Every digit in prose that no ALLOWED entry explains, and every config value an entry matches that no
    config holds. Patterns match across the line breaks of a wrapped paragraph."""
    text = prose(page)
    covered = [False] * len(text)
    problems = []
    for name, pattern, config in ALLOWED:
        for m in re.finditer(pattern.replace(" ", r"\s+"), text):
            found = m.groupdict()
            if config and found.get("v"):
                for v in re.findall(r"\d+(?:\.\d+)?", m["v"]):
                    if v not in values[config]:
                        held = ", ".join(sorted(values[config], key=_num)) or "none"
                        problems.append((m.start(), f"{name} {v} is not a value of any result's config ({held})"))
            if found.get("c") and found["c"] not in values["ceiling"]:
                problems.append((m.start(), f"ceiling {found['c']} % is not the verdict rule's"))
            covered[m.start():m.end()] = [True] * (m.end() - m.start())
    for m in re.finditer(r"\d+(?:[.,]\d+)*", text):
        if not all(covered[m.start():m.end()]):
            problems.append((m.start(), f"number {m.group(0)} in prose, not generated"))
    lines = page.split("\n")
    return [f"line {_line(page, at)}: {what}: {lines[_line(page, at) - 1].strip()}" for at, what in sorted(problems)]


def _num(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("inf")


def malformed(page: str) -> list[str]:
    """Markers that do not parse: an opening without its closing (or with markup inside a value) would leave
    what follows it unchecked and unlinted."""
    problems = []
    page = re.sub(r"`[^`\n]*`", lambda m: " " * len(m.group(0)), page)  # the page may name its markers in code
    for opening, pattern in (("<!-- generated:", BLOCK), ("<!--v:", VALUE)):
        parsed = {m.start() for m in pattern.finditer(page)}
        problems += [f"line {_line(page, m.start())}: a marker '{opening}' that does not parse"
                     for m in re.finditer(re.escape(opening), page) if m.start() not in parsed]
    closings = page.count("<!-- /generated -->") - len(BLOCK.findall(page))
    if closings:
        problems.append(f"{closings} '<!-- /generated -->' without an opening")
    return problems


def check(page: str, facts, root: Path) -> list[str]:
    """Every malformed marker, every difference between the page and the files, then every stray or unchecked
    digit: [] when the page agrees with the files."""
    if problems := malformed(page):
        return problems
    _, differences = fill(page, facts)
    return [str(d) for d in differences] + lint(page, config_values(root))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", metavar="PAGE", help="fill PAGE's generated blocks and values from the files")
    action.add_argument("--check", metavar="PAGE", help="exit 1 listing every difference and stray digit")
    action.add_argument("--keys", action="store_true", help="list the kinds of blocks and values")
    parser.add_argument("--root", default=str(ROOT), help="the repository whose results/ the page reads")
    args = parser.parse_args(argv)

    from results_facts import BLOCKS, VALUES, Facts

    if args.keys:
        for title, kinds in (("blocks", BLOCKS), ("values", VALUES)):
            print(f"{title}:")
            for name, fn in kinds.items():
                print(f"  {name}: {(fn.__doc__ or '').strip().splitlines()[0]}")
        return 0
    root = Path(args.root)
    facts = Facts(root)
    path = Path(args.write or args.check)
    page = path.read_text()
    if args.write:
        if problems := malformed(page):
            print("\n".join(problems))
            return 1
        new, differences = fill(page, facts)
        path.write_text(new)
        failed = [d for d in differences if d.from_files.startswith("cannot compute")]
        print(f"{path}: {len(differences) - len(failed)} block(s) or value(s) rewritten")
        for d in failed:
            print(d)
        for problem in lint(new, config_values(root)):
            print(problem)
        return 1 if failed else 0
    problems = check(page, facts, root)
    for problem in problems:
        print(problem)
    print(f"{path}: " + (f"{len(problems)} difference(s) from the files" if problems else "agrees with the files"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
