"""Training jobs and the processes around them: the RQ job function (``jobs.train``), the worker
(``c2f.jobs.worker``) and ``c2f serve``'s supervisor of an embedded Redis and worker (``jobs.server``).

This layer sees both sides: it runs ``trainer`` code in the worker's work-horse process and uses the service's
settings and dataset-URI checks. Neither ``service`` nor ``trainer`` imports it.
"""
