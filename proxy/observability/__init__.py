"""What an operator reads: Prometheus metrics, the access line, log setup (text or JSON), Server-Timing, and
the bounded route-family label they share.
"""
