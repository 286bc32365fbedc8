"""The scheduler (SPEC §8): reminders, re-announcements, auto-close and digests.

``jobs.py`` holds what is done (functions of the database and ``now``), ``service.py``
the APScheduler wiring and ``build``, ``leader.py`` the one-leader-per-database lock,
``settings.py`` the ``scheduler:`` section. (Nothing is imported here: the config
module imports ``settings`` and must not pull the rest in.)
"""
