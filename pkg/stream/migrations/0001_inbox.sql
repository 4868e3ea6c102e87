-- Events a consumer has handled, written in the same transaction as the
-- handler's effect, so a redelivered event is recognised and skipped.
CREATE TABLE inbox (
    consumer   text        NOT NULL,
    event_id   uuid        NOT NULL,
    stream_seq bigint      NOT NULL,
    handled_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
