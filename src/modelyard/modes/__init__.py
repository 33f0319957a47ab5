"""Multi-model modes — race, all, vote, judge, fuse and config pipelines — as peers behind the `Mode`
interface (base.py), registered and dispatched in dispatch.py. Every sub-call goes back through the
gateway's single-request path (run.py), so routing, fallbacks and accounting apply to each."""
