"""The values every stage of maild passes on, at the bottom of the layers.

Modules here import nothing of maild outside ``maild.domain`` (checked by
``tests/test_layers.py``); every stage depends on them, never on another stage's
internals. Enumerations are ``StrEnum``s whose values are the strings stored in the
database and printed as JSON, so moving a value here changes nothing a user sees.
"""
