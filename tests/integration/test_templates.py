"""
test_templates.py — the differential test of Carafe's template engine
against Jinja2 (python3-jinja2, Debian's 3.1.2, as /usr/bin/python3 has it).

Every case renders with both, on the same folder of templates and the same
context, and must agree:

  corpus      tests/templates/cases/*.json, each a list of cases
                {"name": "...", "templates": {"page.html": "...", ...},
                 "render": "page.html", "context": {...}}
              with "error": true when both must fail, and optionally
              "expect": "..." (Jinja's output, checked by --jinja-only) and
              "note": "..." (why the case is there, for readers)
  generated   the same on every run (seeded), batched so that a run of
              carafe-render renders many (the differing ones are shown):
              1200 expressions from a typed grammar (literals, arithmetic,
              comparisons, tests, filters, string concatenation, inline if,
              lists, dicts, slices, methods), a dozen to a template;
              120 templates of text and tags with random whitespace control,
              ten to a run; 480 string and number filters with random
              arguments on random context values, 24 to a template
  reference   jinja2.Environment(loader=FileSystemLoader(folder),
              autoescape=<Flask's choice: .html .htm .xml .xhtml .svg>),
              everything else Jinja's defaults
  engine      carafe-render --templates FOLDER NAME, the context as JSON on
              stdin: the rendering on stdout (exit 0) or "file:line...: msg"
              on stderr (exit 1)

A case passes when the output bytes are equal (stdout against Jinja's
rendering encoded as UTF-8), or when both fail; when Jinja's failure is a
TemplateSyntaxError the line in carafe-render's "file:LINE:" must be Jinja's
e.lineno (and the file Jinja's). A sanitizer report, another exit status or
a run over 10 s is a failure. Failures in files named nice_to_have*.json are
printed as warnings and do not fail the test (features the engine need not
have, limits it documents, Jinja artefacts such as its constant folding of
`'<b>'|safe ~ 1` to a plain str). Each failure prints the case, its
templates and context, and Jinja's output against carafe-render's.

Run:
  python3 tests/integration/test_templates.py            # CF_BUILD_DIR/tools/carafe-render
  python3 tests/integration/test_templates.py --render build/tools/carafe-render
  python3 tests/integration/test_templates.py --jinja-only   # validate the corpus
  ... -k NAME   only the cases whose name contains NAME;  -v  list every case
(under CTest: CF_BUILD_DIR and CF_SOURCE_DIR come from the environment;
without CF_BUILD_DIR the binary is <source>/build/tools/carafe-render).
A missing carafe-render is a failure, never a skip. About 20-40 s under an
ASan build with 2 workers.
"""
import argparse
import concurrent.futures
import glob
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

