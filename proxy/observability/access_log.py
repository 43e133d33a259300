"""One access line per request on the `proxy.access` logger, built from its finished record.

Never a key or a token: the record holds neither, only the key's id. With LOG_FORMAT=json every
value is also a JSON field of the line (see logging_setup.JsonFormatter).
"""

from __future__ import annotations

import logging

from proxy.request_log.record import RequestRecord

log = logging.getLogger("proxy.access")


def log_access(record: RequestRecord) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    path = record.endpoint  # the text formatter escapes what is unprintable (logging_setup.TextFormatter)
    duration = round(record.response_time, 2) if record.response_time is not None else None
    log.info(
        "%s %s %s %sms key=%s model=%s tokens=%s id=%s",
        record.method,
        path,
        record.status_code,
        duration,
        record.api_key_id,
        record.model,
        record.tokens_used,
        record.id,
        extra={
            "request_id": str(record.id),
            "key_id": str(record.api_key_id) if record.api_key_id else None,
            "method": record.method,
            "path": record.endpoint,
            "status": record.status_code,
            "duration_ms": duration,
            "ttfb_ms": round(record.ttfb, 2) if record.ttfb is not None else None,
            "model": record.model,
            "prompt_tokens": record.prompt_tokens,
            "completion_tokens": record.completion_tokens,
            "tokens": record.tokens_used,
            "bytes_out": record.bytes_out,
            "client": record.client_ip,
            "error": record.error,
        },
    )
