"""Demo tests for the sandbox: a few realistic assessments with questions for the candidate page."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.sandbox.state import Question

if TYPE_CHECKING:
    from bot.sandbox.state import ImochaState


PYTHON = [
    Question("What does `len({'a': 1, 'b': 2})` return?", ["1", "2", "It raises TypeError"], 1, 0),
    Question(
        "Which of these is immutable?",
        ["list", "dict", "tuple", "set"],
        2,
        0,
    ),
    Question(
        "What is printed by `print([i * i for i in range(3)])`?",
        ["[0, 1, 4]", "[1, 4, 9]", "[0, 1, 2]"],
        0,
        0,
    ),
    Question(
        "Which data structure gives O(1) average membership tests?",
        ["list", "set", "tuple"],
        1,
        1,
    ),
    Question(
        "Merging two sorted lists of length n and m takes…",
        ["O(n · m)", "O(n + m)", "O(log(n + m))"],
        1,
        1,
    ),
]

SQL = [
    Question("Which clause filters groups after aggregation?", ["WHERE", "HAVING", "ORDER BY"], 1, 0),
    Question("`SELECT COUNT(*) FROM t` on an empty table returns…", ["NULL", "0", "no row"], 1, 0),
    Question(
        "Which join keeps every row of the left table?",
        ["INNER JOIN", "LEFT JOIN", "CROSS JOIN"],
        1,
        1,
    ),
    Question(
        "`NULL = NULL` evaluates to…",
        ["TRUE", "FALSE", "UNKNOWN (NULL)"],
        2,
        1,
    ),
]

JAVA = [
    Question(
        "Which interface does `HashMap` implement?",
        ["List", "Map", "Collection"],
        1,
        0,
    ),
    Question("A `final` class…", ["cannot be subclassed", "is immutable", "cannot be instantiated"], 0, 0),
    Question(
        "Which annotation marks a Spring Boot entry point?",
        ["@SpringBootApplication", "@EnableAll", "@Main"],
        0,
        1,
    ),
    Question(
        "Which starter brings an embedded Tomcat?",
        ["spring-boot-starter-web", "spring-boot-starter-data-jpa", "spring-boot-starter-test"],
        0,
        1,
    ),
    Question(
        "Where does Spring Boot read `server.port` from by default?",
        ["application.properties", "pom.xml", "web.xml"],
        0,
        1,
    ),
]

REACT = [
    Question("Which hook holds component state?", ["useEffect", "useState", "useMemo"], 1, 0),
    Question(
        "What must a list's items carry for React to reconcile them well?",
        ["a key", "an id attribute", "a ref"],
        0,
        0,
    ),
    Question("`[] == false` in JavaScript is…", ["true", "false", "a TypeError"], 0, 1),
]


def seed_demo(state: ImochaState) -> None:
    state.add_test(
        1134601,
        "Python Developer – Intermediate",
        [("Python fundamentals", 30), ("Problem solving", 20)],
        duration=45,
        questions=PYTHON,
        labels=["python", "backend"],
    )
    state.add_test(
        1134602,
        "SQL Basics",
        [("Queries", 25), ("Joins and NULLs", 25)],
        duration=30,
        questions=SQL,
        labels=["sql", "data"],
    )
    state.add_test(
        1134603,
        "Java Spring Boot",
        [("Core Java", 20), ("Spring Boot", 30)],
        duration=40,
        questions=JAVA,
        labels=["java", "backend"],
    )
    state.add_test(
        1134604,
        "React Front-end",
        [("React", 20), ("JavaScript", 10)],
        duration=25,
        questions=REACT,
        labels=["frontend"],
    )
    state.add_test_link(1134601, "Campus drive")
