"""vLLM activation: launch argv, local process driver, state file, remote admin proxy.

``command``, ``process`` and ``statefile`` are plain modules (no Django at import
time; importing this package stays light). ``service`` is the activation service's
facade that views, tasks, health and the CLI import; its other modules (``admission``,
``prepare``, ``activate``, ``stop``, ``reconcile``, ``status``, ``hosts``, ``server``,
``slot``, ``errors``) hold the work, see ``service``'s docstring.
"""
