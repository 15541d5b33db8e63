"""The ``c2f`` command line (``c2f.cli.main``) and ``c2f demo`` (``cli.demo``); commands import their layer lazily."""
