"""Commands and workflow by e-mail (SPEC §4, §6).

The interpret stage of the pipeline, between thread and decide:

* :mod:`settings`  the YAML models: statuses, priorities, transitions, ``keywords:``, agent auth
* :mod:`text`      case- and accent-insensitive folding shared by every matcher
* :mod:`workflow`  status/priority names and aliases, automatic transitions, agent names
* :mod:`keywords`  subject keywords and ``[key=value]`` assignments → commands
* :mod:`grammar`   ``/command`` lines at the top of a body, dates for ``/next``
* :mod:`forwarded` the author of the mail an agent forwards with ``/new`` (the requester)
* :mod:`ops`       the ticket changes a command mail asks for, as values
* :mod:`interpret` commands → a :class:`~maild.commands.interpret.Plan` for one ticket (pure)
* :mod:`control`   mails to the control address: bulk commands, list/show/stats/new (pure)
* :mod:`auth`      may this agent's mail command at all (Authentication-Results, DKIM)
* :mod:`apply`     writes :mod:`ops` inside the mail's transaction, with history events
* :mod:`queries`   the reads the control address and ``/send`` need
"""
