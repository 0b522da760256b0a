"""Capture (DESIGN section 10): forms that feed both channels, and the public endpoints behind
them, which assume hostile callers.

- `forms`: the forms API's service (kinds, allowed origins, tags, versioned consent, double or
  single opt-in, the Page to invite to, popup triggers, a lucky wheel's prizes and codes).
- `tokens`, `origins`, `client_ip`, `wheel`: pure: signed form and confirm tokens, Origin and
  CORS rules, the client address behind trusted proxies, the weighted spin.
- `guard`: per-process rate limits (`limits`) and rejection counting.
- `capture`, `confirm`, `spins`, `counters`: the capture and its confirmation, prizes reserved
  only after it, per-form outcome counters.
- `sending`: how the dispatcher builds the double opt-in email and a comment's private reply.
- `comments`: a Page comment's private reply inviting the person to Messenger.

Nothing here is imported by `__init__`: `dispatch` imports `sending`, which refers back to it.
"""
