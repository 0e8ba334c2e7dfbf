"""The update as one use case, between the stores (``lure_core``) and the processes that run or
serve it (``worker/``, ``service/``): plan → check the data → train the candidates → judge them
(the promotion gate, the lineages, the race) → publish, plus audits (the same run from a
version's records) and retention. The worker runs it inside Celery; the API audits with it.
"""
