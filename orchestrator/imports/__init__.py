"""Contact imports: a file streamed into the database, then applied in resumable batches.

- `parsing`: bytes fed in pieces become records with line numbers and resume positions (pure).
- `validation`: a record becomes an `ImportRow` or field errors, like the API validates (pure).
- `applying`: a batch of rows written with set-based SQL, as `contacts.upsert_contact` would.
- `bulk`: the set-based statements for each engine (JSON recordsets on PostgreSQL).
- `uploads`: the upload stream stored in ~1 MiB chunks; reading imports and their errors.
- `processing`: the resumable worker loop with a lease; `runner`: asyncio tasks in the app.
"""