import jinja2  # python3-jinja2  # noqa: E402
import jinja2.sandbox  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("CF_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
CASES_DIR = os.path.join(SOURCE_DIR, "tests", "templates", "cases")
TIMEOUT = 10  # seconds, per carafe-render run
WORKERS = 2

AUTOESCAPE_EXT = (".html", ".htm", ".xml", ".xhtml", ".svg")


def flask_autoescape(name):
    return name is not None and name.endswith(AUTOESCAPE_EXT)


# ---- the corpus -------------------------------------------------------------

class Case:
    def __init__(self, source, name, templates, render, context, error, expect=None):
        self.source = source      # the file it came from (or "generated")
        self.name = name
        self.templates = templates
        self.render = render
        self.context = context
        self.error = error
        self.expect = expect

    @property
    def nice_to_have(self):
        return os.path.basename(self.source).startswith("nice_to_have")

    def label(self):
        return f"{os.path.basename(self.source)}::{self.name}"


def load_corpus():
    cases, problems = [], []
    files = sorted(glob.glob(os.path.join(CASES_DIR, "*.json")))
    if not files:
        problems.append(f"no case files in {CASES_DIR}")
    names = set()
    for path in files:
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            problems.append(f"{path}: {e}")
            continue
        if not isinstance(data, list):
            problems.append(f"{path}: not a list of cases")
            continue
        for i, c in enumerate(data):
            where = f"{os.path.basename(path)}[{i}]"
            if not isinstance(c, dict) or "name" not in c or "templates" not in c:
                problems.append(f"{where}: a case needs name and templates")
                continue
            unknown = set(c) - {"name", "templates", "render", "context", "error", "expect", "note"}
            if unknown:
                problems.append(f"{where} {c['name']}: unknown keys {sorted(unknown)}")
            render = c.get("render", "page.html")
            if render not in c["templates"] and not c.get("error"):
                problems.append(f"{where} {c['name']}: render {render!r} is not among its templates")
            key = (os.path.basename(path), c["name"])
            if key in names:
                problems.append(f"{where}: duplicate case name {c['name']!r}")
            names.add(key)
            ctx = c.get("context", {})
            if not isinstance(ctx, dict):
                problems.append(f"{where} {c['name']}: context must be an object")
                continue
            cases.append(Case(path, c["name"], c["templates"], render, ctx,
                              bool(c.get("error")), c.get("expect")))
    return cases, problems


# ---- generated expressions ----------------------------------------------------
# A typed grammar, so that the only runtime errors are the ones both engines
# must raise (division by zero). Integers stay small (no big powers, no big
# repetitions), far inside int64.

class Gen:
    STRS = ["'a'", "'abc'", "''", "'Hello World'", "'x,y,z'", "' pad '", "'<b>'",
            "'&'", "'caf\u00e9'", "'\u65e5\u672c'", "\"it's\"", "'a-b c'", "'42'", "'3.5'"]
    FLOATS = ["0.5", "1.5", "2.25", "0.1", "0.2", "3.0", "100.0", "1e3", "2.5e-3",
              "1.0", "0.125", "7.75", "12345.678", "0.3"]
    NAMES_INT = {"n": 7, "m": -3, "z": 0, "big": 1000000}
    NAMES_FLOAT = {"f": 2.5, "g": -0.75, "h": 100.0}
    NAMES_STR = {"s": "Caf\u00e9 <&> \"q\" 'a'", "w": "hello world", "e": ""}
    NAMES_LIST = {"xs": [3, 1, 2], "ws": ["b", "a", "C"], "empty": []}

    def __init__(self, seed):
        self.r = random.Random(seed)

    def pick(self, xs):
        return self.r.choice(xs)

    def int_(self, d):
        r = self.r
        if d <= 0 or r.random() < 0.12:
            k = r.random()
            if k < 0.6:
                return str(r.choice([0, 1, 2, 3, 5, 7, 10, 12, 99, 255]))
            if k < 0.8:
                return self.pick(list(self.NAMES_INT))
            return "(%s)" % self.pick(["-4", "-1", "-17"])
        k = r.randrange(12)
        a, b = self.int_(d - 1), self.int_(d - 1)
        if k <= 3:
            return f"({a} {self.pick(['+', '-', '*'])} {b})"
        if k == 4:
            return f"({a} {self.pick(['//', '%'])} {b})"
        if k == 5:
            return f"({self.pick(['2', '3', '-2', '10'])} ** {r.randrange(0, 6)})"
        if k == 6:
            return f"({a}|abs)"
        if k == 7:
            return f"({self.str_(d - 1)}|length)"
        if k == 8:
            return f"({a} if {self.bool_(d - 1)} else {b})"
        if k == 9:
            return f"({self.float_(d - 1)}|int)"
        if k == 10:
            return f"(-{a})"
        return f"({self.list_(d - 1)}|{self.pick(['sum', 'length', 'max', 'min', 'first', 'last'])})"

    def float_(self, d):
        r = self.r
        if d <= 0 or r.random() < 0.12:
            if r.random() < 0.75:
                return self.pick(self.FLOATS)
            return self.pick(list(self.NAMES_FLOAT))
        k = r.randrange(8)
        a, b = self.float_(d - 1), self.num_(d - 1)
        if k <= 2:
            return f"({a} {self.pick(['+', '-', '*'])} {b})"
        if k == 3:
            return f"({self.num_(d - 1)} / {self.num_(d - 1)})"
        if k == 4:
            return f"({a} {self.pick(['//', '%'])} {b})"
        if k == 5:
            method = self.pick(["", ", 'floor'", ", 'ceil'"])
            return f"({a}|round({r.randrange(0, 4)}{method}))"
        if k == 6:
            return f"({self.pick([self.str_(d - 1) + '|length', self.int_(d - 1)])}|float)"
        return f"({a}|abs)"

    def num_(self, d):
        return self.int_(d) if self.r.random() < 0.5 else self.float_(d)

    def str_(self, d):
        r = self.r
        if d <= 0 or r.random() < 0.12:
            if r.random() < 0.7:
                return self.pick(self.STRS)
            return self.pick(list(self.NAMES_STR))
        k = r.randrange(20)
        a = self.str_(d - 1)
        if k == 12:
            return f"({a}[{r.randrange(-3, 3)}:{r.randrange(-2, 6)}])"
        if k == 13:
            return f"('{{}}|{{}}'.format({a}, {self.any_(d - 1)}))"
        if k == 14:
            return self.pick([f"('%s-%d'|format({a}, {self.int_(d - 1)}))",
                              f"('%.2f'|format({self.float_(d - 1)}))",
                              f"('%.3f %s'|format({self.num_(d - 1)}, {a}))"])
        if k == 15:
            return f"({self.pick([a, self.num_(d - 1), self.wlist_(d - 1)])}|tojson)"
        if k == 16:
            return f"({self.wlist_(d - 1)}|join({self.pick(['', ',', ' + '])!r}))"
        if k == 17:
            method = self.pick(["upper()", "lower()", "strip()", "replace('a', '4')", "split(' ')|join('_')"])
            return f"({a}.{method})"
        if k == 18:
            return f"({a} ~ ({self.str_(d - 1)} if {self.bool_(d - 1)}))"
        if k == 19:
            return f"({self.wlist_(d - 1)}|{self.pick(['first', 'last', 'min', 'max'])})"
        if k <= 1:
            return f"({a} ~ {self.pick([self.num_(d - 1), self.str_(d - 1), 'none', 'true'])})"
        if k == 2:
            return f"({a} + {self.str_(d - 1)})"
        if k == 3:
            return f"({a} * {r.randrange(-1, 4)})"
        if k == 4:
            return f"({a}|{self.pick(['upper', 'lower', 'title', 'capitalize', 'trim', 'reverse', 'e', 'string', 'striptags', 'urlencode', 'wordcount|string'])})"
        if k == 5:
            return f"({a} if {self.bool_(d - 1)} else {self.str_(d - 1)})"
        if k == 6:
            return f"({self.num_(d - 1)}|string)"
        if k == 7:
            return f"({a}|replace({self.pick(['a', 'l', ' ', 'o'])!r}, {self.pick(['', 'X', '--'])!r}))"
        if k == 8:
            return f"({a}|center({r.randrange(0, 14)}))"
        if k == 9:
            return f"({self.list_(d - 1)}|join({self.pick(['', ', ', '-'])!r}))"
        if k == 10:
            return f"({a}|truncate({r.randrange(3, 14)}, {self.pick(['false', 'true'])}, {self.pick(['...', '', '~'])!r}, {r.randrange(0, 6)}))"
        return f"({a}|default({self.str_(d - 1)}, true))"

    def bool_(self, d):
        r = self.r
        if d <= 0 or r.random() < 0.12:
            return self.pick(["true", "false", "True", "none is none", "n is odd", "z is even"])
        k = r.randrange(11)
        if k == 9:
            return f"({self.str_(d - 1)} is {self.pick(['string', 'number', 'defined', 'none', 'not string'])})"
        if k == 10:
            return f"({self.str_(d - 1)}.startswith({self.pick(['a', 'H', '', 'ca'])!r}))"
        if k <= 1:
            op = self.pick(["<", "<=", ">", ">=", "==", "!="])
            return f"({self.num_(d - 1)} {op} {self.num_(d - 1)})"
        if k == 2:
            return f"({self.num_(d - 1)} < {self.num_(d - 1)} <= {self.num_(d - 1)})"
        if k == 3:
            return f"({self.str_(d - 1)} {self.pick(['==', '!=', '<', '>'])} {self.str_(d - 1)})"
        if k == 4:
            return f"({self.str_(d - 1)} {self.pick(['in', 'not in'])} {self.str_(d - 1)})"
        if k == 5:
            return f"(not {self.bool_(d - 1)})"
        if k == 6:
            return f"({self.bool_(d - 1)} {self.pick(['and', 'or'])} {self.bool_(d - 1)})"
        if k == 7:
            return f"({self.int_(d - 1)} is {self.pick(['odd', 'even', 'divisibleby(3)', 'number', 'string', 'defined', 'not none'])})"
        return f"({self.int_(d - 1)} in {self.list_(d - 1)})"

    def list_(self, d):
        r = self.r
        if d <= 0 or r.random() < 0.4:
            return self.pick(["[1, 2, 3]", "[5]", "[-2, 9, 4, 4]", "xs", "range(%d)" % r.randrange(1, 6),
                              "range(10, 0, -3)"])
        k = r.randrange(6)
        if k == 4:
            step = self.pick(["", ":-1", ":2", ":-2", ":3"])
            return f"(({self.list_(d - 1)}|list)[{self.pick(['', '1', '-2', '0'])}:{self.pick(['', '3', '-1', '10'])}{step}])"
        if k == 5:
            return f"(range({r.randrange(-5, 5)}, {r.randrange(-5, 12)}, {self.pick(['1', '2', '-1', '-3', '4'])})|list)"
        if k == 0:
            return f"({self.list_(d - 1)}|list + [{self.int_(d - 1)}])"
        if k == 1:
            return f"({self.list_(d - 1)}|sort{self.pick(['', '(reverse=true)'])}|list)"
        if k == 2:
            return f"({self.list_(d - 1)}|unique|list)"
        return f"({self.list_(d - 1)}|reverse|list)"

    def wlist_(self, d):
        r = self.r
        if d <= 0 or r.random() < 0.3:
            return self.pick(["ws", "['b', 'A', 'c', 'a']", "['x']", "'a b c'.split(' ')",
                              "w.split()", "('abc'|list)", "s.split(' ')"])
        k = r.randrange(5)
        a = self.wlist_(d - 1)
        if k == 0:
            return f"({a}|sort{self.pick(['', '(reverse=true)', '(case_sensitive=true)', '(true, true)'])}|list)"
        if k == 1:
            return f"({a}|map({self.pick(['upper', 'lower', 'capitalize', 'trim'])!r})|list)"
        if k == 2:
            return f"({a}|unique|list)"
        if k == 3:
            return f"({a}|list + [{self.str_(d - 1)}])"
        return f"({a}|reverse|list)"

    def dict_(self, d):
        r = self.r
        if d <= 0 or r.random() < 0.3:
            return self.pick(["{'b': 1, 'a': 2}", "{}", "{'k': 'v', 'K': none}", "dict(x=1, y='<y>')"])
        n = r.randrange(1, 4)
        items = ", ".join(f"{self.pick(['a', 'b', 'c', 'B', 'x y', '<'])!r}: {self.pick([self.int_, self.str_, self.float_, lambda d: self.list_(d) + '|list'])(d - 1)}"
                          for _ in range(n))
        return "{" + items + "}"

    def dict_use(self, d):
        a = self.dict_(d)
        return self.pick([f"({a}|dictsort)", f"({a}|dictsort(reverse=true))", f"({a}|tojson)",
                          f"({a}|length)", f"({a}.get('a', 'none'))", f"({a}|list)",
                          f"({a}.items()|list)", f"({a}.values()|list|length)", f"({a}['b'])",
                          f"({a}|dictsort(true, 'key')|first)", f"({a}|urlencode)"])

    def any_(self, d):
        k = self.r.randrange(6)
        return [self.int_, self.float_, self.str_, self.str_, self.bool_, self.any_other][k](d)

    def any_other(self, d):
        k = self.r.randrange(6)
        if k >= 4:
            return self.dict_use(d - 1)
        if k == 0:
            return f"{self.list_(d)}|list"
        if k == 1:
            return f"({self.bool_(d - 1)} and {self.str_(d - 1)}) or {self.num_(d - 1)}"
        if k == 2:
            return f"{self.str_(d - 1)} if {self.bool_(d - 1)}"
        return f"{self.list_(d - 1)}[{self.r.randrange(-2, 2)}]"


class _Bounded(jinja2.sandbox.SandboxedEnvironment):
    """Evaluates a generated expression, raising OverflowError when a value
    on the way leaves what the engine promises (int64; here much less, and
    floats small enough for |int)."""
    intercepted_binops = frozenset(["+", "-", "*", "/", "//", "%", "**"])

    def call_binop(self, context, operator, left, right):
        v = super().call_binop(context, operator, left, right)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) > 1e15:
            raise OverflowError(f"{left!r} {operator} {right!r}")
        return v


