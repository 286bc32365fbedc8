"""The names of the ``/commands``, for the config to check ``commands.managers_only``.

Kept apart from the handler table (:data:`maild.commands.interpret.COMMANDS`, which must
name exactly these; a test holds them equal) so the config schema does not import the
interpret stage, which imports the workflow built from that schema.
"""

COMMAND_NAMES = frozenset({
    "status", "close", "reopen", "assign", "take", "invite", "tag", "priority", "type", "subtype", "category",
    "subject", "next", "note", "log", "draft", "send", "canned", "cc", "link", "merge", "clone", "visible",
    "block", "listing", "new", "on-behalf",
})
