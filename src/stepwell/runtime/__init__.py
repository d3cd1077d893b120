"""Code that runs inside a task's process: the launcher and the in-task executor.

Everything under ``stepwell.runtime`` imports only the standard library (and, in the
launcher, the object-store client), so a task starts fast.
"""
