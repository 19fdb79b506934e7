"""Labelled questions over ``pydoc_data.topics`` (the help texts shipped with CPython).

Each question names the topics that answer it and a phrase the answer holds, which the
benchmark checks is in every labelled topic of the running Python before it starts. Some
topics repeat others whole (``specialnames`` holds ``customization``, ``compound`` holds
``if``, ``for``, ``try``...): ``SUPERSETS`` adds them to the labels, so finding the answer in
either place counts.

``kind`` says how the question was written: ``paraphrase`` avoids the answer's own words
where it can (what dense retrieval is for), ``identifier`` names the dunder, method or
literal a user would type (what keyword search is for).
"""

from __future__ import annotations

from typing import Literal, NamedTuple


class Question(NamedTuple):
    text: str
    labels: tuple[str, ...]
    phrase: str
    kind: Literal["paraphrase", "identifier"]


SUPERSETS: dict[str, tuple[str, ...]] = {
    "async": ("compound",),
    "attribute-access": ("specialnames",),
    "augassign": ("assignment",),
    "callable-types": ("specialnames",),
    "class": ("compound",),
    "context-managers": ("specialnames",),
    "customization": ("specialnames",),
    "dynamic-features": ("execmodel", "naming"),
    "else": ("if", "compound"),
    "exceptions": ("execmodel",),
    "for": ("compound",),
    "function": ("compound",),
    "id-classes": ("identifiers",),
    "if": ("else", "compound"),
    "in": ("comparisons",),
    "numeric-types": ("specialnames",),
    "sequence-types": ("specialnames",),
    "try": ("compound",),
    "typesseq-mutable": ("typesseq",),
    "while": ("compound",),
    "with": ("compound",),
}

PARA: Literal["paraphrase"] = "paraphrase"
IDENT: Literal["identifier"] = "identifier"

