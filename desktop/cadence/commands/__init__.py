"""Headless subcommands. Each module defines NAME, HELP, ``configure(parser)`` and ``run(args) -> int``.

Like app.py these are composition roots: they may wire adapters, services and core together.
"""
