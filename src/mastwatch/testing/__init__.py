"""Real local counterparts that tests and benchmarks share: a feed server, a Slack Web API
server and an SMTP server, all bound to loopback. Shipped as public API, in the manner of
structlog's ``capture_logs``, so operators can test their own set-ups with them."""