QUESTIONS: list[Question] = [
    # Paraphrased: the answer in other words.
    Question(
        "How can I stop every instance from carrying its own attribute dictionary, to save memory?",
        ("attribute-access",),
        "__slots__",
        PARA,
    ),
    Question(
        "Are assertion checks still executed when the interpreter optimises?",
        ("assert",),
        "__debug__",
        PARA,
    ),
    Question(
        "How does an inner function rebind a variable that belongs to the function around it?",
        ("nonlocal",),
        "nonlocal",
        PARA,
    ),
    Question(
        "Which hook constructs the object before the initialiser runs?",
        ("customization",),
        "__new__",
        PARA,
    ),
    Question(
        "How do I loop over an asynchronous iterable inside a coroutine?",
        ("async",),
        "__aiter__",
        PARA,
    ),
    Question(
        "How can I print a large number with a comma between each group of three digits?",
        ("formatstrings",),
        "thousands separator",
        PARA,
    ),
    Question(
        "How do I trim leading and trailing spaces from text?", ("string-methods",), "strip(", PARA
    ),
    Question(
        "How do I look up a key in a mapping and fall back to something when it is absent?",
        ("typesmapping",),
        "get(key",
        PARA,
    ),
    Question(
        "Which operators bind more tightly than others when an expression mixes them?",
        ("operator-summary",),
        "precedence",
        PARA,
    ),
    Question(
        "How do I attach the original error as the reason when raising a new one?",
        ("raise",),
        "__cause__",
        PARA,
    ),
    Question(
        "How do I run clean-up code whether or not something went wrong in a block?",
        ("try",),
        "finally",
        PARA,
    ),
    Question("Which values count as false when used in a condition?", ("truth",), "__bool__", PARA),
    Question(
        "How do I pause my program and inspect it interactively, line by line?",
        ("debugger",),
        "step",
        PARA,
    ),
    Question(
        "How do I take every second element of a list using brackets?",
        ("slicings", "typesseq"),
        "step",
        PARA,
    ),
    Question(
        "How do I write numbers in base 16 or base 2 directly in source code?",
        ("integers",),
        "0x",
        PARA,
    ),
    Question(
        "How do I write a number with a real and an imaginary part?",
        ("imaginary",),
        "imaginary",
        PARA,
    ),
    Question(
        "How can I test whether two names refer to the very same object rather than equal ones?",
        ("comparisons",),
        "is not",
        PARA,
    ),
    Question(
        "Can I test whether a value lies between two bounds in a single expression?",
        ("comparisons",),
        "x < y <= z",
        PARA,
    ),
    Question(
        "What must an object provide to set up and tear down a runtime context?",
        ("context-managers", "with"),
        "__enter__",
        PARA,
    ),
    Question(
        "Which method is consulted when normal lookup fails to find an attribute?",
        ("attribute-access",),
        "__getattr__",
        PARA,
    ),
    Question(
        "How do I let the built-in that counts items work on my own container class?",
        ("sequence-types",),
        "__len__",
        PARA,
    ),
    Question("How can my class overload the plus sign?", ("numeric-types",), "__add__", PARA),
    Question(
        "How do I import a sibling module from within the same package using dots?",
        ("import",),
        "relative import",
        PARA,
    ),
    Question(
        "How do I declare parameters that can only be passed by name?",
        ("function",),
        "keyword-only",
        PARA,
    ),
    Question(
        "When are default values of parameters computed, and why can a mutable one surprise?",
        ("function",),
        "Default parameter values are evaluated",
        PARA,
    ),
    Question(
        "How do I handle several exceptions raised together as a group?", ("try",), "except*", PARA
    ),
    Question(
        "How do I write a string literal in which backslashes are kept as they are?",
        ("strings",),
        "raw strings",
        PARA,
    ),
    Question(
        "How do I pad a numeric string on the left with zeros?", ("string-methods",), "zfill", PARA
    ),
    Question("How can I order a list in place by a computed key?", ("typesseq",), "sort(", PARA),
    Question(
        "What is the single object written as three dots?",
        ("bltin-ellipsis-object",),
        "Ellipsis",
        PARA,
    ),
    Question(
        "What value does a function hand back if it ends without returning anything?",
        ("bltin-null-object", "return"),
        "None",
        PARA,
    ),
    Question(
        "How can a function produce a series of values lazily, one at a time?",
        ("yield",),
        "generator",
        PARA,
    ),
    Question(
        "What happens to the optional block after a loop when the loop is exited early?",
        ("for", "while", "break"),
        "else",
        PARA,
    ),
    Question(
        "How does whole-number division round when one operand is negative?",
        ("binary",),
        "floor",
        PARA,
    ),
    Question(
        "How do I move the bits of an integer to the left or right?", ("shifting",), "<<", PARA
    ),
    Question(
        "How are names bound and resolved in nested blocks and scopes?",
        ("naming", "execmodel"),
        "nonlocal",
        PARA,
    ),
    Question(
        "How do I build a mapping from an iterable in a single expression?",
        ("dict",),
        "dict comprehension",
        PARA,
    ),
    Question("How do I write a small anonymous function inline?", ("lambda",), "lambda", PARA),
    Question("Which statement does nothing and serves as a placeholder?", ("pass",), "pass", PARA),
    Question(
        "How do I make instances of my class usable as dictionary keys?",
        ("customization",),
        "__hash__",
        PARA,
    ),
    # Identifiers: what a user types when they know the name.
    Question("What is __slots__?", ("attribute-access",), "__slots__", IDENT),
    Question(
        "When should __init_subclass__ be used?", ("specialnames",), "__init_subclass__", IDENT
    ),
    Question(
        "What does __class_getitem__ do?",
        ("sequence-types", "subscriptions"),
        "__class_getitem__",
        IDENT,
    ),
    Question("What is __mro__?", ("specialattrs",), "__mro__", IDENT),
    Question(
        "When should a method return NotImplemented?",
        ("customization", "numeric-types"),
        "NotImplemented",
        IDENT,
    ),
    Question(
        "How does __missing__ work for dict subclasses?", ("typesmapping",), "__missing__", IDENT
    ),
    Question("What does str.casefold() do?", ("string-methods",), "casefold", IDENT),
    Question("str.partition versus str.split", ("string-methods",), "partition(", IDENT),
    Question("What is expandtabs used for?", ("string-methods",), "expandtabs", IDENT),
    Question("__set_name__ descriptor hook", ("specialnames",), "__set_name__", IDENT),
    Question("pdb post_mortem", ("debugger",), "post_mortem", IDENT),
    Question("__matmul__ operator", ("numeric-types",), "__matmul__", IDENT),
    Question("What does __all__ control in a package?", ("import",), "__all__", IDENT),
    Question("__iadd__ and in-place operators", ("numeric-types",), "__iadd__", IDENT),
    Question("What is __debug__?", ("assert",), "__debug__", IDENT),
    Question("What does splitlines() return?", ("string-methods",), "splitlines", IDENT),
]


def relevant(question: Question) -> set[str]:
    """The labels and the topics that repeat them."""
    found = set(question.labels)
    for label in question.labels:
        found.update(SUPERSETS.get(label, ()))
    return found


def check(topics: dict[str, str]) -> list[str]:
    """Problems with the labels against these topic texts (empty when all hold)."""
    problems = []
    for question in QUESTIONS:
        for label in question.labels:
            if label not in topics:
                problems.append(f"{question.text!r}: no topic {label!r}")
            elif question.phrase.lower() not in topics[label].lower():
                problems.append(f"{question.text!r}: {label!r} lacks {question.phrase!r}")
    return problems
