"""vLLM activation: launch argv, local process driver, state file, remote admin proxy.

``command``, ``process`` and ``statefile`` are plain modules (no Django at import
time); ``service`` is the activation service that views, tasks and the CLI call.
"""