def _in_range(expr, ctx):
    """True: renders; False: fails as both must (division by zero, an
    empty sequence's max);
    None: leaves the promised range, prints a newline, or depends on Jinja's
    constant folding."""
    try:
        v = _Bounded().from_string("{{ " + expr + " }}").render(**ctx)
        # Jinja folds a constant ~ to a plain str (in its optimizer and in
        # {{ }} itself), dropping a Markup in it, which is then escaped
        # again: an artefact left to nice_to_have.
        if "~" not in expr or not re.search(r"\|(e|escape|tojson|safe|forceescape|join)\b", expr):
            return True
        folded = jinja2.Environment(autoescape=True).from_string("{{ " + expr + " }}")
        computed = jinja2.Environment(autoescape=True, optimized=False).from_string(
            "{% set r = " + expr + " %}{{ r }}")
        if folded.render(**ctx) != computed.render(**ctx):
            return None
    except OverflowError:
        return None
    except (ZeroDivisionError, jinja2.UndefinedError, TypeError, ValueError):
        return False  # division by zero, max() of nothing, ...: both must fail
    if re.search(r"\d{16}|e\+", v) or "\n" in v:
        return None  # a big number made by a filter (|int, |sum)
    return True


def generated_cases(count=1200, seed=1913, per_case=12):
    """count expressions: those Jinja renders, per_case to a template (one a
    line, which keeps it fast under ASan); those that fail, one a case."""
    g = Gen(seed)
    ctx = {**Gen.NAMES_INT, **Gen.NAMES_FLOAT, **Gen.NAMES_STR, **Gen.NAMES_LIST}
    good, bad, seen = [], [], set()
    while len(good) + len(bad) < count:
        expr = g.any_(g.r.randrange(2, 5))
        if expr in seen:
            continue
        ok = _in_range(expr, ctx)
        if ok is None or (ok is False and len(bad) >= count // 20):
            continue
        seen.add(expr)
        (good if ok else bad).append(expr)
    out = []
    for i in range(0, len(good), per_case):
        ext = ("html", "txt")[(i // per_case) % 2]
        src = "".join("{{ " + e + " }}\n" for e in good[i:i + per_case]) + "."
        out.append(Case("generated", f"gen{len(out):03d}", {f"expr.{ext}": src}, f"expr.{ext}", ctx, None))
    for e in bad:
        out.append(Case("generated", f"gen{len(out):03d}", {"expr.html": "{{ " + e + " }}"}, "expr.html", ctx, None))
    return out


class BlockGen:
    """Small templates of text and tags with random whitespace control:
    the lexer's stripping rules, the trailing newline, CRLF."""
    TEXT = ["", " ", "  ", "\t", "\n", " \n ", "\n\n", "a", " b ", "c\n", "\n  d", "\r\n", " \t\n\t "]

    def __init__(self, seed):
        self.r = random.Random(seed)

    def text(self):
        return "".join(self.r.choice(self.TEXT) for _ in range(self.r.randrange(0, 3)))

    def o(self, kind):  # an opening delimiter, maybe with "-"
        return "{" + kind + ("-" if self.r.random() < 0.4 else "") + " "

    def c(self, kind):
        return " " + ("-" if self.r.random() < 0.4 else "") + kind + "}"

    def tag(self, body):
        return self.o("%") + body + self.c("%")

    def node(self, d):
        r = self.r
        k = r.randrange(8 if d > 0 else 4)
        if k == 0:
            return self.o("{") + r.choice(["x", "'<s>'", "xs|length", "i", "loop.index if loop"]) + self.c("}")
        if k == 1:
            return self.o("#") + r.choice(["c", "a\nb", ""]) + self.c("#")
        if k == 2:
            return self.tag("set y = " + str(r.randrange(9)))
        if k == 3:
            return self.text()
        if k == 4:
            return (self.tag(r.choice(["if t", "if not t", "if xs"])) + self.seq(d - 1)
                    + (self.tag("else") + self.seq(d - 1) if r.random() < 0.4 else "")
                    + self.tag("endif"))
        if k == 5:
            return (self.tag(r.choice(["for i in xs", "for i in []", "for i in range(2)"])) + self.seq(d - 1)
                    + (self.tag("else") + self.seq(d - 1) if r.random() < 0.3 else "")
                    + self.tag("endfor"))
        if k == 6:
            return self.tag("raw") + r.choice(["{{ x }}", " {% y %} ", "\n"]) + self.tag("endraw")
        return self.tag("filter upper") + self.seq(d - 1) + self.tag("endfilter")

    def seq(self, d):
        return "".join(self.text() + self.node(d) for _ in range(self.r.randrange(1, 4))) + self.text()


FUZZ_SEP = "\n<<<< expr >>>>\n"


def generated_filter_cases(count=480, seed=77, per_case=24):
    """The string and number filters with random arguments on random values
    (from the context, so nothing is folded at compile time): the word and
    case rules of title/capitalize/wordcount, truncate's arithmetic,
    striptags, urlencode, center, indent, round, int/float parsing,
    %-formatting."""
    r = random.Random(seed)
    alphabet = list(" \t\n-'(<>&\"é\u00dfA\u65e5aZz1.,_;/%+=") + ["ab", "cd", "<b>", "</b>", "&amp;", "<!-- c -->", "  ", "Hello", "wORLD", "x-y", "it's", "0x1A", "-3", "4.5e1"]
    strs = ["".join(r.choice(alphabet) for _ in range(r.randrange(0, 14))) for _ in range(60)]
    nums = ["1", "-2", " 3 ", "0x1f", "0o17", "0b11", "1_000", "2.5", "-0.5", "1e3", ".5", "abc", "", "12abc", "+7", " -0x1A", "1e-3"]
    floats = [r.choice([0.5, 1.5, 2.5, -2.5, 0.125, 0.375, 2.675, 1.005, -0.0, 1234.5678, 1e-05, 99.995, 0.045])
              for _ in range(20)] + [r.uniform(-1000, 1000) for _ in range(20)]
    ctx = {"S": strs, "N": nums, "F": floats}
    exprs = []
    while len(exprs) < count:
        a = f"S[{r.randrange(len(strs))}]"
        k = r.randrange(16)
        if k == 0:
            e = f"{a}|truncate({r.randrange(3, 16)}, {r.choice(['false', 'true'])}, {r.choice(['...', '', '~', '[+]'])!r}, {r.randrange(0, 6)})"
        elif k == 1:
            e = f"{a}|{r.choice(['title', 'capitalize', 'upper', 'lower', 'wordcount', 'length', 'reverse', 'trim', 'striptags', 'urlencode', 'e', 'list', 'first', 'last'])}"
        elif k == 2:
            e = f"{a}|center({r.randrange(0, 20)})"
        elif k == 3:
            e = f"{a}|indent({r.choice(['2', '4', repr('> ')])}, {r.choice(['false', 'true'])}, {r.choice(['false', 'true'])})"
        elif k == 4:
            e = f"{a}|replace({r.choice(alphabet)!r}, {r.choice(['', '_', '<>'])!r}{r.choice(['', ', 1', ', 2', ', -1'])})"
        elif k == 5:
            e = f"{a}|trim({r.choice([repr(c) for c in ['-', ' ', 'a', '<>', 'é']])})"
        elif k == 6:
            e = f"N[{r.randrange(len(nums))}]|int({r.choice(['', '-1', '0, 16', '7, 8', 'base=2', '0, 0'])})"
        elif k == 7:
            e = f"N[{r.randrange(len(nums))}]|float({r.choice(['', '-1.5'])})"
        elif k == 8:
            f = f"F[{r.randrange(len(floats))}]"
            method = r.choice(["", ", 'floor'", ", 'ceil'"])
            e = f"{f}|round({r.randrange(0, 4)}{method})"
        elif k == 9:
            f = f"F[{r.randrange(len(floats))}]"
            e = f"{r.choice(['%.2f', '%d', '%s', '%.0f', '%e', '%g', '%8.3f', '%-6d|', '%x'])!r}|format({f})"
        elif k == 10:
            e = f"F[{r.randrange(len(floats))}]{r.choice(['', '|abs', '|int', '|string', ' * 3', ' / 7', ' // 2', ' % 3'])}"
        elif k == 11:
            e = f"{a}.split({r.choice(['', repr(' '), repr('-'), repr(',')])})"
        elif k == 12:
            e = f"{a}|batch({r.randrange(1, 5)}, {r.choice(['none', repr('.')])})|list"
        elif k == 13:
            e = f"({a} ~ S[{r.randrange(len(strs))}])|{r.choice(['title', 'wordcount', 'striptags', 'length'])}"
        elif k == 14:
            e = f"{a}|tojson"
        else:
            method = r.choice(["upper()", "lower()", "strip()", "title()", "capitalize()",
                               "startswith('a')", "replace(' ', '')"])
            e = f"{a}.{method}"
        exprs.append(e)
    env, bad = jinja2.Environment(autoescape=True), []
    for e in list(exprs):
        try:
            env.from_string("{{ " + e + " }}").render(**ctx)
        except Exception:  # noqa: BLE001 — both must fail: a case of its own
            exprs.remove(e)
            bad.append(e)
    out = [Case("generated", f"filters-error{j:02d}", {"f.html": "{{ " + e + " }}"}, "f.html", ctx, None)
           for j, e in enumerate(bad[:20])]
    for i in range(0, len(exprs), per_case):
        ext = ("html", "txt")[(i // per_case) % 2]
        src = "{% raw %}" + FUZZ_SEP + "{% endraw %}"
        src = src.join("{{ " + e + " }}" for e in exprs[i:i + per_case])
        out.append(Case("generated", f"filters{i:03d}", {f"f.{ext}": src}, f"f.{ext}", ctx, None))
    return out


BLOCK_SEP = "\n<<<< part >>>>\n"


def generated_block_cases(count=120, seed=2026, per_case=10):
    """count templates, included per_case at a time by one that separates
    them with BLOCK_SEP (fewer runs under ASan; the differing parts shown)."""
    g = BlockGen(seed)
    ctx = {"x": "X<", "t": True, "xs": [1, 2]}
    srcs, seen = [], set()
    while len(srcs) < count:
        src = g.seq(2) + g.r.choice(["", "", "\n", "\n\n", " \n"])
        if src not in seen:
            seen.add(src)
            srcs.append(src)
    out = []
    for i in range(0, count, per_case):
        templates = {}
        for j, src in enumerate(srcs[i:i + per_case]):
            templates[f"ws{i + j:03d}.{('html', 'txt')[j % 2]}"] = src
        driver = "{% raw %}" + BLOCK_SEP + "{% endraw %}"
        templates["batch.txt"] = driver.join("{% include '" + n + "' %}" for n in templates)
        out.append(Case("generated", f"ws{i:03d}-{i + per_case - 1:03d}", templates, "batch.txt", ctx, None))
    return out


# ---- rendering ----------------------------------------------------------------

def write_templates(case, folder):
    for name, text in case.templates.items():
        path = os.path.join(folder, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)


def render_jinja(case, folder):
    """("ok", bytes) or ("error", exception)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(folder),
                             autoescape=flask_autoescape)
    try:
        out = env.get_template(case.render).render(**case.context)
        return "ok", out.encode("utf-8")
    except Exception as e:  # noqa: BLE001 — any failure is a failure to render
        return "error", e


# "file:LINE:col: reason" (or "file:LINE: reason"), possibly after a prefix
LINE_RE = re.compile(r"(?:^|\s)(\S+?):(\d+)(?::\d+)?:", re.M)
SANITIZER_RE = re.compile(r"ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error: ")


def render_carafe(case, folder, binary):
    """("ok", stdout bytes) / ("error", stderr text) / ("crash", description)."""
    try:
        p = subprocess.run([binary, "--templates", folder, case.render],
                           input=json.dumps(case.context).encode(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return "crash", f"timed out after {TIMEOUT} s"
    err = p.stderr.decode("utf-8", "replace")
    if SANITIZER_RE.search(err):  # ASan exits 1 too
        return "crash", f"exit {p.returncode}, sanitizer report: {err.strip()[:3000]}"
    if p.returncode == 0:
        return "ok", p.stdout
    if p.returncode == 1:
        return "error", err
    return "crash", f"exit {p.returncode}: {err.strip()[:2000]}"


def line_differences(case, a, b):
    """A batch of generated expressions, one a line: the lines that differ."""
    src = next(iter(case.templates.values())).split("\n")
    al, bl = a.split(b"\n"), b.split(b"\n")
    out = []
    for i in range(max(len(al), len(bl))):
        x = al[i] if i < len(al) else None
        y = bl[i] if i < len(bl) else None
        if x != y:
            out.append(f"\n    line {i + 1}: {src[i] if i < len(src) else ''}"
                       f"\n      expected {show(x)}\n      got      {show(y)}")
    return "".join(out[:12])


def expr_differences(case, a, b):
    """Generated filter expressions separated by FUZZ_SEP: the ones that differ."""
    src = next(iter(case.templates.values()))
    exprs = src.split("{% raw %}" + FUZZ_SEP + "{% endraw %}")
    sep = FUZZ_SEP.encode()
    ap, bp = a.split(sep), b.split(sep)
    if len(ap) != len(bp) or len(ap) != len(exprs):
        return f"\n    expected {show(a)}\n    got      {show(b)}"
    return "".join(f"\n    {e}\n      expected {show(x)}\n      got      {show(y)}"
                   for e, x, y in zip(exprs, ap, bp) if x != y)


def part_differences(case, a, b):
    """Included templates separated by BLOCK_SEP: the ones that differ."""
    names = [n for n in case.templates if n != "batch.txt"]
    sep = BLOCK_SEP.encode()
    ap, bp = a.split(sep), b.split(sep)
    if len(ap) != len(bp):
        return f"\n    expected {show(a)}\n    got      {show(b)}"
    return "".join(f"\n    {n}: {case.templates[n]!r}\n      expected {show(x)}\n      got      {show(y)}"
                   for n, x, y in zip(names, ap, bp) if x != y)


def first_difference(a, b):
    """Where two outputs part, with some context, for long outputs."""
    n = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    lo, line = max(0, n - 40), a[:n].count(b"\n") + 1
    return (f"\n    first difference at byte {n} (line {line}):"
            f"\n      expected ...{show(a[lo:n + 40])}\n      got      ...{show(b[lo:n + 40])}")


def show(b):
    if isinstance(b, bytes):
        try:
            return repr(b.decode("utf-8"))
        except UnicodeDecodeError:
            return repr(b)
    return repr(b)


def templates_text(case):
    lines = []
    for name, text in case.templates.items():
        lines.append(f"    --- {name}: {text!r}")
    if case.context:
        lines.append(f"    --- context: {json.dumps(case.context, ensure_ascii=False)[:600]}")
    return "\n".join(lines)


def check_case(case, binary, jinja_only):
    """None when it passes, else the text of the failure."""
    folder = tempfile.mkdtemp(prefix="cf-tpl-")
    try:
        write_templates(case, folder)
        jk, jv = render_jinja(case, folder)
        # The corpus itself: a hand-written case says what Jinja does.
        if case.error is True and jk == "ok":
            return f"corpus: marked error but Jinja renders {show(jv)}"
        if case.error is False and jk == "error":
            return f"corpus: Jinja fails: {type(jv).__name__}: {jv}"
        if jk == "ok" and case.expect is not None and jv != case.expect.encode("utf-8"):
            return f"corpus: expect {case.expect!r} but Jinja renders {show(jv)}"
        if jinja_only:
            return None
        ck, cv = render_carafe(case, folder, binary)
        if ck == "crash":
            return f"carafe-render crashed: {cv}"
        if jk == "ok" and ck == "ok":
            if jv == cv:
                return None
            if case.name.startswith("filters") and FUZZ_SEP.encode() in jv:
                return "output differs" + expr_differences(case, jv, cv)
            if case.render == "batch.txt":
                return "output differs" + part_differences(case, jv, cv)
            if case.source == "generated" and jv.count(b"\n") > 1:
                return "output differs" + line_differences(case, jv, cv)
            if max(len(jv), len(cv)) <= 300:
                return f"output differs\n    expected {show(jv)}\n    got      {show(cv)}"
            return (f"output differs ({len(jv)} bytes expected, {len(cv)} got)"
                    f"{first_difference(jv, cv)}")
        if jk == "ok":
            return f"Jinja renders {show(jv)} but carafe-render fails: {cv.strip()[:500]}"
        if ck == "ok":
            return (f"Jinja fails ({type(jv).__name__}: {jv}) but carafe-render "
                    f"renders {show(cv)}")
        if isinstance(jv, jinja2.TemplateSyntaxError):
            want = jv.name or os.path.relpath(jv.filename or "?", folder)
            m = LINE_RE.search(cv)
            got_file, got = (m.group(1), int(m.group(2))) if m else (None, None)
            if got != jv.lineno:
                return (f"syntax error line: Jinja says {want}:{jv.lineno} ({jv.message}), "
                        f"carafe-render says line {got}: {cv.strip()[:300]!r}")
            if not (got_file == want or got_file.endswith("/" + want)):
                return (f"syntax error file: Jinja says {want}:{jv.lineno} ({jv.message}), "
                        f"carafe-render says {got_file}: {cv.strip()[:300]!r}")
        return None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def find_binary(arg):
    if arg:
        return arg
    build = os.environ.get("CF_BUILD_DIR") or os.path.join(SOURCE_DIR, "build")
    return os.path.join(build, "tools", "carafe-render")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--render", help="path of carafe-render (default $CF_BUILD_DIR/tools/carafe-render)")
    ap.add_argument("--jinja-only", action="store_true",
                    help="only check the corpus against Jinja2 (no carafe-render)")
    ap.add_argument("-k", help="only cases whose label contains this")
    ap.add_argument("-v", action="store_true", help="print every case")
    ap.add_argument("--no-generated", action="store_true")
    args = ap.parse_args()

    start = time.monotonic()
    cases, problems = load_corpus()
    for p in problems:
        print("corpus:", p)
    if not args.no_generated:
        cases += generated_cases() + generated_block_cases() + generated_filter_cases()
    if args.k:
        cases = [c for c in cases if args.k in c.label()]

    binary = None
    if not args.jinja_only:
        binary = find_binary(args.render)
        if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
            print(f"FAIL: carafe-render not found at {binary} (build the tools/ target, "
                  f"or pass --render PATH; --jinja-only checks the corpus alone)")
            return 1

    failed, warned = [], []
    with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
        results = pool.map(lambda c: (c, check_case(c, binary, args.jinja_only)), cases)
        for case, res in results:
            if res is None:
                if args.v:
                    print(f"ok    {case.label()}")
                continue
            warn = case.nice_to_have and not res.startswith("corpus:")
            (warned if warn else failed).append(case)
            print(f"{'WARN' if warn else 'FAIL'}  {case.label()}: {res}")
            print(templates_text(case))
    n_gen = sum(1 for c in cases if c.source == "generated")
    mode = "jinja-only" if args.jinja_only else binary
    print(f"{len(cases)} cases ({len(cases) - n_gen} from the corpus, {n_gen} generated), "
          f"{len(failed)} failed, {len(warned)} nice-to-have failed (warnings) "
          f"[{mode}, {time.monotonic() - start:.1f} s]")
    if problems:
        print(f"{len(problems)} problems in the corpus files")
    return 1 if failed or problems else 0


if __name__ == "__main__":
    sys.exit(main())
