"""The ``c2f`` command line (``cli.main``) and ``c2f demo`` (``cli.demo``); commands import their layer lazily."""
