"""Each field's limit, named once: the API validates with it, the worker and the CLI build
their requests with the same models, so both sides keep one limit."""

from __future__ import annotations

ID_CHARS = 64  # a stored id (`p_...`, `j_...`, `dp_...`): as long as the key columns
LEASE_ID_CHARS = 64  # a lease id: as long as `jobs.lease_id`
WORKER_ID_CHARS = 200  # a worker's name: as long as `jobs.worker_id`
OWNER_CHARS = 64  # the owner of a job, a name of LTD_API_KEYS: as long as `jobs.owner`
MESSAGE_CHARS = 2_000  # a heartbeat's progress message, kept to this many characters
ERROR_CHARS = 20_000  # a failure's text (a traceback), kept to this many characters
PAGE_SIZE = 100  # the most items a list answers at once
MAX_OFFSET = 10**9  # list pages: beyond any table this service holds, inside every integer type
