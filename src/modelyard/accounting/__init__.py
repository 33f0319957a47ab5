"""Who may spend what: virtual keys, teams and users (keys), budgets reserved before a call and
settled after it (budgets), request and token rate limits (limits), and alerts. Shared counters
live behind `state/`; key records and spend live in `store/`."""
