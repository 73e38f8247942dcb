"""The pure pricing domain: what a quote, redemption, reversal and accrual decide.

Nothing here does I/O, talks gRPC or SQL, or reads the clock: every input,
"now" included, is an argument.
"""
