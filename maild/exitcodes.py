"""The exit codes of the ``maild`` commands (sysexits.h, as MTAs read them)."""

EX_OK = 0
EX_USAGE = 64
EX_DATAERR = 65
EX_NOINPUT = 66
EX_UNAVAILABLE = 69
EX_SOFTWARE = 70
EX_CANTCREAT = 73
EX_CONFIG = 78
EX_TEMPFAIL = 75
EX_NOUSER = 67
